"""What the loopback API simulators share: JSON over keep-alive HTTP/1.1, and their bookkeeping.

`ServedSandbox` serves any `handle(method, target, headers, body) -> Response` on a `JsonServer`
in a daemon thread (`start`/`stop`, or `with`); a command line ends in `serve_until_signalled`.
`ApiSandbox` adds what `sandbox.halo` and `sandbox.immybot` both keep around an API: the data set
and its index, `SandboxFaults`, bearer tokens, request counts, the `/_sandbox/` control endpoints
and the route/latency/count steps of `handle`. Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import secrets
import signal
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass(slots=True)
class Response:
    """One answer: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_response(status: int, error: str, description: str, **headers: str) -> Response:
    """An OAuth2-style error: `{"error": ..., "error_description": ...}` plus extra headers."""
    return Response(status, {"error": error, "error_description": description}, dict(headers))


def form_fields(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict; a repeated key keeps its last value."""
    text = body.decode("utf-8", "replace")
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


# What a server calls for every request: (method, target, headers, body) -> the answer.
Answer = Callable[[str, str, Mapping[str, str], bytes], Response]


class HeaderView(Mapping[str, str]):
    """Case-insensitive read-only headers (http.server's Message) as a plain Mapping."""

    def __init__(self, message: Message) -> None:
        self._message = message

    def __getitem__(self, key: str) -> str:
        value = self._message.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._message.keys())

    def __len__(self) -> int:
        return len(self._message)


class JsonServer(ThreadingHTTPServer):
    """A threading HTTP server that hands every request to `answer` and tracks connections."""

    daemon_threads = True
    # The default backlog of 5 makes a burst of concurrent connects wait for SYN retries.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], answer: Answer, server_version: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.answer = answer
        self.server_version = server_version
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, JsonHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client drops its connection (clients cancel requests all the time)."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember open connections, so `stop` can end idle keep-alive ones."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down; their handler threads then end on their own."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


class JsonHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the server's `answer`, writes the JSON response."""

    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    sys_version = ""
    timeout = 120  # an idle keep-alive connection does not hold a thread forever
    server: JsonServer

    def setup(self) -> None:
        """Disable Nagle and register the connection with the server."""
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Flush, then forget the connection even if flushing failed."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def version_string(self) -> str:
        """The Server header: each simulator names itself (set per server, not per class)."""
        return f"{self.server.server_version} {self.sys_version}"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the default handler writes every request to stderr."""

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve("POST")

    def do_PUT(self) -> None:
        """Serve a PUT."""
        self._serve("PUT")

    def do_DELETE(self) -> None:
        """Serve a DELETE."""
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        """Serve a PATCH."""
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            # The body's end is unknown, so the connection cannot carry another request.
            self.close_connection = True
            self._send(error_response(400, "invalid_request", "bad Content-Length"))
            return
        body = self.rfile.read(length) if length else b""
        self._send(self.server.answer(method, self.path, HeaderView(self.headers), body))

    def _send(self, response: Response) -> None:
        payload = json.dumps(response.body, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it


class ServedSandbox(ABC):
    """A simulator served on `host:port` in a daemon thread: `start`, `stop`, `with`, `url`."""

    def __init__(self, host: str, port: int, *, server_version: str, thread_name: str) -> None:
        self.host = host
        self._port = port
        self._server_version = server_version
        self._thread_name = thread_name
        self._server: JsonServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request (the HTTP handler's only entry point)."""

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = JsonServer((self.host, self._port), self.handle, self._server_version)
        self._server = server
        self._port = server.server_address[1]  # so `url` still names it after `stop`
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self._thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the requested one before `start`)."""
        return self._port

    @property
    def netloc(self) -> str:
        """Host and port as they go in a URL, e.g. "127.0.0.1:54321" or "[::1]:54321"."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL the server really listens on, e.g. "http://127.0.0.1:54321"."""
        return f"http://{self.netloc}"


# -- fault settings --------------------------------------------------------------------------


def is_number(value: Any, minimum: float) -> bool:
    """Whether a setting is a finite int or float (not a bool) of at least `minimum`."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= minimum
    )


def is_whole(value: Any, minimum: int | None) -> bool:
    """Whether a setting is an int (not a bool) of at least `minimum` (None: any)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
    )


