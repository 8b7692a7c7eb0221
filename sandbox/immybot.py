"""An ImmyBot API simulator on loopback, with the Entra ID (Azure AD) endpoints msal needs.

One server answers both sides of an ImmyBot integration:

* Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration` (msal's tenant discovery) and
  `POST /{tenant}/oauth2/v2.0/token` (client credentials, client_secret_post or _basic), with
  Entra's error bodies (AADSTS codes, error_codes, trace and correlation ids).
* ImmyBot: `GET /api/v1/tenants` and `GET /api/v1/computers/paged` (skip/take, includeOffline,
  tenantId, sort/sortDesc) behind a bearer token from that token endpoint.

msal only accepts https authorities, so a client reaches this plain-http server through an HTTP
client that rewrites https://HOST:PORT to http://HOST:PORT. Every URL the server puts in JSON is
therefore `https://<the request's Host header>/...`. Faults (latency, random errors, token
lifetime) are set in code or over `PUT /_sandbox/faults`; `GET /_sandbox/stats` counts requests.
Standard library only.

    python -m sandbox.immybot --port 8090 --clients 500
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import math
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote_plus, urlsplit

from sandbox.halo_data import demo_data, generate
from sandbox.immybot_data import ImmyDataSet, immy_data_for

DEFAULT_ENTRA_TENANT = "11111111-2222-3333-4444-555555555555"
DEFAULT_CLIENT_ID = "immy-client"
# A published credential of a loopback simulator, not a secret.
DEFAULT_CLIENT_SECRET = "immy-secret"  # noqa: S105
DEFAULT_TAKE = 50
MAX_TAKE = 1000
# The stats keys, one per endpoint; always present so callers can read them without a default.
ENDPOINTS = ("token", "openid", "tenants", "computers")
_DEFAULT_SUFFIX = "/.default"

# A Host header we are willing to echo into URLs: a name, IPv4 or bracketed IPv6, and a port.
_HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


# -- faults ----------------------------------------------------------------------------------


@dataclass
class ImmyFaults:
    """Misbehaviour to simulate. `error_rate` and `error_status` hit ImmyBot API requests only
    (not Entra's); `latency_ms` delays every endpoint; tokens live `token_ttl_seconds`."""

    latency_ms: float = 0
    error_rate: float = 0
    error_status: int = 503
    seed: int = 0
    token_ttl_seconds: int = 3599

    def __post_init__(self) -> None:
        if not _number(self.latency_ms, 0):
            raise ValueError("latency_ms must be a number >= 0")
        if not _number(self.error_rate, 0) or self.error_rate > 1:
            raise ValueError("error_rate must be between 0 and 1")
        if not _whole(self.error_status, 400) or self.error_status > 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        if not _whole(self.seed, None):
            raise ValueError("seed must be an integer")
        if not _whole(self.token_ttl_seconds, 0):
            raise ValueError("token_ttl_seconds must be an integer >= 0")

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON object (the shape `from_json` and `PUT /_sandbox/faults` take)."""
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "seed": self.seed,
            "token_ttl_seconds": self.token_ttl_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImmyFaults:
        """Faults from a JSON object; missing keys take defaults, unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
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


# -- responses -------------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    """One answer: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


_TITLES = {
    400: "One or more validation errors occurred.",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
}


def _problem(status: int, detail: str, **headers: str) -> Response:
    """An ImmyBot (ASP.NET Core) style problem-details error."""
    body = {"title": _TITLES.get(status, "Sandbox fault"), "status": status, "detail": detail}
    return Response(status, body, dict(headers))


def _invalid(name: str, message: str) -> Response:
    """ASP.NET Core's model-validation 400, naming the offending query parameter."""
    return Response(400, {"title": _TITLES[400], "status": 400, "errors": {name: [message]}})


def _control_error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description})


