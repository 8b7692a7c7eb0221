"""A HaloPSA API simulator on loopback: OAuth2 client credentials, paged lists, faults on demand.

Speaks the dialect `shared.halo.client` relies on (DESIGN.md section 8): `POST /auth/token`, list
resources under `/api/` with HaloPSA's wrapper keys, `pageinate`/`page_size`/`page_no` paging with
`record_count`, `includeinactive`, `includelines` (recurring invoices carry `lines` only with it),
`includeazuretenants` (clients carry `azure_tenants` only with it), `client_id`, `Tickets/{id}`
and `RecurringInvoice/{id}` (negative ids; always with lines). Faults (rate limits, a 429 every
Nth request, random errors, latency, token revocation, failing pages, invoices listed without
lines) are set in code or over `PUT /_sandbox/faults`; `GET /_sandbox/stats` counts what clients
sent. `PATCH /_sandbox/records/<Resource>` with a list of `{"id": ..., field: value}` objects edits
served records, as someone editing HaloPSA would (`edit_records`). Standard library only.

    python -m sandbox.halo --port 8089 --clients 5000 --rate-limit 10
"""

from __future__ import annotations

import argparse
import hmac
import json
import math
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sandbox import halo_report
from sandbox.halo_assets import AssetBook
from sandbox.halo_data import (
    RECORD_TYPES,
    HaloDataSet,
    demo_data,
    generate,
    inject_malformed,
)
from sandbox.http_server import (
    ApiSandbox,
    Response,
    SandboxFaults,
    add_common_arguments,
    error_response,
    form_fields,
    is_number,
    is_whole,
    sandbox_options,
    serve_until_signalled,
)

DEFAULT_CLIENT_ID = "sandbox-client"
# A published credential of a loopback simulator, not a secret.
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105
DEFAULT_PAGE_SIZE = 50
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path
TOKEN_RESOURCE = "auth/token"  # noqa: S105 - a stats key
REPORT_RESOURCE = "Report"  # POST /api/Report: SQL over HaloPSA's tables (sandbox.halo_report)

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


# What "inactive" means per resource; `includeinactive=true` adds these records back. Recurring
# invoices have no such filter in HaloPSA (DESIGN.md section 8): disabled ones are always listed.
_INACTIVE: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "Client": _flag_inactive("inactive"),
    "Site": _flag_inactive("inactive"),
    "Users": _flag_inactive("inactive"),
    "Asset": _flag_inactive("inactive"),
    "ClientContract": lambda record: record.get("active") is False,
}
# A list leaves these children out unless its flag asks for them: resource -> (flag, key).
_CHILDREN: dict[str, tuple[str, str]] = {
    "RecurringInvoice": ("includelines", "lines"),
    "Client": ("includeazuretenants", "azure_tenants"),
}
# Resources that answer `GET /api/<resource>/{id}`.
_BY_ID = frozenset({"Tickets", "RecurringInvoice", "ClientContract", "Client"})
# The API application permission (HaloPSA's scope word) each resource needs; `deny_scopes` answers
# 403 where it is missing. Writing assets (`POST /api/Asset`) needs `edit:assets` instead.
SCOPES: dict[str, str] = {
    "Client": "read:customers",
    "Site": "read:customers",
    "ClientContract": "read:contracts",
    "Item": "read:items",
    "RecurringInvoice": "read:invoices",
    "Tickets": "read:tickets",
    "Asset": "read:assets",
    REPORT_RESOURCE: "edit:reporting",
}
KNOWN_SCOPES = frozenset({*SCOPES.values(), "edit:assets"})


def needed_scope(method: str, resource: str) -> str | None:
    """The permission a request needs, or None (token requests, resources left unmapped)."""
    if resource == "Asset" and method == "POST":
        return "edit:assets"
    return SCOPES.get(resource)


# -- faults ----------------------------------------------------------------------------------


