"""A W&B server on 127.0.0.1 that fails the way a real one does, for the logging fault paths.

The real SDK and its Go service (``wandb-core``) talk to it over HTTP through ``WANDB_BASE_URL``.
It answers GraphQL with what a broken or unreachable deployment gives: 401 for a rejected key,
500 for a failing server, a stalled connection for a hung one, or the viewer query answered and
everything after it stalled (a server that logs you in and then stops answering). Every request
is recorded, so a test can count how often the server was asked. A port nobody listens on
(``refused_url``) stands for a refused connection.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal

from tests.fakes.loopback import answer_json, loopback_server, read_body

Behaviour = Literal["ok", "401", "500", "hang", "viewer-then-hang"]


@dataclass
class FakeWandbHttp:
    url: str
    behaviour: Behaviour = "ok"
    #: the behaviour from the second request on (a server that breaks, or recovers, mid-run)
    later: Behaviour | None = None
    requests: list[str] = field(default_factory=list)  #: the GraphQL query of each request
    release: threading.Event = field(default_factory=threading.Event)  #: ends every stalled answer


def _handler(fake: FakeWandbHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object]) -> None:
            answer_json(self, status, body)

        def do_POST(self) -> None:
            raw = read_body(self)
            try:
                query = str(json.loads(raw or b"{}").get("query", ""))
            except (ValueError, AttributeError):
                query = ""
            fake.requests.append(query)
            behaviour = fake.behaviour if len(fake.requests) == 1 or fake.later is None else fake.later
            if behaviour == "viewer-then-hang":
                behaviour = "ok" if "viewer" in query and "Viewer" in query else "hang"
            if behaviour == "hang":
                fake.release.wait(120)
                return
            if behaviour == "401":
                self._answer(401, {"errors": [{"message": "user is not logged in"}]})
            elif behaviour == "500":
                self._answer(500, {"errors": [{"message": "internal server error"}]})
            else:
                self._answer(
                    200, {"data": {"viewer": {"id": "VXNlcjox", "entity": "alice", "username": "alice"}}}
                )

        do_GET = do_POST

    return Handler


@contextmanager
def fake_wandb_http(behaviour: Behaviour = "ok", later: Behaviour | None = None) -> Iterator[FakeWandbHttp]:
    made: list[FakeWandbHttp] = []

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        made.append(FakeWandbHttp(url, behaviour, later))
        return _handler(made[0])

    with loopback_server(handler_for):
        try:
            yield made[0]
        finally:
            made[0].release.set()  # stalled answers end before the server stops


def refused_url() -> str:
    """A loopback URL whose port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