class _BadParam(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _int_param(
    query: Mapping[str, str], name: str, default: int | None, minimum: int
) -> int | None:
    raw = query.get(name.lower(), "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(name, f"The value '{raw}' is not valid for {name}.") from None
    if value < minimum:
        raise _BadParam(name, f"{name} must be at least {minimum}.")
    return value


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name.lower(), "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise _BadParam(name, f"The value '{raw}' is not valid for {name}.")


# -- the precomputed views -------------------------------------------------------------------


def _id_key(record: Any) -> tuple[int, int]:
    value = record.get("id") if isinstance(record, dict) else None
    return (0, value) if isinstance(value, int) and not isinstance(value, bool) else (1, 0)


class _Index:
    """Tenants and computers in id order, per `includeOffline` and per tenant, built once."""

    def __init__(self, data: ImmyDataSet) -> None:
        self.tenants = sorted(data.tenants, key=_id_key)
        every = sorted(data.computers, key=_id_key)
        online = [c for c in every if isinstance(c, dict) and c.get("isOnline") is True]
        self.computers: dict[bool, list[Any]] = {True: every, False: online}
        self.by_tenant: dict[tuple[bool, Any], list[Any]] = {}
        for include_offline, rows in self.computers.items():
            for computer in rows:
                tenant = computer.get("tenantId") if isinstance(computer, dict) else None
                self.by_tenant.setdefault((include_offline, tenant), []).append(computer)
        # ImmyBot sorts by a field of the view model, named in any letter case.
        self.fields = {name.lower(): name for c in every if isinstance(c, dict) for name in c}


def _sort_value(value: Any) -> tuple[int, Any]:
    # Nulls last; text case-insensitively, as the database's collation would.
    if value is None:
        return (2, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    return (0, value)


# -- the sandbox -----------------------------------------------------------------------------


class ImmyBotSandbox:
    """ImmyBot plus Entra ID on loopback. Use `with ImmyBotSandbox(data) as immy:`; authenticate
    against `immy.authority` with `immy.scope`, then call the API under `immy.https_url`."""

    def __init__(
        self,
        data: ImmyDataSet,
        *,
        entra_tenant: str = DEFAULT_ENTRA_TENANT,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        expected_scope: str | None = None,
        faults: ImmyFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.entra_tenant = entra_tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.expected_scope = expected_scope
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._data = data
        self._index = _Index(data)
        self._tokens: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._tokens_issued = 0
        self._faults = ImmyFaults()
        self._rng = random.Random(0)
        self.set_faults(faults or ImmyFaults())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = _Server((self.host, self._port), self.handle)
        self._server = server
        self._port = server.server_address[1]  # so `url` still names it after `stop`
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"immybot-sandbox-{self.port}",
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
        """The base URL the server really listens on, e.g. "http://127.0.0.1:54321"."""
        return f"http://{self._netloc}"

    @property
    def https_url(self) -> str:
        """The same address as https: the ImmyBot instance URL a rewriting client is given."""
        return f"https://{self._netloc}"

    @property
    def authority(self) -> str:
        """The Entra authority for msal, e.g. "https://127.0.0.1:54321/<tenant guid>"."""
        return f"{self.https_url}/{self.entra_tenant}"

    @property
    def scope(self) -> str:
        """The scope to ask tokens for: the instance URL plus "/.default"."""
        return self.expected_scope or f"{self.https_url}{_DEFAULT_SUFFIX}"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- data, faults, stats ------------------------------------------------------------------

    @property
    def data(self) -> ImmyDataSet:
        """The data set being served."""
        return self._data

    def set_data(self, data: ImmyDataSet) -> None:
        """Serve another data set from the next request on (tokens stay valid)."""
        index = _Index(data)  # built before the swap, so requests never see half an index
        with self._lock:
            self._data, self._index = data, index

    @property
    def faults(self) -> ImmyFaults:
        """The faults in force."""
        return self._faults

    def set_faults(self, faults: ImmyFaults) -> None:
        """Replace the faults and reseed the random errors."""
        faults = ImmyFaults.from_json(faults.to_json())  # a private copy the caller cannot edit
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def stats(self) -> dict[str, Any]:
        """Requests per endpoint (token, openid, tenants, computers), responses per status."""
        with self._lock:
            return {
                "requests": {name: self._requests[name] for name in ENDPOINTS},
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
        # ASP.NET binds query parameters case-insensitively; so does this.
        query = {
            key.lower(): values[-1]
            for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        endpoint, tenant = _route(path)
        if endpoint is None:
            return _problem(404, f"no such endpoint: {path}")
        faults = self._faults
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000)
        try:
            response = self._answer(method, endpoint, tenant, query, headers, body, faults)
        except Exception:  # a sandbox bug must still answer, or the client just sees a hang
            response = _problem(500, "the sandbox failed on this request")
        with self._lock:
            self._requests[endpoint] += 1
            self._statuses[response.status] += 1
        return response

    def _answer(
        self,
        method: str,
        endpoint: str,
        tenant: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        faults: ImmyFaults,
    ) -> Response:
        origin = f"https://{self._host_header(headers)}"
        correlation = (headers.get("client-request-id") or "").strip() or str(uuid.uuid4())
        if endpoint == "openid":
            if method != "GET":
                return _problem(405, "use GET", Allow="GET")
            return self._openid(tenant, origin, correlation)
        if endpoint == "token":
            if method != "POST":
                return _entra_error(
                    400,
                    "invalid_request",
                    900561,
                    f"The endpoint only accepts POST, OPTIONS requests. Received a {method} "
                    "request.",
                    correlation,
                )
            response = self._token(tenant, origin, headers, body, faults, correlation)
            response.headers["client-request-id"] = correlation
            return response
        if method != "GET":
            return _problem(405, "use GET", Allow="GET")
        if faults.error_rate > 0:
            with self._lock:
                unlucky = self._rng.random() < faults.error_rate
            if unlucky:
                return _problem(faults.error_status, "injected error")
        if not self._authorised(headers):
            return _problem(
                401,
                "missing, unknown or expired bearer token",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if endpoint == "tenants":
            return Response(200, self._index.tenants)
        return self._computers(query)

    def _host_header(self, headers: Mapping[str, str]) -> str:
        # Echo the client's own name for us, so URLs work through whatever address it used;
        # anything odd (or no Host at all) falls back to the bound address.
        host = (headers.get("Host") or "").strip()
        return host if _HOST_HEADER.fullmatch(host) else self._netloc

    # -- Entra ID -----------------------------------------------------------------------------

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() == self.entra_tenant.lower()

    def _openid(self, tenant: str, origin: str, correlation: str) -> Response:
        if not self._known_tenant(tenant):
            return _unknown_tenant("invalid_tenant", tenant, correlation)
        base = f"{origin}/{tenant}"
        return Response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
            },
        )

    def _token(
        self,
        tenant: str,
        origin: str,
        headers: Mapping[str, str],
        body: bytes,
        faults: ImmyFaults,
        correlation: str,
    ) -> Response:
        if not self._known_tenant(tenant):
            return _unknown_tenant("invalid_request", tenant, correlation)
        form = {
            key: values[-1]
            for key, values in parse_qs(
                body.decode("utf-8", "replace"), keep_blank_values=True
            ).items()
        }
        basic = _basic_credentials(headers)
        if basic is not None:  # client_secret_basic; the form's own values would be a conflict
            form.setdefault("client_id", basic[0])
            form.setdefault("client_secret", basic[1])

        def missing(name: str) -> Response:
            return _entra_error(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
                correlation,
            )

        grant = form.get("grant_type", "")
        if not grant:
            return missing("grant_type")
        if grant != "client_credentials":
            return _entra_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
                correlation,
            )
        client = form.get("client_id", "")
        if not client:
            return missing("client_id")
        if not hmac.compare_digest(client.encode(), self.client_id.encode()):
            return _entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may "
                "have sent your authentication request to the wrong tenant.",
                correlation,
            )
        scope = form.get("scope", "").strip()
        if not scope:
            return missing("scope")
        if not self._scope_ok(scope, origin):
            return _entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
                correlation,
            )
        secret = form.get("client_secret", "")
        if not secret:
            return _entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                correlation,
            )
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            return _entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client}'.",
                correlation,
            )
        token = secrets.token_urlsafe(48)
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
                "token_type": "Bearer",
                "expires_in": ttl,
                "ext_expires_in": ttl,
                "access_token": token,
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    def _scope_ok(self, scope: str, origin: str) -> bool:
        # Client credentials take exactly one "<resource>/.default" scope.
        if " " in scope or not scope.endswith(_DEFAULT_SUFFIX) or scope == _DEFAULT_SUFFIX:
            return False
        if self.expected_scope is None:
            return True
        # This sandbox as the resource, by the name the client used or by its bound address.
        ours = {self.expected_scope, f"{origin}{_DEFAULT_SUFFIX}", f"{self.https_url}/.default"}
        return scope in ours

    def _authorised(self, headers: Mapping[str, str]) -> bool:
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

    # -- ImmyBot ------------------------------------------------------------------------------

    def _computers(self, query: Mapping[str, str]) -> Response:
        index = self._index
        try:
            skip = _int_param(query, "skip", 0, 0) or 0
            take = _int_param(query, "take", DEFAULT_TAKE, 0)
            include_offline = _bool_param(query, "includeOffline")
            tenant_id = _int_param(query, "tenantId", None, 0)
            sort_desc = _bool_param(query, "sortDesc")
        except _BadParam as error:
            return _invalid(error.name, str(error))
        take = DEFAULT_TAKE if take is None else take
        if take > MAX_TAKE:
            return _invalid("take", f"take must be at most {MAX_TAKE}.")
        rows = (
            index.computers[include_offline]
            if tenant_id is None
            else index.by_tenant.get((include_offline, tenant_id), [])
        )
        sort = query.get("sort", "").strip() or "id"
        name = index.fields.get(sort.lower())
        if name is None and index.fields:
            return _invalid("sort", f"'{sort}' is not a computer field.")
        if name is not None and (name != "id" or sort_desc):
            # Python's sort is stable (also reversed): equal values stay in id order.
            rows = sorted(
                rows,
                key=lambda r: _sort_value(r.get(name) if isinstance(r, dict) else None),
                reverse=sort_desc,
            )
        return Response(200, {"count": len(rows), "results": rows[skip : skip + take]})

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
                faults = ImmyFaults.from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                return _control_error(400, "invalid_faults", str(error))
            self.set_faults(faults)
            return Response(200, faults.to_json())
        if path in ("/_sandbox/stats", "/_sandbox/reset", "/_sandbox/faults"):
            return _control_error(405, "method_not_allowed", f"{method} is not allowed here")
        return _control_error(404, "not_found", f"no such endpoint: {path}")


