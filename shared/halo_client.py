"""HaloPSA REST client: OAuth2 client credentials, paging, retries, and a shared request budget.

Every read is a GET and therefore safe to retry. Errors are typed and their text carries the method,
the path and the status, never the client secret, the token or a response body (bodies hold customer
data, and a token endpoint may echo what it was sent).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from shared.halo_models import (
    Asset,
    Client,
    Contract,
    Item,
    Parsed,
    RecurringInvoice,
    Reject,
    Site,
    Ticket,
    User,
    describe_error,
    parse_records,
)
from shared.settings import Settings

log = logging.getLogger("halo_immy.halo")

M = TypeVar("M", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# Refresh a token this long before HaloPSA says it expires, so a request never leaves with a token
# that dies in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0


class HaloError(Exception):
    """Base of every HaloPSA failure. `str()` is safe to log."""

    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"HaloPSA {method} {path}: {status_text}: {detail}")


class HaloAuthError(HaloError):
    """HaloPSA refused the credentials or the token (401/403, or the token endpoint said no)."""


class HaloUnavailable(HaloError):
    """HaloPSA did not answer usefully (5xx, timeouts, connection errors) within the retry cap."""


class HaloRateLimited(HaloError):
    """HaloPSA kept answering 429 past the retry cap, or asked to wait longer than we may."""


class HaloNotFound(HaloError):
    """The record asked for does not exist (404)."""


class HaloRequestError(HaloError):
    """HaloPSA rejected the request (a 4xx other than 401/403/404/429)."""


class HaloProtocolError(HaloError):
    """HaloPSA answered with something the client cannot read (not JSON, missing list, no end)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts and back-off for retryable failures; `max_attempts` counts the first try."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential back-off with jitter for the given (1-based) failed attempt."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # Equal jitter: always wait at least half, so retries spread without collapsing to zero.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RequestBudget:
    """A token bucket shared by every call of a run, so a sync stays under HaloPSA's rate limit."""

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, min(20, int(per_minute / 6))))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        """Take one request from the budget, waiting until one is available."""
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
                self.waited_seconds += wait
                await self._sleep(wait)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    token_type: str
    expires_at: float


