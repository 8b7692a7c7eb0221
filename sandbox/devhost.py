"""Run the app locally without Azure: Azurite, the HaloPSA and ImmyBot sandboxes, one sync, the routes.

Where Azure Functions Core Tools cannot be installed, this serves the app's HTTP functions on
loopback by calling the very handler objects registered in `function_app.app`, with the host's key
rules: a function-level route takes that function's key or the master key (header
`x-functions-key` or query `code`), an admin route only the master key. Output bindings to the
sync queue run the queue function in-process.

    python -m sandbox.devhost --port 7071        (make run)
    python -m sandbox.devhost --port 0 --existing   (settings from the environment; bench/load.py)

Invocations run as in the Functions Python worker (`Worker`): async handlers on one event loop
that lives as long as the host, plain ones in a thread pool (`--threads`, default as the worker's
PYTHON_THREADPOOL_THREAD_COUNT). One worker process, where Azure may run several.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.decorators.function_app import Function

from sandbox.halo import HaloSandbox
from sandbox.halo_data import demo_data, generate
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from sandbox.processes import azurite_table
from sandbox.worker import QueueOut, Worker, call_once

DEMO_RULES = Path(__file__).resolve().parent / "demo_rules.json"
# Loopback-only development keys, printed at start; never used outside this process.
MASTER_KEY = os.environ.get("DEVHOST_MASTER_KEY", "dev-master-key")


def function_key(name: str) -> str:
    """The development key of one function."""
    return f"dev-key-{name}"


@dataclass(frozen=True)
class Route:
    """One HTTP function as the host would route it."""

    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth: str
    handler: Callable[..., Any]
    outputs: tuple[str, ...]


def _pattern(template: str) -> re.Pattern[str]:
    # "rules/{software?}" -> ^rules(?:/(?P<software>[^/]+))?$ ; "{a:regex(^(x|y)$)}" -> (?P<a>x|y)
    parts = []
    for segment in template.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)(?::regex\((.*)\))?(\?)?\}", segment)
        if match is None:
            parts.append("/" + re.escape(segment))
            continue
        name, constraint, optional = match.groups()
        body = constraint.removeprefix("^").removesuffix("$") if constraint else "[^/]+"
        group = f"(?P<{name}>{body})"
        parts.append(f"(?:/{group})?" if optional else f"/{group}")
    return re.compile("^" + "".join(parts)[1:] + "$", re.IGNORECASE)


def routes(functions: Iterable[Function]) -> tuple[list[Route], dict[str, Callable[..., Any]]]:
    """HTTP routes and queue-triggered handlers (by queue name) of an app's functions."""
    http: list[Route] = []
    queues: dict[str, Callable[..., Any]] = {}
    for function in functions:
        bindings = [json.loads(b) for b in function.get_raw_bindings()]
        trigger = next(b for b in bindings if b["direction"] == "IN")
        handler = function.get_user_function()
        if trigger["type"] == "queueTrigger":
            queues[trigger["queueName"]] = handler
        if trigger["type"] != "httpTrigger":
            continue
        outputs = tuple(
            b["queueName"] for b in bindings if b["type"] == "queue" and b["direction"] == "OUT"
        )
        http.append(
            Route(
                name=function.get_function_name(),
                pattern=_pattern(trigger.get("route") or function.get_function_name()),
                methods=frozenset(m.upper() for m in trigger.get("methods") or ["GET", "POST"]),
                auth=str(trigger.get("authLevel", "FUNCTION")).upper(),
                handler=handler,
                outputs=outputs,
            )
        )
    return http, queues


class DevHost:
    """Dispatches HTTP requests to the app's handlers with the host's key checks."""

    def __init__(self, functions: Iterable[Function], worker: Worker | None = None) -> None:
        # The app's get_functions() indexes once per process: callers pass its result.
        self.routes, self.queues = routes(functions)
        self.worker = worker or Worker()

    def keys(self) -> dict[str, str]:
        """Every key that opens something: the master key, and one per function-level route
        (an admin route opens to the master key alone, so its own key would open nothing)."""
        keys = {r.name: function_key(r.name) for r in self.routes if r.auth != "ADMIN"}
        return {"master": MASTER_KEY, **keys}

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request as (status, headers, body)."""
        split = urlsplit(target)
        params = query_params(split.query)
        path = split.path
        if not path.startswith("/api/"):
            return _text(404, "not found")
        for route in self.routes:
            match = route.pattern.match(path[len("/api/") :])
            if match is None:
                continue
            if method not in route.methods:
                status, out, text = _text(405, "method not allowed")
                allow = documented_methods(path) or route.methods
                return status, {**out, "Allow": ", ".join(sorted(allow))}, text
            key = headers.get("x-functions-key") or params.get("code")
            allowed = (
                {MASTER_KEY} if route.auth == "ADMIN" else {MASTER_KEY, function_key(route.name)}
            )
            if route.auth != "ANONYMOUS" and key not in allowed:
                return _unauthorized()
            request = func.HttpRequest(
                method,
                f"http://127.0.0.1{target}",
                headers=headers,
                params=params,
                route_params={
                    k: route_value(v) for k, v in match.groupdict().items() if v is not None
                },
                body=body,
            )
            outs = [QueueOut(self._queue_runner(name)) for name in route.outputs]
            try:
                response: func.HttpResponse = self.worker.call(route.handler, request, *outs)
            except Exception:
                # The host answers an unhandled exception with a bare 500; so does this, rather
                # than dropping the connection unanswered. The traceback is for the developer.
                traceback.print_exc()
                return _text(500, "the function raised an exception")
            out_headers = dict(response.headers)
            if response.mimetype:
                out_headers["Content-Type"] = response.mimetype + (
                    f"; charset={response.charset}" if response.charset else ""
                )
            return response.status_code, out_headers, response.get_body() or b""
        return _text(404, "no function has this route")

    def _queue_runner(self, queue: str) -> Callable[[str], None]:
        def run(message: str) -> None:
            call_once(self.queues[queue], func.QueueMessage(body=message.encode()))

        return run


def documented_methods(path: str) -> set[str]:
    """The methods the app's OpenAPI document gives `path` (one function may serve several
    paths, each taking fewer methods than the function), for a 405's Allow header."""
    from shared.api.openapi import openapi_document

    document = openapi_document()
    base = document["servers"][0]["url"]
    for template, item in document["paths"].items():
        pattern = re.sub(r"\\{\w+\\}", "[^/]+", re.escape(base + template))
        if re.fullmatch(pattern, path):
            return {m.upper() for m in item if m != "parameters"}
    return set()


