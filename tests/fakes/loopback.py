"""The plumbing the HTTP fakes share: one server on 127.0.0.1 in a background thread, a request
body read as clients send it, and a JSON answer."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def loopback_server(
    handler_for: Callable[[str], type[BaseHTTPRequestHandler]],
) -> Iterator[ThreadingHTTPServer]:
    """Serve with the handler ``handler_for(url)`` builds (so the fake it answers for can know
    its own address); stopped on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.RequestHandlerClass = handler_for(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def read_body(handler: BaseHTTPRequestHandler, gunzip: bool = True) -> bytes:
    """The request body, whether sent with a length or chunked (as wandb-core's Go client does),
    and, with ``gunzip``, decompressed when gzipped (as the SDK's service compresses its requests)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raw = b""
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            raw += handler.rfile.read(size)
            handler.rfile.readline()
    else:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
    if gunzip and (handler.headers.get("Content-Encoding") == "gzip" or raw[:2] == b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    return raw


def answer_json(
    handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up on this answer (its timeout, or its process ended)