class SandboxFaults:
    """The settings every simulator's faults dataclass has, and its JSON round trip."""

    # Declared, not defined: the @dataclass subclasses provide them.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    latency_ms: float
    error_rate: float
    error_status: int
    seed: int
    token_ttl_seconds: int

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON object (the shape `from_json` and `PUT /_sandbox/faults` take)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Faults from a JSON object; missing keys take defaults, unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        return cls(**dict(data))

    @classmethod
    def from_args(cls, args: argparse.Namespace, **more: Any) -> Self:
        """Faults from the options `add_common_arguments` adds, plus a subclass's own settings."""
        common = {
            "latency_ms": args.latency_ms,
            "error_rate": args.error_rate,
            "error_status": args.error_status,
            "seed": args.seed,
            "token_ttl_seconds": args.token_ttl,
        }
        return cls(**common, **more)

    def _check_errors(self) -> None:
        """Validate `error_rate`, `error_status` and `seed` (for the subclass's __post_init__)."""
        if not is_number(self.error_rate, 0) or self.error_rate > 1:
            raise ValueError("error_rate must be between 0 and 1")
        if not is_whole(self.error_status, 400) or self.error_status > 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        if not is_whole(self.seed, None):
            raise ValueError("seed must be an integer")


# -- a simulated API -------------------------------------------------------------------------

DataT = TypeVar("DataT")
IndexT = TypeVar("IndexT")
FaultsT = TypeVar("FaultsT", bound=SandboxFaults)
_CONTROL_PATHS = ("/_sandbox/stats", "/_sandbox/reset", "/_sandbox/faults")


