"""A Hugging Face Hub on 127.0.0.1 for the upload fault paths (``HF_ENDPOINT`` points the real
``huggingface_hub`` client at it): the token check answers ``whoami``, everything else answers a
chosen status, with the Hub's error headers, so the client raises its own errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeHubHttp:
    url: str
    whoami_status: int = 200
    other_status: int = 500
    requests: list[str] = field(default_factory=list)


def _handler(fake: FakeHubHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            fake.requests.append(f"{self.command} {self.path}")
            if self.path.startswith("/api/whoami"):
                status = fake.whoami_status
                body = (
                    {"type": "user", "name": "alice"} if status == 200 else {"error": "Invalid credentials"}
                )
            else:
                status = fake.other_status
                body = {"error": "Internal Error"} if status >= 500 else {}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status != 200:
                self.send_header("X-Error-Message", str(body.get("error", "")))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

    return Handler


@contextmanager
def fake_hub_http(whoami_status: int = 200, other_status: int = 500) -> Iterator[FakeHubHttp]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake = FakeHubHttp(f"http://127.0.0.1:{server.server_address[1]}", whoami_status, other_status)
    server.RequestHandlerClass = _handler(fake)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
