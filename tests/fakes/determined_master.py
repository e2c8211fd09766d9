"""The part of a Determined master a trial's preemption talks to, served on 127.0.0.1: Determined's
own ``PreemptContext`` long-polls ``/api/v1/allocations/<id>/signals/preemption`` and acknowledges
with ``.../signals/ack_preemption``, as against a real master."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import answer_json, loopback_server, read_body


class FakeMaster:
    def __init__(self) -> None:
        self.url = ""
        self.preempt = threading.Event()
        self.acks: list[str] = []
        self.polls = 0

    def handler(self, url: str) -> type[BaseHTTPRequestHandler]:
        self.url = url
        master = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                if parsed.path.endswith("/signals/preemption"):
                    master.polls += 1
                    wait = float(parse_qs(parsed.query).get("timeout_seconds", ["0"])[0])
                    # a long poll: answered when the signal comes, or (briefly) with no signal
                    master.preempt.wait(min(wait, 1.0))
                    answer_json(self, 200, {"preempt": master.preempt.is_set()})
                    return
                answer_json(self, 404, {"error": {"error": f"not found: {parsed.path}"}})

            def do_POST(self) -> None:
                read_body(self)
                path = urlparse(self.path).path
                if path.endswith("/signals/ack_preemption"):
                    master.acks.append(path)
                    answer_json(self, 200, {})
                elif path == "/test/preempt":  # what a user's pause in the web UI does
                    master.preempt.set()
                    answer_json(self, 200, {})
                else:
                    answer_json(self, 404, {"error": {"error": f"not found: {path}"}})

        return Handler


@contextmanager
def fake_master() -> Iterator[FakeMaster]:
    master = FakeMaster()
    with loopback_server(master.handler):
        yield master
