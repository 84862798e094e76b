"""
A local HTTP server for tests
=============================

``start(Handler)``: a threading server on 127.0.0.1 (an ephemeral port) running `Handler`, a
``QuietHandler`` subclass, in a daemon thread; ``server.shutdown()`` stops it. The debuginfod
and CircleCI tests serve the documented protocols through it.
"""

from __future__ import annotations

import http.server
import threading

__all__ = ("QuietHandler", "start")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers a body with its Content-Length."""

    def send_body(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start(handler) -> http.server.ThreadingHTTPServer:
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
