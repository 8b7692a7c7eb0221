"""Run the app locally without Azure: Azurite, the HaloPSA and ImmyBot sandboxes, one sync, the routes.

Where Azure Functions Core Tools cannot be installed, this serves the app's HTTP functions on
loopback by calling the very handler objects registered in `function_app.app`, with the host's key
rules: a function-level route takes that function's key or the master key (header
`x-functions-key` or query `code`), an admin route only the master key. Output bindings to the
sync queue run the queue function in-process.

    python -m sandbox.devhost --port 7071        (make run)
    python -m sandbox.devhost --port 0 --existing   (settings from the environment; bench/load.py)
    python -m sandbox.devhost --port 0 --tables C --tables-prefix P --queues C --queues-prefix P
                                   (running table and queue services, as the tests' devhosts)

Invocations run as in the Functions Python worker (`sandbox.worker.Worker`): async handlers on one
event loop that lives as long as the host, plain ones in a thread pool (`--threads`, default as the
worker's PYTHON_THREADPOOL_THREAD_COUNT). One worker process, where Azure may run several.

At start it prints, for the demo set (`sandbox.demo` says what `make run` adds to it), the URLs
worth opening, each carrying a key that opens it; then, for every route of the OpenAPI document,
the keys that open it (never a key that opens nothing); last, the line `listening on <url>`.
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
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from azure.functions.decorators.function_app import Function

from sandbox.demo import DEMO_SETTINGS, guide, showcase
from sandbox.halo import HaloSandbox
from sandbox.halo_data import demo_data, generate
from sandbox.host_http import query_params, route_value, serve, unauthorized
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from sandbox.processes import azurite_or
from sandbox.queues import BindingOut, QueueFunction, QueueHost
from sandbox.worker import Worker

DEMO_RULES = Path(__file__).resolve().parent / "demo_rules.json"
# Loopback-only development keys, printed at start; never used outside this process.
MASTER_KEY = os.environ.get("DEVHOST_MASTER_KEY", "dev-master-key")
DEV_WEBHOOK_SECRET = "dev-webhook-secret-loopback-only"  # noqa: S105 - loopback demo only
# The order a route's methods are printed in.
_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")


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


def keys_of(route: Route) -> tuple[str, ...]:
    """The keys the host lets through to `route`: its function's own key and the master key, or
    the master key alone on an admin route (none is asked for on an anonymous one)."""
    if route.auth == "ANONYMOUS":
        return ()
    if route.auth == "ADMIN":
        return (MASTER_KEY,)
    return (function_key(route.name), MASTER_KEY)


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


def routes(functions: Iterable[Function]) -> tuple[list[Route], dict[str, QueueFunction]]:
    """HTTP routes and queue-triggered functions (by queue name) of an app's functions."""
    http: list[Route] = []
    queues: dict[str, QueueFunction] = {}
    for function in functions:
        bindings = [json.loads(b) for b in function.get_raw_bindings()]
        trigger = next(b for b in bindings if b["direction"] == "IN")
        handler = function.get_user_function()
        outputs = tuple(
            b["queueName"] for b in bindings if b["type"] == "queue" and b["direction"] == "OUT"
        )
        if trigger["type"] == "queueTrigger":
            queues[trigger["queueName"]] = QueueFunction(handler, outputs)
        if trigger["type"] != "httpTrigger":
            continue
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
    """Dispatches HTTP requests to the app's handlers with the host's key checks; with a queue
    service (`queue_connection`, Azurite's), queue bindings go through it (`self.queues`)."""

    def __init__(
        self,
        functions: Iterable[Function],
        worker: Worker | None = None,
        *,
        queue_connection: str | None = None,
        queue_prefix: str = "",
    ) -> None:
        # The app's get_functions() indexes once per process: callers pass its result.
        self.routes, queue_functions = routes(functions)
        self.worker = worker or Worker()
        self.queues = (
            QueueHost(queue_connection, queue_functions, self.worker.call, prefix=queue_prefix)
            if queue_connection
            else None
        )

    def close(self) -> None:
        """Stop delivering queue messages, then the worker."""
        if self.queues is not None:
            self.queues.stop()
        self.worker.close()

    def route_keys(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each route of the app's OpenAPI document ("GET|PUT /api/rules") with every key that
        opens it here, in the order the document lists them. Labelled by route, not function:
        one function may serve several routes (rules and mappings), and an admin function's own
        key opens nothing, so it is never shown."""
        from shared.api.openapi import openapi_document

        document = openapi_document()
        base = document["servers"][0]["url"]
        found = []
        for template, item in document["paths"].items():
            served = self.route_of(re.sub(r"\{\w+\}", "x", template).lstrip("/"))
            if served is None:
                continue
            route = served[0]
            methods = sorted((m.upper() for m in item if m != "parameters"), key=_METHODS.index)
            found.append((f"{'|'.join(methods)} {base}{template}", keys_of(route)))
        return found

    def route_of(self, path: str) -> tuple[Route, re.Match[str]] | None:
        """The route serving `path` (after /api/), as the host picks it (the first whose
        template matches), and the match."""
        for route in self.routes:
            match = route.pattern.match(path)
            if match is not None:
                return route, match
        return None

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request as (status, headers, body)."""
        split = urlsplit(target)
        params = query_params(split.query)
        path = split.path
        if not path.startswith("/api/"):
            return _text(404, "not found")
        found = self.route_of(path[len("/api/") :])
        if found is None:
            return _text(404, "no function has this route")
        route, match = found
        if method not in route.methods:
            status, out, text = _text(405, "method not allowed")
            allow = documented_methods(path) or route.methods
            return status, {**out, "Allow": ", ".join(sorted(allow))}, text
        key = headers.get("x-functions-key") or params.get("code")
        if route.auth != "ANONYMOUS" and key not in keys_of(route):
            return unauthorized()
        request = func.HttpRequest(
            method,
            f"http://127.0.0.1{target}",
            headers=headers,
            params=params,
            route_params={k: route_value(v) for k, v in match.groupdict().items() if v is not None},
            body=body,
        )
        outs = [BindingOut(name) for name in route.outputs]
        try:
            response: func.HttpResponse = self.worker.call(route.handler, request, *outs)
        except Exception:
            # The host answers an unhandled exception with a bare 500; so does this, rather
            # than dropping the connection unanswered. The traceback is for the developer.
            traceback.print_exc()
            return _text(500, "the function raised an exception")
        if self.queues is not None:  # without a queue service, nothing is queued
            self.queues.flush(outs)  # the host writes output bindings after the function
        out_headers = dict(response.headers)
        if response.mimetype:
            out_headers["Content-Type"] = response.mimetype + (
                f"; charset={response.charset}" if response.charset else ""
            )
        return response.status_code, out_headers, response.get_body() or b""


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


def _text(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, message.encode()


def _prefix(value: str) -> str:
    """A table or queue name prefix, as both services take it (and names stay apart)."""
    if not re.fullmatch(r"[a-z0-9]{1,20}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: 1-20 lowercase letters or digits")
    return value


def _parser() -> argparse.ArgumentParser:
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
    storage = parser.add_argument_group(
        "storage",
        "Without these it starts Azurite's table and queue services in memory. With them it uses"
        " running ones (the tests' own Azurite), under prefixes that keep its names apart.",
    )
    helps = {
        "--tables": "a running table service's connection string: start no Azurite table service",
        "--tables-prefix": "put before every table name (the app's TABLES_PREFIX)",
        "--queues": "a running queue service's connection string: start no Azurite queue service",
        "--queues-prefix": "put before every queue name the bindings use",
    }
    for flag, text in helps.items():
        prefix = flag.endswith("prefix")
        metavar, kind = ("PREFIX", _prefix) if prefix else ("CONNECTION", str)
        storage.add_argument(flag, metavar=metavar, type=kind, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start everything, sync once, serve until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.existing and any((args.tables, args.queues, args.tables_prefix, args.queues_prefix)):
        parser.error("--existing takes its storage from the environment, not from flags")
    worker = Worker(args.threads or None)
    if args.existing:
        import function_app

        # The bindings' connection, when it names a queue endpoint (Azurite's, say).
        storage = os.environ.get("AzureWebJobsStorage", "")
        queues = storage if "QueueEndpoint=" in storage else None
        host = DevHost(function_app.app.get_functions(), worker, queue_connection=queues)
        return _serve(host, args.port)
    return _demo(args, worker)


def _demo(args: argparse.Namespace, worker: Worker) -> int:
    """Storage, both sandboxes and the settings for them, the rules, one sync; then serve."""
    demo = not args.clients
    data = demo_data(date.today()) if demo else generate(args.clients)
    immy_data = showcase(data, immy_data_for(data)) if demo else immy_data_for(data)
    with (
        azurite_or(args.tables, args.queues) as (tables, queues),
        HaloSandbox(data) as halo,
        ImmyBotSandbox(immy_data) as immy,
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
                "TABLES_CONNECTION_STRING": tables,
                "AzureWebJobsStorage": queues,
                "HALO_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
                "SYNC_SCHEDULE": "0 */15 * * * *",
                **(DEMO_SETTINGS if demo else {}),
                # Unset, the prefix is whatever the environment says, as before the flag.
                **({"TABLES_PREFIX": args.tables_prefix} if args.tables_prefix else {}),
            }
        )
        os.environ.pop("TABLES_ENDPOINT", None)
        import function_app  # after the settings are in place
        from shared.api.rules import import_rules
        from shared.runtime.process import get_store
        from shared.sync.run import run_sync

        import_rules(get_store(), DEMO_RULES.read_bytes(), date.today())
        report = asyncio.run(run_sync())
        print(f"sync: {report.outcome} {json.dumps(report.targets)}", flush=True)
        print(f"halopsa sandbox: {halo.url} (PUT {halo.url}/_sandbox/faults)", flush=True)
        print(f"immybot sandbox: {immy.url}", flush=True)
        print(f"halo webhook: POST /api/halo/events, Bearer {DEV_WEBHOOK_SECRET}", flush=True)
        host = DevHost(
            function_app.app.get_functions(),
            worker,
            queue_connection=queues,
            queue_prefix=args.queues_prefix or "",
        )
        return _serve(host, args.port, sights=demo)


def _serve(host: DevHost, port: int, *, sights: bool = False) -> int:
    server = serve(host.dispatch, port)
    if host.queues is not None:
        host.queues.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"worker: one event loop, {host.worker.threads} threads", flush=True)
    routes = host.route_keys()
    if sights:
        own = {r.name: keys_of(r)[0] for r in host.routes if keys_of(r)}
        print("\n".join(guide(url, own)), flush=True)
    width = max(len(route) for route, _ in routes)
    print("keys (header x-functions-key, or ?code=KEY), by route:", flush=True)
    for route, keys in routes:
        print(f"  {route:<{width}}  {'  '.join(keys) or '(none needed)'}", flush=True)
    # Last: tests and scripts wait for this line, by which everything above is printed.
    print(f"listening on {url}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