@dataclass
class Faults(SandboxFaults):
    """Misbehaviour to simulate. `fail` rules look like
    `{"resource": "RecurringInvoice", "page": "last" | 3 | None, "status": 500, "times": 1 | None}`
    (page None = every page; times None = forever); a list read without paging is page 1 of 1.

    `throttle_every` N answers every Nth request (token requests included) with a 429 without
    Retry-After, as hosted HaloPSA does. `omit_lines` (a share, 1 = all, chosen per invoice by id
    and seed) and `omit_lines_ids` list recurring invoices without their `lines` key, as HaloPSA
    sometimes does; `GET /api/RecurringInvoice/{id}` always carries them. Random errors
    (`error_rate`, `error_status`, e.g. 0.05 and 500) are drawn from `seed`.

    `deny_scopes` (e.g. `["read:tickets"]`) answers 403 to every request needing one of those API
    application permissions (`SCOPES`). `no_clients` plays an agent in no team: the client, site,
    contract, recurring invoice, user and ticket lists come back empty, without an error."""

    rate_limit_per_second: float | None = None
    error_rate: float = 0.0
    error_status: int = 503
    seed: int = 0
    latency_ms: float = 0.0
    token_ttl_seconds: int = 3600
    revoke_tokens_after: int | None = None
    fail: list[dict[str, Any]] = field(default_factory=list)
    throttle_every: int | None = None
    omit_lines: float = 0.0
    omit_lines_ids: list[int] = field(default_factory=list)
    # How the SQL report API disagrees with the REST answers (halo_report.ReportFaults).
    report: dict[str, Any] = field(default_factory=dict)
    deny_scopes: list[str] = field(default_factory=list)
    no_clients: bool = False

    def __post_init__(self) -> None:
        if self.rate_limit_per_second is not None and not is_number(self.rate_limit_per_second, 0):
            raise ValueError("rate_limit_per_second must be a number >= 0 or null")
        self._check_errors()
        if not is_number(self.latency_ms, 0):
            raise ValueError("latency_ms must be a number >= 0")
        if not is_whole(self.token_ttl_seconds, 0):
            raise ValueError("token_ttl_seconds must be an integer >= 0")
        if self.revoke_tokens_after is not None and not is_whole(self.revoke_tokens_after, 0):
            raise ValueError("revoke_tokens_after must be an integer >= 0 or null")
        if not isinstance(self.fail, list):
            raise ValueError("fail must be a list of rules")
        self.fail = [_fail_rule(rule) for rule in self.fail]
        if self.throttle_every is not None and not is_whole(self.throttle_every, 1):
            raise ValueError("throttle_every must be an integer >= 1 or null")
        if not is_number(self.omit_lines, 0) or self.omit_lines > 1:
            raise ValueError("omit_lines must be a share between 0 and 1")
        if not isinstance(self.omit_lines_ids, list) or not all(
            is_whole(i, None) for i in self.omit_lines_ids
        ):
            raise ValueError("omit_lines_ids must be a list of integer ids")
        if not isinstance(self.report, Mapping):
            raise ValueError("report must be an object of report faults")
        try:
            self.report_faults = halo_report.ReportFaults(**self.report)
        except TypeError:
            raise ValueError(
                "report takes contract_type_offset, disabled_from, drop_line_codes, "
                "lose_rows, deadline_rows"
            ) from None
        if not isinstance(self.deny_scopes, list) or not all(
            isinstance(scope, str) and scope in KNOWN_SCOPES for scope in self.deny_scopes
        ):
            raise ValueError(f"deny_scopes must list some of {', '.join(sorted(KNOWN_SCOPES))}")
        if not isinstance(self.no_clients, bool):
            raise ValueError("no_clients must be true or false")

    def omits_lines(self, record: Any) -> bool:
        """Whether a listed recurring invoice goes out without its `lines` key."""
        if not isinstance(record, dict) or (self.omit_lines <= 0 and not self.omit_lines_ids):
            return False
        number = _as_int(record.get("id"))
        if number is None:
            return False
        if number in self.omit_lines_ids:
            return True
        # Stable per invoice and seed, so every listing omits the same invoices.
        return zlib.crc32(f"{self.seed}:{number}".encode()) / 2**32 < self.omit_lines


