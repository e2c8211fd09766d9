"""One HTTP server on 127.0.0.1 in a background thread: the shared start and stop of the fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