def _route(path: str) -> tuple[str | None, str]:
    """The endpoint a path names (a stats key) and, for Entra's, the tenant in it."""
    parts = path.split("/")
    lowered = [part.lower() for part in parts]
    if lowered == ["", "api", "v1", "tenants"]:
        return "tenants", ""
    if lowered == ["", "api", "v1", "computers", "paged"]:
        return "computers", ""
    if len(parts) == 5 and parts[1]:
        if lowered[2:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "openid", parts[1]
        if lowered[2:] == ["oauth2", "v2.0", "token"]:
            return "token", parts[1]
    return None, ""


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    scheme, _, encoded = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    # RFC 6749 section 2.3.1: both halves are form-urlencoded before base64.
    return (unquote_plus(user), unquote_plus(password)) if sep else None


def _entra_error(status: int, error: str, code: int, message: str, correlation: str) -> Response:
    """An error in Entra ID's shape: AADSTS code in the description, ids and a timestamp."""
    now = datetime.now(UTC)
    trace = str(uuid.uuid4())
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%S')}.{now.microsecond // 100:04d}Z"
    )
    return Response(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        {"Cache-Control": "no-store, no-cache"},
    )


def _unknown_tenant(error: str, tenant: str, correlation: str) -> Response:
    return _entra_error(
        400,
        error,
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
        correlation,
    )


