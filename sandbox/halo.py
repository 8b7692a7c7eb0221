"""A HaloPSA API simulator on loopback: OAuth2 client credentials, paged lists, faults on demand.

Speaks the dialect `shared.halo_client` relies on (DESIGN.md section 8): `POST /auth/token`, list
resources under `/api/` with HaloPSA's wrapper keys, `pageinate`/`page_size`/`page_no` paging with
`record_count`, `includeinactive`, `includelines`, `client_id`, and `Tickets/{id}`. Faults (rate
limits, random errors, latency, token revocation, failing pages) are set in code or over
`PUT /_sandbox/faults`; `GET /_sandbox/stats` counts what clients sent. Standard library only.

    python -m sandbox.halo --port 8089 --clients 5000 --rate-limit 10
"""

from __future__ import annotations

import argparse
import hmac
import json
import math
import random
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed

DEFAULT_CLIENT_ID = "sandbox-client"
# A published credential of a loopback simulator, not a secret.
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105
DEFAULT_PAGE_SIZE = 50
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path
TOKEN_RESOURCE = "auth/token"  # noqa: S105 - a stats key

# Resource -> the list's wrapper key, which is also the HaloDataSet attribute.
RESOURCES: dict[str, str] = {
    "Client": "clients",
    "Site": "sites",
    "ClientContract": "contracts",
    "RecurringInvoice": "invoices",
    "Item": "items",
    "Asset": "assets",
    "Users": "users",
    "Tickets": "tickets",
}
_CANONICAL = {name.lower(): name for name in RESOURCES}  # HaloPSA routes ignore case
_WITH_CLIENT = frozenset(
    {"Site", "ClientContract", "RecurringInvoice", "Asset", "Users", "Tickets"}
)
_SITE_FIELD = {
    "ClientContract": "site_id",
    "RecurringInvoice": "sitenumber",
    "Asset": "site_id",
    "Users": "site_id",
    "Tickets": "site_id",
}


def _flag_inactive(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda record: bool(record.get(key))


# What "inactive" means per resource; `includeinactive=true` adds these records back.
_INACTIVE: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "Client": _flag_inactive("inactive"),
    "Site": _flag_inactive("inactive"),
    "Users": _flag_inactive("inactive"),
    "Asset": _flag_inactive("inactive"),
    "ClientContract": lambda record: record.get("active") is False,
    "RecurringInvoice": _flag_inactive("disabled"),
}


# -- faults ----------------------------------------------------------------------------------


