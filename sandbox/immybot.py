"""An ImmyBot API simulator on loopback, with the Entra ID (Azure AD) endpoints msal needs.

One server answers both sides of an ImmyBot integration:

* Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration` (msal's tenant discovery) and
  `POST /{tenant}/oauth2/v2.0/token` (client credentials, client_secret_post or _basic), with
  Entra's error bodies (AADSTS codes, error_codes, trace and correlation ids).
* ImmyBot, behind a bearer token from that token endpoint: `GET /api/v1/tenants` (Sieve's
  `Page`/`PageSize` when given, else every tenant, each with its `tenantTagIds`/`tenantTagNames`),
  `GET /api/v1/computers/paged` (skip/take, includeOffline, tenantId, sort/sortDesc; `take` is
  silently capped at `max_take`, 100 by default, as a server may do, so a client that stops on a
  short page loses computers; each computer lists its `computerTagIds`), `GET|POST /api/v1/tags`,
  `POST /api/v1/tenants/add-tags` and `/remove-tags`, `POST /api/v1/computers/add-tags` and
  `/remove-tags` (all four with the body `{"entityIds": [ids], "tagIds": [tag ids]}`), `GET
  /api/v1/provider-links` and `GET /api/v1/provider-links/{id}/clients`. Tags are state
  (`sandbox.immybot_tags`): what add-tags and remove-tags change, later tenant and computer
  listings show (`tenant_tags()` and `computer_tags()` read it in tests).
  `GET /api/v1/computers/{id}/detected-computer-software`: a bare list of
  `DetectedComputerSoftwareResponse` objects (ImmyBot's OpenAPI document), empty for a computer
  never inventoried, 404 for an unknown id.
  `GET /api/v1/computers/all-inventory-software/search-by-name` (`q`, `tenantId`, `searchMode`):
  the same rows as `ComputerInventoryAllSoftware` objects, across every computer in one answer
  (`sandbox/immybot_inventory.py` says what the OpenAPI document fixes and what the sandbox chose).

msal only accepts https authorities, so a client reaches this plain-http server through an HTTP
client that rewrites https://HOST:PORT to http://HOST:PORT. Every URL the server puts in JSON is
therefore `https://<the request's Host header>/...`. Faults (latency, random errors, token
lifetime) are set in code or over `PUT /_sandbox/faults`; `GET /_sandbox/stats` counts requests;
`GET /_sandbox/tag-writes?since=N` lists the tag writes made from the Nth on, each with the wall
clock time it was made at (a benchmark's "ImmyBot saw the tag write"). Standard library only.

    python -m sandbox.immybot --port 8090 --clients 500
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote_plus

from sandbox.halo_data import demo_data, generate
from sandbox.http_server import (
    ApiSandbox,
    Response,
    SandboxFaults,
    add_common_arguments,
    form_fields,
    is_number,
    is_whole,
    sandbox_options,
    serve_until_signalled,
)
from sandbox.immybot_data import ImmyDataSet, immy_data_for, pad_computers
from sandbox.immybot_inventory import SearchError, inventory_rows, search
from sandbox.immybot_tags import (
    Entity,
    TagRequestError,
    carriers,
    change_tags,
    create_tag,
    find_tags,
)

DEFAULT_ENTRA_TENANT = "11111111-2222-3333-4444-555555555555"
DEFAULT_CLIENT_ID = "immy-client"
# A published credential of a loopback simulator, not a secret.
DEFAULT_CLIENT_SECRET = "immy-secret"  # noqa: S105
DEFAULT_TAKE = 50
MAX_TAKE = 100
# The stats keys, one per endpoint; always present so callers can read them without a default.
ENDPOINTS = (
    "token",
    "openid",
    "tenants",
    "computers",
    "tags",
    "add_tags",
    "remove_tags",
    "computer_add_tags",
    "computer_remove_tags",
    "provider_links",
    "provider_clients",
    "detected_software",
    "inventory_search",
)
# The endpoints that change state (ImmyBot answers other methods with 405).
_TAG_WRITES: dict[str, tuple[Entity, bool]] = {
    "add_tags": ("tenants", True),
    "remove_tags": ("tenants", False),
    "computer_add_tags": ("computers", True),
    "computer_remove_tags": ("computers", False),
}
_POST_ONLY = frozenset(_TAG_WRITES)
# The ImmyBot API endpoints `deny` may refuse (Entra's are not ImmyBot's to refuse).
_DENIABLE = frozenset(ENDPOINTS) - {"token", "openid"}
_DEFAULT_SUFFIX = "/.default"

# A Host header we are willing to echo into URLs: a name, IPv4 or bracketed IPv6, and a port.
_HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


# -- faults ----------------------------------------------------------------------------------


@dataclass
class ImmyFaults(SandboxFaults):
    """Misbehaviour to simulate. `error_rate` and `error_status` hit ImmyBot API requests only
    (not Entra's); `latency_ms` delays every endpoint; tokens live `token_ttl_seconds`;
    `tag_writes_before_error` (when set) lets that many add-tags/remove-tags requests (on tenants
    and computers alike) through and
    fails every later one with `error_status`, as an ImmyBot going down mid-run would.
    `deny` lists endpoints (stats keys, e.g. `["tags"]`) answered 403, as for a caller whose
    ImmyBot user or role lacks the right."""

    latency_ms: float = 0
    error_rate: float = 0
    error_status: int = 503
    seed: int = 0
    token_ttl_seconds: int = 3599
    tag_writes_before_error: int | None = None
    # Detected software of these computer ids answers only after `slow_computer_ms` more.
    slow_computers: list[int] = field(default_factory=list)
    slow_computer_ms: float = 0
    deny: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not is_number(self.latency_ms, 0):
            raise ValueError("latency_ms must be a number >= 0")
        self._check_errors()
        if not is_whole(self.token_ttl_seconds, 0):
            raise ValueError("token_ttl_seconds must be an integer >= 0")
        if self.tag_writes_before_error is not None and not is_whole(
            self.tag_writes_before_error, 0
        ):
            raise ValueError("tag_writes_before_error must be null or an integer >= 0")
        if not isinstance(self.slow_computers, list) or not all(
            is_whole(i, 1) for i in self.slow_computers
        ):
            raise ValueError("slow_computers must be a list of computer ids")
        if not is_number(self.slow_computer_ms, 0):
            raise ValueError("slow_computer_ms must be a number >= 0")
        if not isinstance(self.deny, list) or not all(
            isinstance(name, str) and name in _DENIABLE for name in self.deny
        ):
            raise ValueError(f"deny must list some of {', '.join(sorted(_DENIABLE))}")


# -- responses -------------------------------------------------------------------------------


_TITLES = {
    400: "One or more validation errors occurred.",
    401: "Unauthorized",
    403: "Forbidden",
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
        self.software: dict[Any, list[Any]] = {}
        for row in data.detected_software:
            key = row.get("computerId") if isinstance(row, dict) else None
            self.software.setdefault(key, []).append(row)
        self.computer_ids = {c.get("id") for c in every if isinstance(c, dict)}
        by_id = {c.get("id"): c for c in every if isinstance(c, dict)}
        self.inventory = inventory_rows(data.detected_software, by_id)
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


class ImmyBotSandbox(ApiSandbox[ImmyDataSet, _Index, ImmyFaults]):
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
        max_take: int = MAX_TAKE,
    ) -> None:
        self.entra_tenant = entra_tenant
        self.max_take = max_take
        self.tag_writes: list[tuple[str, list[int], list[int]]] = []
        self.tag_write_times: list[float] = []  # time.time() of each of `tag_writes`
        self._tag_writes_seen = 0
        self.client_id = client_id
        self.client_secret = client_secret
        self.expected_scope = expected_scope
        super().__init__(
            data,
            _Index,
            faults or ImmyFaults(),
            host=host,
            port=port,
            server_version="ImmyBotSandbox/1.0",
            thread_name="immybot-sandbox",
        )

    def _restart_faults(self, faults: ImmyFaults) -> None:
        self._tag_writes_seen = 0

    # -- addresses ----------------------------------------------------------------------------

    @property
    def https_url(self) -> str:
        """The same address as https: the ImmyBot instance URL a rewriting client is given."""
        return f"https://{self.netloc}"

    @property
    def authority(self) -> str:
        """The Entra authority for msal, e.g. "https://127.0.0.1:54321/<tenant guid>"."""
        return f"{self.https_url}/{self.entra_tenant}"

    @property
    def scope(self) -> str:
        """The scope to ask tokens for: the instance URL plus "/.default"."""
        return self.expected_scope or f"{self.https_url}{_DEFAULT_SUFFIX}"

    # -- stats and dispatch -------------------------------------------------------------------

    def _request_counts(self) -> dict[str, int]:
        # Every endpoint, called or not (see ENDPOINTS).
        return {name: self._requests[name] for name in ENDPOINTS}

    def _api_error(self, status: int, error: str, description: str) -> Response:
        return _problem(status, description)

    @staticmethod
    def _route(path: str) -> tuple[str, str] | None:
        """The endpoint a path names (a stats key) and, for Entra's, the tenant in it."""
        parts = path.split("/")
        lowered = [part.lower() for part in parts]
        if lowered == ["", "api", "v1", "tenants"]:
            return "tenants", ""
        if lowered == ["", "api", "v1", "computers", "paged"]:
            return "computers", ""
        if lowered == ["", "api", "v1", "computers", "all-inventory-software", "search-by-name"]:
            return "inventory_search", ""
        if lowered == ["", "api", "v1", "tags"]:
            return "tags", ""
        if lowered[:4] == ["", "api", "v1", "tenants"] and lowered[4:] in (
            ["add-tags"],
            ["remove-tags"],
        ):
            return lowered[4].replace("-", "_"), ""
        if lowered[:4] == ["", "api", "v1", "computers"] and lowered[4:] in (
            ["add-tags"],
            ["remove-tags"],
        ):
            return "computer_" + lowered[4].replace("-", "_"), ""
        if lowered == ["", "api", "v1", "provider-links"]:
            return "provider_links", ""
        if (
            len(parts) == 6
            and lowered[:4] == ["", "api", "v1", "computers"]
            and lowered[5] == "detected-computer-software"
        ):
            return "detected_software", parts[4]
        if len(parts) == 6 and lowered[:4] == ["", "api", "v1", "provider-links"]:
            if lowered[5] == "clients":
                return "provider_clients", parts[4]
        if len(parts) == 5 and parts[1]:
            if lowered[2:] == ["v2.0", ".well-known", "openid-configuration"]:
                return "openid", parts[1]
            if lowered[2:] == ["oauth2", "v2.0", "token"]:
                return "token", parts[1]
        return None

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
        allowed = "POST" if endpoint in _POST_ONLY else "GET, POST" if endpoint == "tags" else "GET"
        if method not in allowed.split(", "):
            return _problem(405, f"use {allowed}", Allow=allowed)
        if self._injected_error(faults):
            return _problem(faults.error_status, "injected error")
        if not self._bearer_ok(headers):
            return _problem(
                401,
                "missing, unknown or expired bearer token",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if endpoint in faults.deny:
            return _problem(403, "the caller's ImmyBot user may not use this endpoint")
        if endpoint == "tenants":
            return self._tenants(query)
        if endpoint == "tags":
            return self._create_tag(body) if method == "POST" else self._tags(query)
        if endpoint in _POST_ONLY:
            limit = faults.tag_writes_before_error
            with self._lock:
                self._tag_writes_seen += 1
                failing = limit is not None and self._tag_writes_seen > limit
            if failing:
                return _problem(faults.error_status, "injected error after tag writes")
            return self._change_tags(endpoint, body)
        if endpoint == "provider_links":
            return Response(200, list(self._data.provider_links))
        if endpoint == "provider_clients":
            return self._provider_clients(tenant)
        if endpoint == "detected_software":
            return self._detected_software(tenant, faults)
        if endpoint == "inventory_search":
            try:
                return Response(200, search(self._index.inventory, query))
            except SearchError as error:
                return _invalid(error.name, str(error))
        return self._computers(query)

    def _host_header(self, headers: Mapping[str, str]) -> str:
        # Echo the client's own name for us, so URLs work through whatever address it used;
        # anything odd (or no Host at all) falls back to the bound address.
        host = (headers.get("Host") or "").strip()
        return host if _HOST_HEADER.fullmatch(host) else self.netloc

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
        form = form_fields(body)
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
        ttl = faults.token_ttl_seconds
        token = self._issue_token(ttl, 48)
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

    # -- ImmyBot ------------------------------------------------------------------------------

    def _tenants(self, query: Mapping[str, str]) -> Response:
        try:
            page = _int_param(query, "Page", None, 1)
            size = _int_param(query, "PageSize", None, 1)
        except _BadParam as error:
            return _invalid(error.name, str(error))
        with self._lock:
            rows = [dict(t) for t in self._index.tenants]
        if size is not None:
            start = ((page or 1) - 1) * size
            rows = rows[start : start + size]
        return Response(200, rows)

    def _tags(self, query: Mapping[str, str]) -> Response:
        with self._lock:
            return Response(200, find_tags(self._data, query.get("name", "")))

    def _create_tag(self, body: bytes) -> Response:
        try:
            with self._lock:
                return Response(200, create_tag(self._data, _json_body(body)))
        except TagRequestError as error:
            return _invalid(error.field, str(error))

    def _change_tags(self, endpoint: str, body: bytes) -> Response:
        entity, add = _TAG_WRITES[endpoint]
        try:
            with self._lock:
                ids, tag_ids = change_tags(self._data, entity, add, _json_body(body))
                self.tag_writes.append((endpoint, ids, tag_ids))
                self.tag_write_times.append(time.time())
        except TagRequestError as error:
            if error.status == 404:
                return _problem(404, str(error))
            return _invalid(error.field, str(error))
        return Response(200, None)

    def _provider_clients(self, link: str) -> Response:
        with self._lock:
            if not link.isdigit() or not any(
                str(p.get("id")) == link for p in self._data.provider_links
            ):
                return _problem(404, f"no provider link {link}")
            return Response(
                200,
                [c for c in self._data.provider_clients if str(c.get("providerLinkId")) == link],
            )

    def _detected_software(self, computer: str, faults: ImmyFaults) -> Response:
        number = int(computer) if computer.isdigit() and len(computer) < 10 else None
        if number is None or number not in self._index.computer_ids:
            return _problem(404, f"no computer {computer}")
        if number in faults.slow_computers and faults.slow_computer_ms > 0:
            time.sleep(faults.slow_computer_ms / 1000)  # this request's own thread only
        return Response(200, [dict(r) for r in self._index.software.get(number, [])])

    def timed_tag_writes(self, since: int = 0) -> list[dict[str, Any]]:
        """The tag writes made from the `since`th on (0-based), with when each was made."""
        with self._lock:
            writes = list(zip(self.tag_writes, self.tag_write_times, strict=True))[since:]
        return [
            {"n": since + n, "at": at, "endpoint": endpoint, "entityIds": ids, "tagIds": tags}
            for n, ((endpoint, ids, tags), at) in enumerate(writes)
        ]

    def _control(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response:
        if path != "/_sandbox/tag-writes":
            return super()._control(method, path, query, body)
        if method != "GET":
            return _problem(405, "use GET", Allow="GET")
        try:
            since = _int_param(query, "since", 0, 0) or 0
        except _BadParam as error:
            return _invalid(error.name, str(error))
        return Response(200, self.timed_tag_writes(since))

    def tenant_tags(self) -> dict[str, set[int]]:
        """Tag name -> the ids of the tenants carrying it, as of now (for tests)."""
        with self._lock:
            return carriers(self._data, "tenants")

    def computer_tags(self) -> dict[str, set[int]]:
        """Tag name -> the ids of the computers carrying it, as of now (for tests)."""
        with self._lock:
            return carriers(self._data, "computers")

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
        # A server caps its pages without saying so: only `count` tells a client more remain.
        take = min(DEFAULT_TAKE if take is None else take, self.max_take)
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
        with self._lock:
            # Copies taken under the lock: a tag write changes these records while others read.
            page = [dict(r) if isinstance(r, dict) else r for r in rows[skip : skip + take]]
        return Response(200, {"count": len(rows), "results": page})


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


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


# -- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.immybot",
        description="Serve a simulated ImmyBot API and Entra ID token endpoint on loopback.",
    )
    parser.add_argument("--port", type=int, required=True, help="port (0 = any free port)")
    add_common_arguments(
        parser,
        token_ttl=3599,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
    )
    parser.add_argument("--clients", type=int, help="HaloPSA clients to generate (default: demo)")
    parser.add_argument("--entra-tenant", default=DEFAULT_ENTRA_TENANT)
    parser.add_argument("--expected-scope", help="also accept this scope (default: any /.default)")
    parser.add_argument(
        "--min-computers", type=int, default=0, help="give every customer tenant this many at least"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox from the command line until SIGINT or SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.clients is not None and args.clients < 0:
        parser.error("--clients must not be negative")
    try:
        faults = ImmyFaults.from_args(args)
    except ValueError as error:
        parser.error(str(error))

    today = date.today()
    # The same seed as `python -m sandbox.halo --clients N --seed S`, so the two sandboxes agree.
    halo = demo_data(today) if args.clients is None else generate(args.clients, args.seed, today)
    data = immy_data_for(halo, args.seed, today)
    if args.min_computers > 0:
        data = pad_computers(data, args.min_computers, today)

    sandbox = ImmyBotSandbox(
        data,
        entra_tenant=args.entra_tenant,
        expected_scope=args.expected_scope,
        faults=faults,
        **sandbox_options(args),
    )
    serve_until_signalled(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