class ApiSandbox(ServedSandbox, Generic[DataT, IndexT, FaultsT]):
    """A served API simulator: data and its index, faults, bearer tokens and request counts.

    `handle` answers `/_sandbox/` itself and sends the rest through `_route` (a stats key and a
    detail, or None for 404), the faults' latency, `_answer`, and the counters; a subclass
    supplies those two and `_api_error`, its API's error shape."""

    def __init__(
        self,
        data: DataT,
        index: Callable[[DataT], IndexT],
        faults: FaultsT,
        *,
        host: str,
        port: int,
        server_version: str,
        thread_name: str,
    ) -> None:
        super().__init__(host, port, server_version=server_version, thread_name=thread_name)
        # One lock guards every piece of mutable state below; handler threads share it.
        self._lock = threading.Lock()
        self._make_index = index
        self._data = data
        self._index = index(data)
        self._tokens: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._tokens_issued = 0
        self._faults = faults
        self._rng = random.Random(0)
        self.set_faults(faults)

    # -- data, faults, stats ------------------------------------------------------------------

    @property
    def data(self) -> DataT:
        """The data set being served."""
        return self._data

    def set_data(self, data: DataT) -> None:
        """Serve another data set from the next request on (tokens stay valid)."""
        index = self._make_index(data)  # built before the swap, so requests never see half an index
        with self._lock:
            self._data, self._index = data, index

    @property
    def faults(self) -> FaultsT:
        """The faults in force."""
        return self._faults

    def set_faults(self, faults: FaultsT) -> None:
        """Replace the faults, reseed the random errors and restart any state kept for them."""
        # A private copy: editing the caller's object later cannot desync the state kept for it.
        faults = type(faults).from_json(faults.to_json())
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            self._restart_faults(faults)

    def _restart_faults(self, faults: FaultsT) -> None:
        """Reset a subclass's per-faults state; called under the lock by `set_faults`."""

    def stats(self) -> dict[str, Any]:
        """Requests per stats key, responses per status, their total and the tokens issued."""
        with self._lock:
            return {
                "requests": self._request_counts(),
                "statuses": {str(status): n for status, n in sorted(self._statuses.items())},
                "total": sum(self._requests.values()),
                "tokens_issued": self._tokens_issued,
            }

    def _request_counts(self) -> dict[str, int]:
        """The "requests" of `stats` (under the lock): every key seen so far, sorted."""
        return dict(sorted(self._requests.items()))

    def reset_stats(self) -> None:
        """Zero every counter (tokens and faults are kept)."""
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._tokens_issued = 0

    # -- dispatch -----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request (the HTTP handler's only entry point)."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        # Both APIs read query parameter names case-insensitively (ASP.NET's binding does).
        query = {
            key.lower(): values[-1]
            for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        route = self._route(path)
        if route is None:
            return self._api_error(404, "not_found", f"no such endpoint: {path}")
        key, detail = route
        faults = self._faults
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000)
        try:
            response = self._answer(method, key, detail, query, headers, body, faults)
        except Exception:  # a sandbox bug must still answer, or the client just sees a hang
            response = self._api_error(500, "sandbox_error", "the sandbox failed on this request")
        with self._lock:
            self._requests[key] += 1
            self._statuses[response.status] += 1
        return response

    @abstractmethod
    def _route(self, path: str) -> tuple[str, str] | None:
        """The stats key a path names and a detail from it ("" if none), or None: no such path."""

    @abstractmethod
    def _answer(
        self,
        method: str,
        key: str,
        detail: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        faults: FaultsT,
    ) -> Response:
        """Answer a routed request; `query` has lower-cased names."""

    @abstractmethod
    def _api_error(self, status: int, error: str, description: str) -> Response:
        """An error in the simulated API's own shape (for 404s and the sandbox's own failures)."""

    def _injected_error(self, faults: FaultsT) -> bool:
        """Whether this request draws one of the random errors `faults.error_rate` asks for."""
        if faults.error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < faults.error_rate

    # -- tokens -------------------------------------------------------------------------------

    def _issue_token(self, ttl: int, nbytes: int) -> str:
        """A new bearer token of `nbytes` random bytes, valid for `ttl` seconds."""
        token = secrets.token_urlsafe(nbytes)
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) > 10_000:  # a long run must not keep every expired token
                self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
            self._tokens_issued += 1
        return token

    def _bearer_ok(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries `Authorization: Bearer <a live token we issued>`."""
        scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        now = time.monotonic()
        with self._lock:
            expires = self._tokens.get(token)
            if expires is None:
                return False
            if expires <= now:
                del self._tokens[token]
                return False
            return True

    # -- control ------------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> Response:
        if path == "/_sandbox/stats" and method == "GET":
            return Response(200, self.stats())
        if path == "/_sandbox/reset" and method == "POST":
            self.reset_stats()
            return Response(200, {"reset": True})
        if path == "/_sandbox/faults" and method == "GET":
            return Response(200, self._faults.to_json())
        if path == "/_sandbox/faults" and method == "PUT":
            try:
                faults = type(self._faults).from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                return error_response(400, "invalid_faults", str(error))
            self.set_faults(faults)
            return Response(200, faults.to_json())
        if path in _CONTROL_PATHS:
            return error_response(405, "method_not_allowed", f"{method} is not allowed here")
        return error_response(404, "not_found", f"no such endpoint: {path}")


# -- command line ----------------------------------------------------------------------------


def add_common_arguments(
    parser: argparse.ArgumentParser, *, token_ttl: int, client_id: str, client_secret: str
) -> None:
    """Add the options every simulator takes: --host, --seed, shared faults and credentials."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--seed", type=int, default=1, help="generator and fault seed")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of API errors")
    parser.add_argument("--error-status", type=int, default=503, help="status of those errors")
    parser.add_argument("--token-ttl", type=int, default=token_ttl, help="token lifetime, seconds")
    parser.add_argument("--client-id", default=client_id)
    parser.add_argument("--client-secret", default=client_secret)


def sandbox_options(args: argparse.Namespace) -> dict[str, Any]:
    """The sandbox constructor keywords that `add_common_arguments`' options and --port set."""
    # Their argparse names are the constructor's keywords.
    return {name: getattr(args, name) for name in ("client_id", "client_secret", "host", "port")}


def serve_until_signalled(sandbox: ServedSandbox) -> None:
    """Serve, print `listening on URL` for whoever started us, and return on SIGINT or SIGTERM."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with sandbox:
        print(f"listening on {sandbox.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(0.5):
            pass