def _fail_rule(rule: Any) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise ValueError("a fail rule must be an object")
    unknown = sorted(set(rule) - {"resource", "page", "status", "times"})
    if unknown:
        raise ValueError(f"unknown fail rule keys: {', '.join(unknown)}")
    resource = _CANONICAL.get(str(rule.get("resource", "")).lower())
    if str(rule.get("resource", "")).lower() == REPORT_RESOURCE.lower():
        resource = REPORT_RESOURCE
    if resource is None:
        raise ValueError(
            f"fail rule resource must be one of {', '.join([*RESOURCES, REPORT_RESOURCE])}"
        )
    page = rule.get("page")
    if not (page is None or page == "last" or is_whole(page, 1)):
        raise ValueError('fail rule page must be "last", a page number >= 1, or null')
    status = rule.get("status", 500)
    if not is_whole(status, 400) or status > 599:
        raise ValueError("fail rule status must be 400-599")
    times = rule.get("times")
    if times is not None and not is_whole(times, 0):
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
                if resource not in _CHILDREN:
                    self.views[(resource, include_inactive, False)] = view
            if resource in _CHILDREN:
                # Lines are most of an invoice's weight; strip them once, not per request.
                child = _CHILDREN[resource][1]
                bare = {id(r): _without(r, child) for r in every}
                for include_inactive, rows in ((True, every), (False, active)):
                    stripped = [bare[id(r)] for r in rows]
                    self.views[(resource, include_inactive, False)] = _View(
                        stripped, resource in _WITH_CLIENT
                    )
        # Assets are stateful (POST /api/Asset writes them): sandbox.halo_assets keeps them.
        self.assets = AssetBook(data)
        self.by_id: dict[str, dict[int, Any]] = {}
        for resource in _BY_ID:
            records: dict[int, Any] = {}
            for record in getattr(data, RESOURCES[resource]):
                number = _as_int(record.get("id")) if isinstance(record, dict) else None
                if number is not None:
                    records.setdefault(number, record)
            self.by_id[resource] = records

    def select(
        self,
        resource: str,
        include_inactive: bool,
        include_children: bool,
        client_id: int | None,
        site_id: int | None,
    ) -> list[Any]:
        """The records a list request matches, in id order; `include_children`: with the
        resource's children (`_CHILDREN`) where it has any."""
        view = self.views[(resource, include_inactive, include_children)]
        rows = view.records
        if client_id is not None and resource in _WITH_CLIENT:
            rows = view.by_client.get(client_id, [])
        site_field = _SITE_FIELD.get(resource)
        if site_id is not None and site_field:
            rows = [
                r for r in rows if isinstance(r, dict) and _as_int(r.get(site_field)) == site_id
            ]
        return rows


def _omit_lines(response: Response, resource: str, faults: Faults) -> Response:
    """A listing with the invoices `faults` picks stripped of `lines` (HaloPSA does that)."""
    body = response.body
    if resource != "RecurringInvoice" or response.status != 200 or not isinstance(body, dict):
        return response
    listed = body.get(RESOURCES[resource])
    if isinstance(listed, list):
        body = {
            **body,
            "invoices": [_without_lines(r) if faults.omits_lines(r) else r for r in listed],
        }
    return Response(response.status, body, response.headers)


def _without_lines(record: Any) -> Any:
    return _without(record, "lines")


def _without(record: Any, child: str) -> Any:
    if not isinstance(record, dict) or child not in record:
        return record
    return {k: v for k, v in record.items() if k != child}


# -- request handling ------------------------------------------------------------------------


class _BadParam(ValueError):
    pass


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


