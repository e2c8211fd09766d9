"""The fake W&B registry served over HTTP on 127.0.0.1, for the real SDK and its ``wandb-core``.

``tests.fakes.wandb_service.FakeWandb`` holds the registry (orgs, collections, versions, aliases,
manifests) and answers each GraphQL operation with the shapes of the SDK's own generated models.
This server puts it behind ``WANDB_BASE_URL``: ``wandb.Api()`` and the Go service it starts send
their login check, server-features query, lookups, manifest and file-URL queries over HTTP, with
their own timeouts, retries and paging, exactly as against a real deployment. Manifests and
W&B-stored bytes are served from the test's S3 endpoint through presigned URLs. The key is checked
from the request's ``Authorization`` header; an operation the fake does not implement is answered
with 500 and recorded in ``unknown``, so a test fails loudly.

Failure modes are switchable per test: ``behaviour`` "401", "500" or "hang" (every request), or
the same for lookups only after the login check (``after_login``), or for one operation
(``per_operation``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote

from tests.fakes.loopback import answer_json, loopback_server, read_body
from tests.fakes.wandb_service import VALID_KEY, FakeWandb

Behaviour = Literal["ok", "401", "500", "hang"]
_OPERATION = re.compile(r"(?:query|mutation)\s+(\w+)")
_FILE_STREAM = re.compile(r"/files/([^/]+)/([^/]+)/([^/]+)/file_stream")


@dataclass
class RegistryServer:
    fake: FakeWandb
    url: str = ""
    behaviour: Behaviour = "ok"  #: every request
    after_login: Behaviour = "ok"  #: requests other than the login check
    #: one operation's behaviour, e.g. {"GetArtifactMembershipFileUrls": "hang"}; overrides the above
    per_operation: dict[str, Behaviour] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)  #: GraphQL operations, in order
    unknown: list[str] = field(default_factory=list)  #: operations the fake does not implement
    release: threading.Event = field(default_factory=threading.Event)  #: ends stalled answers
    httpd: ThreadingHTTPServer | None = None
    connections: set[socket.socket] = field(default_factory=set)  #: open keep-alive connections

    def go_down(self) -> None:
        """Stop listening and drop open connections: from now on the server refuses at once."""
        if self.httpd is not None:
            self.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _api_key(handler: BaseHTTPRequestHandler) -> str | None:
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return None
    try:
        return base64.b64decode(auth[6:]).decode().partition(":")[2]
    except ValueError:
        return None


def _handler(server: RegistryServer) -> type[BaseHTTPRequestHandler]:
    fake = server.fake

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            server.connections.add(self.connection)

        def finish(self) -> None:
            server.connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            answer_json(self, status, body)

        def do_GET(self) -> None:
            read_body(self)
            path = self.path.split("?")[0]
            if path.startswith("/files/"):  # a run file's bytes (the public API's download)
                self._act(server.behaviour, lambda: self._run_file(path))
                return
            # the plain reachability probe made before the SDK is asked
            self._act(server.behaviour, lambda: self._answer(200, {}))

        def _run_file(self, path: str) -> None:
            if _api_key(self) != VALID_KEY:
                self._answer(401, {"errors": [{"message": "user is not logged in"}]})
                return
            entity, project, run, name = (unquote(p) for p in path.removeprefix("/files/").split("/", 3))
            data = fake.run_file(entity, project, run, name)
            if data is None:
                self._answer(404, {"error": "file not found"})
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:  # uploads to the URLs the run side hands out
            data = read_body(self, gunzip=False)
            fake.uploaded(self.path.split("?")[0].removeprefix("/upload/"), data)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            raw = read_body(self)
            stream = _FILE_STREAM.fullmatch(self.path.split("?")[0])
            if stream:
                self._answer(200, fake.file_stream(*stream.groups(), json.loads(raw or b"{}")))
                return
            if not self.path.startswith("/graphql"):  # wandb-core's own telemetry
                self._answer(200, {})
                return
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                self._answer(400, {"errors": [{"message": "not JSON"}]})
                return
            query = str(request.get("query", ""))
            match = _OPERATION.search(query)
            name = match.group(1) if match else ("Viewer" if "viewer" in query else "?")
            server.operations.append(name)
            login = name == "Viewer"
            behaviour = server.behaviour if server.behaviour != "ok" or login else server.after_login
            behaviour = server.per_operation.get(name, behaviour)
            self._act(behaviour, lambda: self._graphql(name, request.get("variables") or {}))

        def _act(self, behaviour: Behaviour, ok: Any) -> None:
            if behaviour == "hang":
                server.release.wait(120)
                return
            if behaviour == "500":
                self._answer(500, {"errors": [{"message": "internal server error"}]})
            elif behaviour == "401":
                self._answer(401, {"errors": [{"message": "user is not logged in"}]})
            else:
                ok()

        def _graphql(self, name: str, variables: dict[str, Any]) -> None:
            if _api_key(self) != VALID_KEY:
                self._answer(401, {"errors": [{"message": "user is not logged in"}]})
                return
            if name == "Viewer":
                data: Any = {"viewer": {"id": "VXNlcjox", "entity": "alice", "username": "alice"}}
            elif name == "ServerFeaturesQuery":
                data = {"serverInfo": {"features": []}}
            else:
                op = getattr(fake, f"_op_{name}", None)
                if op is None:
                    server.unknown.append(name)
                    self._answer(500, {"errors": [{"message": f"the fake does not implement {name}"}]})
                    return
                fake.calls.append(name)
                try:
                    data = op(variables)
                except Exception as exc:  # the fake's way of failing like the server: "404 Not Found: ..."  # noqa: BLE001
                    text = str(exc)
                    status = int(text[:3]) if text[:3].isdigit() else 500
                    self._answer(status, {"errors": [{"message": text}]})
                    return
            self._answer(200, {"data": data})

    return Handler


@contextmanager
def registry_server(fake: FakeWandb) -> Iterator[RegistryServer]:
    server = RegistryServer(fake)

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        server.url = fake.url = url
        return _handler(server)

    with loopback_server(handler_for) as httpd:
        server.httpd = httpd
        try:
            yield server
        finally:
            server.go_down()
