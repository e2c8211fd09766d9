"""A Hugging Face Hub on 127.0.0.1 for the upload fault paths (``HF_ENDPOINT`` points the real
``huggingface_hub`` client at it): the token check answers ``whoami``, everything else answers a
chosen status, with the Hub's error headers, so the client raises its own errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.fakes.loopback import answer_json, loopback_server, read_body


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
            read_body(self, gunzip=False)  # uploaded bytes are discarded as they are
            fake.requests.append(f"{self.command} {self.path}")
            if self.path.startswith("/api/whoami"):
                status = fake.whoami_status
                body = (
                    {"type": "user", "name": "alice"} if status == 200 else {"error": "Invalid credentials"}
                )
            else:
                status = fake.other_status
                body = {"error": "Internal Error"} if status >= 500 else {}
            errors = {"X-Error-Message": str(body.get("error", ""))} if status != 200 else {}
            answer_json(self, status, body, errors)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

    return Handler


@contextmanager
def fake_hub_http(whoami_status: int = 200, other_status: int = 500) -> Iterator[FakeHubHttp]:
    made: list[FakeHubHttp] = []

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        made.append(FakeHubHttp(url, whoami_status, other_status))
        return _handler(made[0])

    with loopback_server(handler_for):
        yield made[0]