class HaloSandbox(ApiSandbox[HaloDataSet, _Index, Faults]):
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
        # The state `_restart_faults` resets; it exists before the base class's `set_faults`.
        self._fail_left: list[int | None] = []
        self._window: deque[float] = deque()
        self._api_requests = 0
        self._revoked = False
        # The SQLite copy behind /api/Report, built on first use for the data set it copies.
        self._report_db: tuple[HaloDataSet, halo_report.ReportDatabase] | None = None
        self._report_lock = threading.Lock()
        self._throttle_count = 0
        super().__init__(
            data,
            _Index,
            faults or Faults(),
            host=host,
            port=port,
            server_version="HaloSandbox/1.0",
            thread_name="halo-sandbox",
        )

    @property
    def assets(self) -> AssetBook:
        """The served assets (stateful: writes change them until the data set is replaced)."""
        return self._index.assets

    # -- edits --------------------------------------------------------------------------------

    def edit_records(self, resource: str, edits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Set the given fields of the `resource` records with each edit's `id` (someone edited
        HaloPSA): served from the next request on; the ids no record has are listed."""
        key = RESOURCES[resource]
        wanted = {_as_int(edit.get("id")): edit for edit in edits}
        edited: set[int] = set()

        def changed(record: Any) -> Any:
            number = _as_int(record.get("id")) if isinstance(record, dict) else None
            if number is None or number not in wanted:
                return record
            edited.add(number)
            return {**record, **{k: v for k, v in wanted[number].items() if k != "id"}}

        # A new data set (the index is built for it), sharing every record not edited; assets
        # written through the API start again from the data set, as with `set_data`.
        data = HaloDataSet(**{name: list(getattr(self.data, name)) for name in RECORD_TYPES})
        setattr(data, key, [changed(r) for r in getattr(self.data, key)])
        self.set_data(data)
        missing = sorted(n for n in wanted if n is not None and n not in edited)
        return {"edited": len(edited), "missing": missing}

    def _control(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response:
        prefix = "/_sandbox/records/"
        if not path.startswith(prefix):
            return super()._control(method, path, query, body)
        resource = _CANONICAL.get(path[len(prefix) :].lower())
        if resource is None:
            return error_response(404, "not_found", f"no such resource: {path}")
        if method != "PATCH":
            return error_response(405, "method_not_allowed", "use PATCH", Allow="PATCH")
        try:
            edits = json.loads(body or b"[]")
        except ValueError:
            edits = None
        if not isinstance(edits, list) or not all(
            isinstance(e, dict) and _as_int(e.get("id")) is not None for e in edits
        ):
            return error_response(400, "invalid_edits", "a list of objects, each with an id")
        return Response(200, self.edit_records(resource, edits))

    # -- faults -------------------------------------------------------------------------------

    def _restart_faults(self, faults: Faults) -> None:
        """New faults restart their state: rate window, revocation and per-rule fail counts."""
        self._fail_left = [rule["times"] for rule in faults.fail]
        self._window.clear()
        self._api_requests = 0
        self._revoked = False
        self._throttle_count = 0

    # -- dispatch -----------------------------------------------------------------------------

    def _api_error(self, status: int, error: str, description: str) -> Response:
        return error_response(status, error, description)

    @staticmethod
    def _route(path: str) -> tuple[str, str] | None:
        if path.lower() == TOKEN_PATH:
            return TOKEN_RESOURCE, ""
        parts = path.split("/")
        # "", "api", resource[, id]
        if len(parts) == 3 and parts[1].lower() == "api" and parts[2].lower() == "report":
            return REPORT_RESOURCE, ""
        if len(parts) in (3, 4) and parts[1].lower() == "api":
            resource = _CANONICAL.get(parts[2].lower())
            if resource is not None and (len(parts) == 3 or resource in _BY_ID):
                return resource, parts[3] if len(parts) == 4 else ""
        return None

    def _answer(
        self,
        method: str,
        resource: str,
        rest: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        faults: Faults,
    ) -> Response:
        expected = "POST" if resource in (TOKEN_RESOURCE, REPORT_RESOURCE) else "GET"
        if method != expected and not (resource == "Asset" and method == "POST"):
            allow = "GET, POST" if resource == "Asset" else expected
            return error_response(405, "method_not_allowed", f"use {allow}", Allow=allow)
        if not self._admit(faults):
            return error_response(429, "rate_limited", "too many requests", **{"Retry-After": "1"})
        if self._throttled(faults):
            return error_response(429, "rate_limited", "too many requests")  # no Retry-After
        if resource == TOKEN_RESOURCE:
            return self._token(query, body, faults)
        if self._injected_error(faults):
            return error_response(faults.error_status, "sandbox_fault", "injected error")
        if not self._authorised(headers, faults):
            return error_response(
                401,
                "invalid_token",
                "missing, unknown, expired or revoked bearer token",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        scope = needed_scope(method, resource)
        if scope in faults.deny_scopes:
            return error_response(403, "forbidden", f"the API application lacks {scope}")
        if resource == REPORT_RESOURCE:
            failed = self._injected_failure(resource, 1, 1)
            database = self._report_database(faults.report_faults)
            return failed or Response(*halo_report.answer(database, body, faults.report_faults))
        if rest:  # only the _BY_ID resources route one
            return self._one(resource, rest)
        if resource == "Asset":
            return self._index.assets.answer(
                method, query, body, lambda page, last: self._injected_failure("Asset", page, last)
            )
        return _omit_lines(self._list(resource, query, faults.no_clients), resource, faults)

    def _report_database(self, faults: halo_report.ReportFaults) -> halo_report.ReportDatabase:
        data = self.data
        with self._report_lock:
            db = self._report_db
            if db is None or db[0] is not data or db[1].faults.load_key != faults.load_key:
                # The old copy is left to the garbage collector: a request may still be using it.
                self._report_db = (data, halo_report.ReportDatabase(data, faults))
            return self._report_db[1]

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

    def _throttled(self, faults: Faults) -> bool:
        if faults.throttle_every is None:
            return False
        with self._lock:
            self._throttle_count += 1
            return self._throttle_count % faults.throttle_every == 0

    def _token(self, query: Mapping[str, str], body: bytes, faults: Faults) -> Response:
        if self.tenant is not None and query.get("tenant") != self.tenant:
            return error_response(400, "invalid_request", "unknown or missing tenant")
        form = form_fields(body)
        grant = form.get("grant_type", "")
        if not grant:
            return error_response(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return error_response(
                400, "unsupported_grant_type", "only client_credentials is supported"
            )
        good_id = hmac.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
        good_secret = hmac.compare_digest(
            form.get("client_secret", "").encode(), self.client_secret.encode()
        )
        if not (good_id and good_secret):
            return error_response(401, "invalid_client", "client authentication failed")
        ttl = faults.token_ttl_seconds
        token = self._issue_token(ttl, 32)
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
        with self._lock:
            self._api_requests += 1
            limit = faults.revoke_tokens_after
            if limit is not None and not self._revoked and self._api_requests > limit:
                # Simulates a token dying mid-run: everything issued so far, once.
                self._tokens.clear()
                self._revoked = True
        return self._bearer_ok(headers)

    def _one(self, resource: str, raw_id: str) -> Response:
        """`Tickets/{id}`, `ClientContract/{id}`, `RecurringInvoice/{id}` or `Client/{id}` (ids of
        any sign; an invoice by id always carries its `lines`, whatever a listing does)."""
        try:
            record_id = int(raw_id)
        except ValueError:
            return error_response(400, "invalid_request", "an id must be an integer")
        record = self._index.by_id[resource].get(record_id)
        if record is None:
            return error_response(404, "not_found", f"no {resource} {record_id}")
        return Response(200, record)

    def _list(self, resource: str, query: Mapping[str, str], no_clients: bool) -> Response:
        try:
            paginate = _bool_param(query, "pageinate")
            include_inactive = _bool_param(query, "includeinactive")
            flag = _CHILDREN.get(resource, ("includelines", ""))[0]
            include_children = _bool_param(query, flag)
            client_id = _int_param(query, "client_id")
            site_id = _int_param(query, "site_id")
            count = _int_param(query, "count", 0)
            page_size = _int_param(query, "page_size", 1) or DEFAULT_PAGE_SIZE
            page_no = _int_param(query, "page_no", 1) or 1
        except _BadParam as error:
            return error_response(400, "invalid_request", str(error))
        records = self._index.select(
            resource, include_inactive, include_children, client_id, site_id
        )
        if no_clients and (resource == "Client" or resource in _WITH_CLIENT):
            records = []
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
                return error_response(
                    rule["status"], "sandbox_fault", f"injected failure on page {page}"
                )
        return None


# -- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.halo", description="Serve a simulated HaloPSA API on loopback."
    )
    parser.add_argument("--port", type=int, help="port to listen on (0 = any free port)")
    add_common_arguments(
        parser,
        token_ttl=3600,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
    )
    parser.add_argument("--clients", type=int, help="generate this many clients (default: demo)")
    parser.add_argument("--data", type=Path, help="serve a data set written by --dump")
    parser.add_argument("--dump", type=Path, help="write the data set here (alone: and exit)")
    parser.add_argument("--rate-limit", type=float, help="requests per second before 429s")
    parser.add_argument("--throttle-every", type=int, help="answer every Nth request with a 429")
    parser.add_argument(
        "--omit-lines", type=float, default=0.0, help="share of listed invoices without lines"
    )
    parser.add_argument("--malformed", type=int, default=0, help="break this many records")
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
        faults = Faults.from_args(
            args,
            rate_limit_per_second=args.rate_limit,
            throttle_every=args.throttle_every,
            omit_lines=args.omit_lines,
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

    sandbox = HaloSandbox(data, tenant=args.tenant, faults=faults, **sandbox_options(args))
    serve_until_signalled(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