class TokenCache:
    """Tokens shared by short-lived clients (one per tab view), keyed by who asked for what.

    Thread-safe and loop-free on purpose: each client still refreshes under its own asyncio lock.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> _Token | None:
        """The cached token for `key`, if any (it may have expired: callers check)."""
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: tuple[str, ...], token: _Token | None) -> None:
        """Cache (or with None, forget) the token for `key`."""
        with self._lock:
            if token is None:
                self._tokens.pop(key, None)
            else:
                self._tokens[key] = token


@dataclass(slots=True)
class Listing(Parsed[M], Generic[M]):
    """A fully paged list: valid records, rejects, and how it was read."""

    pages: int = 0
    duplicates: int = 0


@dataclass(slots=True)
class ClientStats:
    """Requests sent per resource (token requests under `auth/token`) and retries made."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    token_fetches: int = 0

    @property
    def total_requests(self) -> int:
        """All HTTP requests sent, token requests included."""
        return sum(self.requests.values())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HaloClient:
    """Reads HaloPSA through its REST API. Use as `async with HaloClient(...) as halo:`."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        tenant: str | None = None,
        scope: str = "all",
        page_size: int = 100,
        timeout: float = 30.0,
        max_concurrency: int = 4,
        max_pages: int = 10_000,
        budget: RequestBudget | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self._tenant = tenant
        self._scope = scope
        self.page_size = page_size
        self._max_pages = max_pages
        self._budget = budget
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tokens = token_cache or TokenCache()
        self._token_key = (self._base, client_id, tenant or "", scope)
        self._token_lock = asyncio.Lock()
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(
            base_url=self._base,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "halo-immy/0.1"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budget: RequestBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> HaloClient:
        """A client configured from app settings (keyword arguments override them)."""
        options: dict[str, Any] = {
            "tenant": settings.halo_tenant,
            "scope": settings.halo_scope,
            "page_size": settings.halo_page_size,
            "timeout": settings.halo_timeout_seconds,
            "budget": budget or RequestBudget(settings.halo_requests_per_minute),
            "transport": transport,
        }
        options.update(kwargs)
        return cls(
            settings.halo_base, settings.halo_client_id, settings.halo_client_secret, **options
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"HaloClient(base_url={self._base!r}, client_id={self._client_id!r})"

    # -- reads -------------------------------------------------------------------------------

    async def clients(self) -> Listing[Client]:
        """Every client, inactive ones included (so they can be excluded knowingly)."""
        return await self.list_records("Client", "clients", Client, {"includeinactive": "true"})

    async def sites(self) -> Listing[Site]:
        """Every site of every client, inactive ones included."""
        return await self.list_records("Site", "sites", Site, {"includeinactive": "true"})

    async def contracts(self) -> Listing[Contract]:
        """Every client contract, inactive and expired ones included (coverage decides)."""
        return await self.list_records(
            "ClientContract", "contracts", Contract, {"includeinactive": "true"}
        )

    async def recurring_invoices(self) -> Listing[RecurringInvoice]:
        """Every recurring invoice with its lines, disabled ones included."""
        return await self.list_records(
            "RecurringInvoice",
            "invoices",
            RecurringInvoice,
            {"includelines": "true", "includeinactive": "true"},
        )

    async def items(self) -> Listing[Item]:
        """Every item (product) in HaloPSA's catalogue."""
        return await self.list_records("Item", "items", Item, {"includeinactive": "true"})

    async def assets(self, client_id: int) -> Listing[Asset]:
        """The assets of one client."""
        return await self.list_records("Asset", "assets", Asset, {"client_id": str(client_id)})

    async def users(self, client_id: int) -> Listing[User]:
        """The end users of one client."""
        return await self.list_records("Users", "users", User, {"client_id": str(client_id)})

    async def ticket(self, ticket_id: int) -> Ticket:
        """One ticket by id; raises HaloNotFound for an unknown id."""
        path = f"/api/Tickets/{int(ticket_id)}"
        body = await self._get_json(path, {}, resource="Tickets")
        if not isinstance(body, Mapping) or not body.get("id"):
            raise HaloNotFound("GET", path, 200, "no ticket in the answer")
        parsed = parse_records(Ticket, [body])
        if parsed.rejects:
            raise HaloProtocolError("GET", path, 200, parsed.rejects[0].reason)
        return parsed.records[0]

    async def get_json(self, path: str, params: Mapping[str, str], *, resource: str) -> Any:
        """One GET under the client's budget, retries and token handling; the decoded JSON."""
        return await self._get_json(path, params, resource=resource)

    async def post_json(self, path: str, body: Any, *, resource: str) -> Any:
        """One POST of a JSON body; the decoded answer (None if it is not JSON).

        Writes are not idempotent, so only what HaloPSA provably did not process is retried: a 429
        (refused before processing), a 401 once with a fresh token, and connection failures before
        the request was sent. A 5xx or a timeout may follow a write that was (partly) applied:
        it raises, and the caller re-reads before writing again.
        """
        attempt = 0
        auth_refreshed = False
        while True:
            attempt += 1
            token = await self._current_token()
            if self._budget is not None:
                await self._budget.acquire()
            self.stats.requests[resource] += 1
            try:
                response = await self._http.post(
                    path,
                    json=body,
                    headers={"Authorization": f"{token.token_type} {token.value}"},
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt >= self._retry.max_attempts:
                    raise HaloUnavailable(
                        "POST", path, None, f"{type(error).__name__} after {attempt} attempts"
                    ) from None
                self.stats.retries += 1
                await self._sleep(self._retry.backoff(attempt, self._rng))
                continue
            except (httpx.TimeoutException, httpx.TransportError) as error:
                raise HaloUnavailable(
                    "POST", path, None, f"{type(error).__name__}: the write may have been applied"
                ) from None
            status = response.status_code
            if status == 401 and not auth_refreshed:
                auth_refreshed = True
                attempt -= 1
                self._drop_token(token)
                continue
            if status == 429:
                await self._back_off("POST", path, attempt, response)
                continue
            self._raise_for_status("POST", path, response)
            try:
                return response.json()
            except ValueError:
                return None

    async def list_records(
        self,
        resource: str,
        key: str,
        model: type[M],
        params: Mapping[str, str] | None = None,
    ) -> Listing[M]:
        """Read every page of `GET /api/{resource}` and validate each record into `model`."""
        raw, pages, duplicates = await self._read_all_pages(resource, key, dict(params or {}))
        parsed = parse_records(model, raw, kind=resource)
        return Listing(
            records=parsed.records, rejects=parsed.rejects, pages=pages, duplicates=duplicates
        )

    # -- paging ------------------------------------------------------------------------------

    async def _read_all_pages(
        self, resource: str, key: str, params: dict[str, str]
    ) -> tuple[list[Any], int, int]:
        size = self.page_size
        path = f"/api/{resource}"
        first, record_count = await self._get_page(path, resource, key, params, 1)
        if len(first) != size:
            # Short page: that was all. Longer than asked: the endpoint ignores paging and sent all.
            return _dedupe(first)[0], 1, 0
        planned = max(2, math.ceil(record_count / size)) if record_count else 2
        if planned > self._max_pages:
            raise HaloProtocolError(
                "GET",
                path,
                200,
                f"record_count {record_count} implies {planned} pages, over the cap of "
                f"{self._max_pages}",
            )
        pages: dict[int, list[Any]] = {1: first}
        first_short = math.inf

        async def fetch(number: int) -> None:
            nonlocal first_short
            async with self._slots:
                if number > first_short:
                    return  # an earlier page already ended the list
                records, _ = await self._get_page(path, resource, key, params, number)
            pages[number] = records
            if len(records) < size:
                first_short = min(first_short, number)

        try:
            async with asyncio.TaskGroup() as group:
                for number in range(2, planned + 1):
                    group.create_task(fetch(number))
        except ExceptionGroup as failed:
            # Callers handle HaloError, not groups: surface the first failure (the rest were
            # cancelled with it).
            raise _first_error(failed) from None
        number = planned
        # record_count was too low (or absent): keep walking until HaloPSA sends a short page.
        while first_short == math.inf:
            number += 1
            if number > self._max_pages:
                raise HaloProtocolError(
                    "GET", path, 200, f"more than {self._max_pages} full pages; refusing to go on"
                )
            await fetch(number)
        last = int(first_short)
        ordered = [record for n in sorted(pages) if n <= last for record in pages[n]]
        late = sum(len(pages[n]) for n in pages if n > last)
        if late:
            log.warning("HaloPSA %s: %d records on pages after the last one", path, late)
            ordered.extend(record for n in sorted(pages) if n > last for record in pages[n])
        records, duplicates = _dedupe(ordered)
        if duplicates:
            log.warning("HaloPSA %s: %d duplicate records across pages dropped", path, duplicates)
        return records, len(pages), duplicates

    async def _get_page(
        self, path: str, resource: str, key: str, params: dict[str, str], number: int
    ) -> tuple[list[Any], int | None]:
        query = {
            **params,
            "pageinate": "true",
            "page_size": str(self.page_size),
            "page_no": str(number),
        }
        body = await self._get_json(path, query, resource=resource)
        where = f"{path} page {number}"
        if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
            raise HaloProtocolError("GET", where, 200, f"the answer has no '{key}' list")
        count = body.get("record_count")
        record_count = int(count) if isinstance(count, int | float) and count >= 0 else None
        return list(body[key]), record_count

    # -- transport ---------------------------------------------------------------------------

    async def _get_json(self, path: str, params: Mapping[str, str], *, resource: str) -> Any:
        where = path + (f" page {params['page_no']}" if "page_no" in params else "")
        auth_refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self._current_token()
            response = await self._send(
                "GET",
                path,
                where,
                attempt,
                resource=resource,
                params=params,
                headers={"Authorization": f"{token.token_type} {token.value}"},
            )
            if response is None:
                continue  # transport failure, already backed off
            status = response.status_code
            if status == 401 and not auth_refreshed:
                # The token may have been revoked or expired early: refresh once, then give up.
                auth_refreshed = True
                attempt -= 1
                self._drop_token(token)
                continue
            if status in RETRYABLE_STATUS:
                await self._back_off("GET", where, attempt, response)
                continue
            self._raise_for_status("GET", where, response)
            try:
                return response.json()
            except ValueError:
                raise HaloProtocolError("GET", where, status, "the answer is not JSON") from None

    async def _send(
        self,
        method: str,
        path: str,
        where: str,
        attempt: int,
        *,
        resource: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response | None:
        """Send one request within the budget; on a transport error back off and return None."""
        if self._budget is not None:
            await self._budget.acquire()
        self.stats.requests[resource] += 1
        try:
            return await self._http.request(method, path, params=params, headers=headers, data=data)
        except (httpx.TimeoutException, httpx.TransportError) as error:
            kind = type(error).__name__
            if attempt >= self._retry.max_attempts:
                raise HaloUnavailable(
                    method, where, None, f"{kind} after {attempt} attempts"
                ) from None
            delay = self._retry.backoff(attempt, self._rng)
            log.warning(
                "HaloPSA %s %s: %s, retry %d/%d in %.1fs",
                method,
                where,
                kind,
                attempt,
                self._retry.max_attempts - 1,
                delay,
            )
            self.stats.retries += 1
            await self._sleep(delay)
            return None

    async def _back_off(
        self, method: str, where: str, attempt: int, response: httpx.Response
    ) -> None:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error_type: type[HaloError] = HaloRateLimited if status == 429 else HaloUnavailable
        if attempt >= self._retry.max_attempts:
            raise error_type(method, where, status, f"still failing after {attempt} attempts")
        if retry_after is not None and retry_after > self._retry.max_retry_after:
            raise error_type(
                method,
                where,
                status,
                f"asked to wait {retry_after:.0f}s, more than the "
                f"{self._retry.max_retry_after:.0f}s this client may wait",
            )
        delay = max(retry_after or 0.0, self._retry.backoff(attempt, self._rng))
        log.warning(
            "HaloPSA %s %s: HTTP %d, retry %d/%d in %.1fs",
            method,
            where,
            status,
            attempt,
            self._retry.max_attempts - 1,
            delay,
        )
        self.stats.retries += 1
        await self._sleep(delay)

    @staticmethod
    def _raise_for_status(method: str, where: str, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = response.reason_phrase or "error"
        if status in (401, 403):
            raise HaloAuthError(
                method,
                where,
                status,
                f"{reason}: check the API application's permissions and the agent it logs in as",
            )
        if status == 404:
            raise HaloNotFound(method, where, status, reason)
        if 400 <= status < 500:
            raise HaloRequestError(method, where, status, reason)
        raise HaloUnavailable(method, where, status, reason)

    # -- token -------------------------------------------------------------------------------

    async def _current_token(self) -> _Token:
        token = self._tokens.get(self._token_key)
        if token is not None and self._clock() < token.expires_at:
            return token
        async with self._token_lock:
            # Whoever held the lock before us may have refreshed already: one refresh for all.
            token = self._tokens.get(self._token_key)
            if token is not None and self._clock() < token.expires_at:
                return token
            token = await self._fetch_token()
            self._tokens.put(self._token_key, token)
            return token

    def _drop_token(self, token: _Token) -> None:
        if self._tokens.get(self._token_key) is token:
            self._tokens.put(self._token_key, None)

    async def _fetch_token(self) -> _Token:
        path = "/auth/token"
        params = {"tenant": self._tenant} if self._tenant else None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": self._scope,
        }
        attempt = 0
        while True:
            attempt += 1
            response = await self._send(
                "POST", path, path, attempt, resource="auth/token", params=params, data=form
            )
            if response is None:
                continue
            if response.status_code in RETRYABLE_STATUS:
                await self._back_off("POST", path, attempt, response)
                continue
            if response.status_code in (400, 401, 403):
                raise HaloAuthError(
                    "POST", path, response.status_code, _oauth_error(response) or "token refused"
                )
            self._raise_for_status("POST", path, response)
            break
        self.stats.token_fetches += 1
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise HaloProtocolError(
                "POST", path, response.status_code, "the token answer has no access_token"
            ) from None
        if not isinstance(value, str) or not value:
            raise HaloProtocolError("POST", path, response.status_code, "empty access_token")
        lifetime = max(expires_in - TOKEN_EXPIRY_MARGIN_SECONDS, expires_in / 2)
        return _Token(value, str(body.get("token_type") or "Bearer"), self._clock() + lifetime)


def _oauth_error(response: httpx.Response) -> str | None:
    # Only the OAuth error code (RFC 6749 5.2) is passed on: it is a fixed vocabulary, safe to log.
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) <= 40:
        return f"token refused: {code}"
    return None


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _dedupe(records: list[Any]) -> tuple[list[Any], int]:
    seen: set[Any] = set()
    unique: list[Any] = []
    duplicates = 0
    for record in records:
        record_id = record.get("id") if isinstance(record, Mapping) else None
        if isinstance(record_id, int | str):
            if record_id in seen:
                duplicates += 1
                continue
            seen.add(record_id)
        unique.append(record)
    return unique, duplicates


__all__ = [
    "ClientStats",
    "HaloAuthError",
    "HaloClient",
    "HaloError",
    "HaloNotFound",
    "HaloProtocolError",
    "HaloRateLimited",
    "HaloRequestError",
    "HaloUnavailable",
    "Listing",
    "Reject",
    "RequestBudget",
    "RetryPolicy",
    "TokenCache",
    "describe_error",
    "parse_retry_after",
]