def query_params(query: str) -> dict[str, str]:
    """The query as the host hands it to the worker: one value per name, a repeated name's values
    joined with "," (StringValues.ToString() in GrpcMessageConversionExtensions.ToRpcHttp,
    Azure/azure-functions-host); the raw query stays in the request's URL."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(given) for name, given in values.items()}


def route_value(raw: str) -> str:
    """A route value as the Functions host hands it over: percent-decoded (UTF-8, invalid bytes
    replaced), except `%2F`, which stays as sent, so a value can never gain a path separator."""
    return "%2F".join(unquote(part) for part in re.split("%2[Ff]", raw))


def _unauthorized() -> tuple[int, dict[str, str], bytes]:
    """What the host answers a call without a valid key: 401, no body, no Content-Type.

    The host's FunctionInvocationMiddleware returns ASP.NET Core's `UnauthorizedResult` when
    its authorisation policy fails, and that result sets the status alone
    (Azure/azure-functions-host, src/WebJobs.Script.WebHost/Middleware/
    FunctionInvocationMiddleware.cs, `GetResultAsync`). The app's code never runs, so no problem
    body can be given there; this answers the same, so local callers see what Azure sends.
    """
    return 401, {}, b""


def _text(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, message.encode()


def serve(host: DevHost, port: int) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:port (0 = any free port) answering through `host`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, payload = host.dispatch(self.command, self.path, headers, body)
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


def main(argv: list[str] | None = None) -> int:
    """Start everything, sync once, serve until interrupted."""
    parser = argparse.ArgumentParser(
        description="Serve halo-immy locally with Azurite and the sandbox."
    )
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument(
        "--clients", type=int, default=0, help="generated clients (0: the demo set)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="the worker's thread pool for plain handlers (default: as the Python worker)",
    )
    parser.add_argument(
        "--existing",
        action="store_true",
        help="serve with the settings already in the environment; start and sync nothing",
    )
    args = parser.parse_args(argv)
    worker = Worker(args.threads or None)
    if args.existing:
        import function_app

        return _serve(DevHost(function_app.app.get_functions(), worker), args.port)

    data = generate(args.clients) if args.clients else demo_data(date.today())
    with (
        azurite_table() as azurite,
        HaloSandbox(data) as halo,
        ImmyBotSandbox(immy_data_for(data)) as immy,
    ):
        os.environ.update(
            {
                "IMMY_BASE_URL": immy.url,
                "IMMY_TENANT_ID": immy.entra_tenant,
                "IMMY_CLIENT_ID": "immy-client",
                "IMMY_CLIENT_SECRET": "immy-secret",
                "IMMY_AUTHORITY_HOST": immy.url,
                "HALO_BASE_URL": halo.url,
                "HALO_CLIENT_ID": "sandbox-client",
                "HALO_CLIENT_SECRET": "sandbox-secret",
                "HALO_REQUESTS_PER_MINUTE": "100000",
                "TABLES_CONNECTION_STRING": azurite.connection_string,
                "SYNC_SCHEDULE": "0 */15 * * * *",
            }
        )
        os.environ.pop("TABLES_ENDPOINT", None)
        import function_app  # after the settings are in place
        from shared.api.rules import import_rules
        from shared.store.repository import get_store
        from shared.sync.run import run_sync

        import_rules(get_store(), DEMO_RULES.read_bytes(), date.today())
        report = asyncio.run(run_sync())
        print(f"sync: {report.outcome} {json.dumps(report.targets)}", flush=True)
        print(f"halopsa sandbox: {halo.url} (PUT {halo.url}/_sandbox/faults)", flush=True)
        print(f"immybot sandbox: {immy.url}", flush=True)
        return _serve(DevHost(function_app.app.get_functions(), worker), args.port)


def _serve(host: DevHost, port: int) -> int:
    server = serve(host, port)
    print(f"keys: {json.dumps(host.keys())}", flush=True)
    print(f"worker: one event loop, {host.worker.threads} threads", flush=True)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        host.worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