@dataclass
class Faults:
    """Misbehaviour to simulate. `fail` rules look like
    `{"resource": "RecurringInvoice", "page": "last" | 3 | None, "status": 500, "times": 1 | None}`
    (page None = every page; times None = forever); a list read without paging is page 1 of 1."""

    rate_limit_per_second: float | None = None
    error_rate: float = 0.0
    error_status: int = 503
    seed: int = 0
    latency_ms: float = 0.0
    token_ttl_seconds: int = 3600
    revoke_tokens_after: int | None = None
    fail: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rate_limit_per_second is not None and not _number(self.rate_limit_per_second, 0):
            raise ValueError("rate_limit_per_second must be a number >= 0 or null")
        if not _number(self.error_rate, 0) or self.error_rate > 1:
            raise ValueError("error_rate must be between 0 and 1")
        if not _whole(self.error_status, 400) or self.error_status > 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        if not _whole(self.seed, None):
            raise ValueError("seed must be an integer")
        if not _number(self.latency_ms, 0):
            raise ValueError("latency_ms must be a number >= 0")
        if not _whole(self.token_ttl_seconds, 0):
            raise ValueError("token_ttl_seconds must be an integer >= 0")
        if self.revoke_tokens_after is not None and not _whole(self.revoke_tokens_after, 0):
            raise ValueError("revoke_tokens_after must be an integer >= 0 or null")
        if not isinstance(self.fail, list):
            raise ValueError("fail must be a list of rules")
        self.fail = [_fail_rule(rule) for rule in self.fail]

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON object (the shape `from_json` and `PUT /_sandbox/faults` take)."""
        return {
            "rate_limit_per_second": self.rate_limit_per_second,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "seed": self.seed,
            "latency_ms": self.latency_ms,
            "token_ttl_seconds": self.token_ttl_seconds,
            "revoke_tokens_after": self.revoke_tokens_after,
            "fail": [dict(rule) for rule in self.fail],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Faults from a JSON object; missing keys take defaults, unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        return cls(**dict(data))


def _number(value: Any, minimum: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= minimum
    )


def _whole(value: Any, minimum: int | None) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
    )


def _fail_rule(rule: Any) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise ValueError("a fail rule must be an object")
    unknown = sorted(set(rule) - {"resource", "page", "status", "times"})
    if unknown:
        raise ValueError(f"unknown fail rule keys: {', '.join(unknown)}")
    resource = _CANONICAL.get(str(rule.get("resource", "")).lower())
    if resource is None:
        raise ValueError(f"fail rule resource must be one of {', '.join(RESOURCES)}")
    page = rule.get("page")
    if not (page is None or page == "last" or _whole(page, 1)):
        raise ValueError('fail rule page must be "last", a page number >= 1, or null')
    status = rule.get("status", 500)
    if not _whole(status, 400) or status > 599:
        raise ValueError("fail rule status must be 400-599")
    times = rule.get("times")
    if times is not None and not _whole(times, 0):
        raise ValueError("fail rule times must be an integer >= 0 or null")
    return {"resource": resource, "page": page, "status": status, "times": times}


# -- the precomputed views -------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if type(value) is int:  # the common case first: this runs for every record at index time
        return value
    # Loaded data may carry ids as floats or digit strings, as HaloPSA itself sometimes does.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _sort_key(record: Any) -> tuple[int, int, str]:
    number = _as_int(record.get("id")) if isinstance(record, dict) else None
    return (0, number, "") if number is not None else (1, 0, str(record))


class _View:
    """One resource's records under one set of flags, sorted by id, with a per-client index."""

    def __init__(self, records: list[Any], by_client: bool) -> None:
        self.records = records
        self.by_client: dict[int | None, list[Any]] = {}
        if by_client:
            for record in records:
                key = _as_int(record.get("client_id")) if isinstance(record, dict) else None
                self.by_client.setdefault(key, []).append(record)


class _Index:
    """Every answer's record list computed once per data set, so a request only slices."""

    def __init__(self, data: HaloDataSet) -> None:
        self.views: dict[tuple[str, bool, bool], _View] = {}
        for resource, key in RESOURCES.items():
            every = sorted(getattr(data, key), key=_sort_key)
            inactive = _INACTIVE.get(resource)
            active = (
                [r for r in every if not (isinstance(r, dict) and inactive(r))]
                if inactive
                else every
            )
            for include_inactive, rows in ((True, every), (False, active)):
                view = _View(rows, resource in _WITH_CLIENT)
                self.views[(resource, include_inactive, True)] = view
                if resource != "RecurringInvoice":
                    self.views[(resource, include_inactive, False)] = view
            if resource == "RecurringInvoice":
                # Lines are most of an invoice's weight; strip them once, not per request.
                bare = {id(r): _without_lines(r) for r in every}
                for include_inactive, rows in ((True, every), (False, active)):
                    stripped = [bare[id(r)] for r in rows]
                    self.views[(resource, include_inactive, False)] = _View(stripped, True)
        self.tickets: dict[int, Any] = {}
        for ticket in data.tickets:
            number = _as_int(ticket.get("id")) if isinstance(ticket, dict) else None
            if number is not None:
                self.tickets.setdefault(number, ticket)

    def select(
        self,
        resource: str,
        include_inactive: bool,
        include_lines: bool,
        client_id: int | None,
        site_id: int | None,
    ) -> list[Any]:
        """The records a list request matches, in id order."""
        view = self.views[(resource, include_inactive, include_lines)]
        rows = view.records
        if client_id is not None and resource in _WITH_CLIENT:
            rows = view.by_client.get(client_id, [])
        site_field = _SITE_FIELD.get(resource)
        if site_id is not None and site_field:
            rows = [
                r for r in rows if isinstance(r, dict) and _as_int(r.get(site_field)) == site_id
            ]
        return rows


