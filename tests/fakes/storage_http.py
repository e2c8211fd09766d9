"""Object storage on 127.0.0.1 behind signed-URL-style paths, the way W&B storage serves files.

Switchable per test: honour ``Range`` (206) or ignore it (200 with the whole object), send at a
limited rate, or go silent mid-response (a stalled store). Counts the bytes it
sends, so a test can tell how much a download cost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.fakes.loopback import loopback_server

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class FakeStorage:
    url: str
    objects: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    rate: float | None = None  #: bytes per second, None for as fast as it goes
    #: the next this many responses go silent after ``stall_after`` body bytes, until the server stops
    stalls: int = 0
    stall_after: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    sent: int = 0  #: body bytes sent, all requests together
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, name: str, data: bytes) -> str:
        self.objects[name] = data
        return f"{self.url}/{name}?X-Signature=abc"


def _handler(fake: FakeStorage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with fake.lock:
                fake.requests += 1
                stall = fake.stalls > 0
                fake.stalls -= stall
            data = fake.objects.get(self.path.split("?")[0].lstrip("/"))
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            match = _RANGE.fullmatch(self.headers.get("Range", ""))
            if match and not fake.ignore_range:
                start = int(match[1])
                end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
                body = data[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = 16 * 1024
            for i in range(0, len(body), step):
                if stall and i >= fake.stall_after:
                    fake.release.wait(120)
                    return
                try:
                    self.wfile.write(body[i : i + step])
                except (BrokenPipeError, ConnectionResetError):
                    return
                with fake.lock:
                    fake.sent += len(body[i : i + step])
                if fake.rate:
                    time.sleep(step / fake.rate)

    return Handler


@contextmanager
def fake_storage() -> Iterator[FakeStorage]:
    made: list[FakeStorage] = []

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        made.append(FakeStorage(url))
        return _handler(made[0])

    with loopback_server(handler_for):
        try:
            yield made[0]
        finally:
            made[0].release.set()