# -- HTTP plumbing ---------------------------------------------------------------------------

_Answer = Callable[[str, str, Mapping[str, str], bytes], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes a burst of concurrent connects wait for SYN retries.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], answer: _Answer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.answer = answer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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
    server_version = "ImmyBotSandbox/1.0"
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
            self._send(_control_error(400, "invalid_request", "bad Content-Length"))
            return
        body = self.rfile.read(length) if length else b""
        self._send(self.server.answer(method, self.path, _HeaderView(self.headers), body))

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
        prog="python -m sandbox.immybot",
        description="Serve a simulated ImmyBot API and Entra ID token endpoint on loopback.",
    )
    parser.add_argument("--port", type=int, required=True, help="port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--clients", type=int, help="HaloPSA clients to generate (default: demo)")
    parser.add_argument("--seed", type=int, default=1, help="generator and fault seed")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of API errors")
    parser.add_argument("--error-status", type=int, default=503, help="status of those errors")
    parser.add_argument("--token-ttl", type=int, default=3599, help="token lifetime, seconds")
    parser.add_argument("--entra-tenant", default=DEFAULT_ENTRA_TENANT)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--expected-scope", help="also accept this scope (default: any /.default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox from the command line until SIGINT or SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.clients is not None and args.clients < 0:
        parser.error("--clients must not be negative")
    try:
        faults = ImmyFaults(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            error_status=args.error_status,
            seed=args.seed,
            token_ttl_seconds=args.token_ttl,
        )
    except ValueError as error:
        parser.error(str(error))

    today = date.today()
    # The same seed as `python -m sandbox.halo --clients N --seed S`, so the two sandboxes agree.
    halo = demo_data(today) if args.clients is None else generate(args.clients, args.seed, today)
    data = immy_data_for(halo, args.seed, today)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sandbox = ImmyBotSandbox(
        data,
        entra_tenant=args.entra_tenant,
        client_id=args.client_id,
        client_secret=args.client_secret,
        expected_scope=args.expected_scope,
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
