"""What the Functions host does to an HTTP request before the worker sees it, and answers itself:
route values decoded, repeated query names joined, a call without a valid key refused; and the
devhost's HTTP listener in its place (`serve`)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

# method, path with query, lower-cased headers, body -> status, headers, body
Dispatch = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


def route_value(raw: str) -> str:
    """A route value as the Functions host hands it over: percent-decoded (UTF-8, invalid bytes
    replaced), except `%2F`, which stays as sent, so a value can never gain a path separator."""
    return "%2F".join(unquote(part) for part in re.split("%2[Ff]", raw))


def query_params(query: str) -> dict[str, str]:
    """The query as the host hands it to the worker: one value per name, a repeated name's values
    joined with "," (StringValues.ToString() in GrpcMessageConversionExtensions.ToRpcHttp,
    Azure/azure-functions-host); the raw query stays in the request's URL."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(given) for name, given in values.items()}


def unauthorized() -> tuple[int, dict[str, str], bytes]:
    """What the host answers a call without a valid key: 401, no body, no Content-Type.

    The host's FunctionInvocationMiddleware returns ASP.NET Core's `UnauthorizedResult` when
    its authorisation policy fails, and that result sets the status alone
    (Azure/azure-functions-host, src/WebJobs.Script.WebHost/Middleware/
    FunctionInvocationMiddleware.cs, `GetResultAsync`). The app's code never runs, so no problem
    body can be given there; this answers the same, so local callers see what Azure sends.
    """
    return 401, {}, b""


def serve(dispatch: Dispatch, port: int) -> ThreadingHTTPServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1:port (0 = any free port) answering through
    `dispatch` (the devhost's)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: with Nagle's algorithm on, the body waits
            # for the client's delayed ACK, about 40 ms on every keep-alive answer (the
            # sandboxes' servers turn it off too). The Functions host has no such wait.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, payload = dispatch(self.command, self.path, headers, body)
            self.send_response(status)
            for name, value in out_headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def __getattr__(self, name: str) -> Any:
            # Every other method (PATCH, TRACE, QUERY, ...) reaches dispatch too, which answers
            # 405 where the route does not take it, as the host does; the base class says 501.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # socketserver's default listen backlog is 5: 20 callers connecting at once overflow it,
        # and the kernel answers the rest with a SYN retry a second later.
        request_queue_size = 128

    return Server(("127.0.0.1", port), Handler)