def _without_lines(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    return {k: v for k, v in record.items() if k != "lines"}


# -- request handling ------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    """One answer: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _BadParam(ValueError):
    pass


def _error(status: int, error: str, description: str, **headers: str) -> Response:
    return Response(status, {"error": error, "error_description": description}, dict(headers))


def _int_param(query: Mapping[str, str], name: str, minimum: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise _BadParam(f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise _BadParam(f"{name} must be at least {minimum}")
    return value


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "").strip().lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise _BadParam(f"{name} must be true or false")


class HaloSandbox:
    """A HaloPSA API on loopback. Use `with HaloSandbox(data) as halo:` and read `halo.url`."""

    def __init__(
        self,
        data: HaloDataSet,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        tenant: str | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._data = data
        self._index = _Index(data)
        self._tokens: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._tokens_issued = 0
        self._faults = Faults()
        self._rng = random.Random(0)
        self._fail_left: list[int | None] = []
        self._window: deque[float] = deque()
        self._api_requests = 0
        self._revoked = False
        self.set_faults(faults or Faults())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = _Server((self.host, self._port), _Handler, self)
        self._server = server
        self._port = server.server_address[1]  # so `url` still names it after `stop`
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"halo-sandbox-{self.port}",
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
    def url(self) -> str:
        """The base URL, e.g. "http://127.0.0.1:54321"."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- data, faults, stats ------------------------------------------------------------------

    @property
    def data(self) -> HaloDataSet:
        """The data set being served."""
        return self._data

    def set_data(self, data: HaloDataSet) -> None:
        """Serve another data set from the next request on (tokens stay valid)."""
        index = _Index(data)  # built before the swap, so requests never see half an index
        with self._lock:
            self._data, self._index = data, index

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults and restart their state (rate window, revocation, fail counts)."""
        # A private copy: editing the caller's object later cannot desync the per-rule counts.
        faults = Faults.from_json(faults.to_json())
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            self._fail_left = [rule["times"] for rule in faults.fail]
            self._window.clear()
            self._api_requests = 0
            self._revoked = False

    def stats(self) -> dict[str, Any]:
        """Requests per resource (token requests under "auth/token"), responses per status."""
        with self._lock:
            return {
                "requests": dict(sorted(self._requests.items())),
                "statuses": {str(status): n for status, n in sorted(self._statuses.items())},
                "total": sum(self._requests.values()),
                "tokens_issued": self._tokens_issued,
            }

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
        query = {
            key.lower(): values[-1]
            for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        resource, rest = self._route(path)
        if resource is None:
            return _error(404, "not_found", f"no such endpoint: {path}")
        faults = self._faults
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000)
        try:
            response = self._answer(method, resource, rest, query, headers, body, faults)
        except Exception:  # a sandbox bug must still answer, or the client just sees a hang
            response = _error(500, "sandbox_error", "the sandbox failed on this request")
        with self._lock:
            self._requests[resource] += 1
            self._statuses[response.status] += 1
        return response

    @staticmethod
    def _route(path: str) -> tuple[str | None, str | None]:
        if path.lower() == TOKEN_PATH:
            return TOKEN_RESOURCE, None
        parts = path.split("/")
        # "", "api", resource[, id]
        if len(parts) in (3, 4) and parts[1].lower() == "api":
            resource = _CANONICAL.get(parts[2].lower())
            if resource is not None and (len(parts) == 3 or resource == "Tickets"):
                return resource, parts[3] if len(parts) == 4 else None
        return None, None

    def _answer(
        self,
        method: str,
        resource: str,
        rest: str | None,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        faults: Faults,
    ) -> Response:
        expected = "POST" if resource == TOKEN_RESOURCE else "GET"
        if method != expected:
            return _error(405, "method_not_allowed", f"use {expected}", Allow=expected)
        if not self._admit(faults):
            return _error(429, "rate_limited", "too many requests", **{"Retry-After": "1"})
        if resource == TOKEN_RESOURCE:
            return self._token(query, body, faults)
        if faults.error_rate > 0:
            with self._lock:
                unlucky = self._rng.random() < faults.error_rate
            if unlucky:
                return _error(faults.error_status, "sandbox_fault", "injected error")
        if not self._authorised(headers, faults):
            return _error(
                401,
                "invalid_token",
                "missing, unknown, expired or revoked bearer token",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if rest is not None:
            return self._ticket(rest)
        return self._list(resource, query)

    def _admit(self, faults: Faults) -> bool:
        limit = faults.rate_limit_per_second
        if limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            window = self._window
            while window and window[0] <= now - 1.0:
                window.popleft()
            # Only admitted requests fill the window: a client that backs off gets back in.
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    def _token(self, query: Mapping[str, str], body: bytes, faults: Faults) -> Response:
        if self.tenant is not None and query.get("tenant") != self.tenant:
            return _error(400, "invalid_request", "unknown or missing tenant")
        form = {
            key: values[-1]
            for key, values in parse_qs(
                body.decode("utf-8", "replace"), keep_blank_values=True
            ).items()
        }
        grant = form.get("grant_type", "")
        if not grant:
            return _error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return _error(400, "unsupported_grant_type", "only client_credentials is supported")
        good_id = hmac.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
        good_secret = hmac.compare_digest(
            form.get("client_secret", "").encode(), self.client_secret.encode()
        )
        if not (good_id and good_secret):
            return _error(401, "invalid_client", "client authentication failed")
        token = secrets.token_urlsafe(32)
        ttl = faults.token_ttl_seconds
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) > 10_000:
                self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
            self._tokens_issued += 1
        return Response(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl,
                "scope": form.get("scope") or "all",
            },
            {"Cache-Control": "no-store"},
        )

    def _authorised(self, headers: Mapping[str, str], faults: Faults) -> bool:
        scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        now = time.monotonic()
        with self._lock:
            self._api_requests += 1
            limit = faults.revoke_tokens_after
            if limit is not None and not self._revoked and self._api_requests > limit:
                # Simulates a token dying mid-run: everything issued so far, once.
                self._tokens.clear()
                self._revoked = True
            if scheme.lower() != "bearer" or not token:
                return False
            expires = self._tokens.get(token)
            if expires is None:
                return False
            if expires <= now:
                del self._tokens[token]
                return False
            return True

    def _ticket(self, raw_id: str) -> Response:
        try:
            ticket_id = int(raw_id)
        except ValueError:
            return _error(400, "invalid_request", "a ticket id must be an integer")
        ticket = self._index.tickets.get(ticket_id)
        if ticket is None:
            return _error(404, "not_found", f"no ticket {ticket_id}")
        return Response(200, ticket)

    def _list(self, resource: str, query: Mapping[str, str]) -> Response:
        try:
            paginate = _bool_param(query, "pageinate")
            include_inactive = _bool_param(query, "includeinactive")
            include_lines = _bool_param(query, "includelines")
            client_id = _int_param(query, "client_id")
            site_id = _int_param(query, "site_id")
            count = _int_param(query, "count", 0)
            page_size = _int_param(query, "page_size", 1) or DEFAULT_PAGE_SIZE
            page_no = _int_param(query, "page_no", 1) or 1
        except _BadParam as error:
            return _error(400, "invalid_request", str(error))
        records = self._index.select(resource, include_inactive, include_lines, client_id, site_id)
        total = len(records)
        last_page = max(1, math.ceil(total / page_size)) if paginate else 1
        failed = self._injected_failure(resource, page_no if paginate else 1, last_page)
        if failed is not None:
            return failed
        key = RESOURCES[resource]
        if paginate:
            start = (page_no - 1) * page_size
            return Response(
                200,
                {
                    "page_no": page_no,
                    "page_size": page_size,
                    "record_count": total,
                    key: records[start : start + page_size],
                },
            )
        return Response(
            200, {"record_count": total, key: records if count is None else records[:count]}
        )

    def _injected_failure(self, resource: str, page: int, last_page: int) -> Response | None:
        with self._lock:
            for position, rule in enumerate(self._faults.fail):
                if rule["resource"] != resource:
                    continue
                wanted = rule["page"]
                if wanted is not None and page != (last_page if wanted == "last" else wanted):
                    continue
                left = self._fail_left[position]
                if left is not None:
                    if left <= 0:
                        continue
                    self._fail_left[position] = left - 1
                return _error(rule["status"], "sandbox_fault", f"injected failure on page {page}")
        return None

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
                faults = Faults.from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                return _error(400, "invalid_faults", str(error))
            self.set_faults(faults)
            return Response(200, faults.to_json())
        if path in ("/_sandbox/stats", "/_sandbox/reset", "/_sandbox/faults"):
            return _error(405, "method_not_allowed", f"{method} is not allowed here")
        return _error(404, "not_found", f"no such endpoint: {path}")


# -- HTTP plumbing ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes a burst of concurrent connects wait for SYN retries.
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        sandbox: HaloSandbox,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    server_version = "HaloSandbox/1.0"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection does not hold a thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the default handler writes every request to stderr."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send(_error(400, "invalid_request", "bad Content-Length"))
            return
        body = self.rfile.read(length) if length else b""
        self._send(self.server.sandbox.handle(method, self.path, _HeaderView(self.headers), body))

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


class _HeaderView(Mapping[str, str]):
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


# -- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.halo", description="Serve a simulated HaloPSA API on loopback."
    )
    parser.add_argument("--port", type=int, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--clients", type=int, help="generate this many clients (default: demo)")
    parser.add_argument("--seed", type=int, default=1, help="generator and fault seed")
    parser.add_argument("--data", type=Path, help="serve a data set written by --dump")
    parser.add_argument("--dump", type=Path, help="write the data set here (alone: and exit)")
    parser.add_argument("--rate-limit", type=float, help="requests per second before 429s")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of API errors")
    parser.add_argument("--error-status", type=int, default=503, help="status of those errors")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--malformed", type=int, default=0, help="break this many records")
    parser.add_argument("--token-ttl", type=int, default=3600, help="token lifetime, seconds")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--tenant", help="require ?tenant= on the token endpoint")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox from the command line until SIGINT or SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.port is None and args.dump is None:
        parser.error("--port is required (or --dump alone to write a data set)")
    if args.data is not None and args.clients is not None:
        parser.error("--data and --clients are alternatives")
    try:
        faults = Faults(
            rate_limit_per_second=args.rate_limit,
            error_rate=args.error_rate,
            error_status=args.error_status,
            seed=args.seed,
            latency_ms=args.latency_ms,
            token_ttl_seconds=args.token_ttl,
        )
    except ValueError as error:
        parser.error(str(error))

    if args.data is not None:
        data = HaloDataSet.load(args.data)
    elif args.clients is not None:
        data = generate(args.clients, args.seed)
    else:
        data = demo_data(date.today())
    if args.malformed:
        data, _ = inject_malformed(data, args.malformed, args.seed)
    if args.dump is not None:
        data.dump(args.dump)
        if args.port is None:
            return 0

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sandbox = HaloSandbox(
        data,
        client_id=args.client_id,
        client_secret=args.client_secret,
        tenant=args.tenant,
        faults=faults,
        host=args.host,
        port=args.port,
    )
    with sandbox:
        print(f"listening on {sandbox.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
