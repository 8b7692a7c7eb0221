"""HaloPSA REST client: OAuth2 client credentials, paging, retries, and a shared request budget.

Every read is a GET and therefore safe to retry. Errors are typed (shared.halo_errors) and their
text carries the method, the path and the status, never the client secret, the token or a response
body. The seams live in their own modules: pacing and retries in shared.halo_budget, tokens in
shared.halo_auth, paging in shared.halo_paging; their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

import httpx
from pydantic import BaseModel, SecretStr

from shared.halo_auth import (
    TOKEN_EXPIRY_MARGIN_SECONDS,
    TOKEN_PATH,
    Token,
    TokenCache,
    oauth_error,
    token_from_response,
)
from shared.halo_budget import (
    RETRYABLE_STATUS,
    THROTTLED_STATUS,
    TRANSIENT_STATUS,
    Clock,
    RequestBudget,
    RetryPolicy,
    Sleep,
    parse_retry_after,
)
from shared.halo_errors import (
    HaloAuthError,
    HaloError,
    HaloNotFound,
    HaloProtocolError,
    HaloRateLimited,
    HaloRequestError,
    HaloUnavailable,
)
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
from shared.halo_paging import first_error, read_all_pages
from shared.settings import Settings
from shared.telemetry import log_outgoing_call

log = logging.getLogger("halo_immy.halo")

M = TypeVar("M", bound=BaseModel)
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
# The stats key of `GET /api/RecurringInvoice/{id}`, apart from the listing's pages.
INVOICE_BY_ID = "RecurringInvoice/{id}"


@dataclass(slots=True)
class Listing(Parsed[M], Generic[M]):
    """A fully paged list: valid records, rejects, and how it was read."""

    pages: int = 0
    duplicates: int = 0
    lines_fetched_by_id: int = 0


@dataclass(slots=True)
class ClientStats:
    """Requests sent per resource (token requests under `auth/token`), retries made, 429s met,
    and recurring invoices listed without `lines` and so read by id."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    token_fetches: int = 0
    throttled: int = 0
    lines_fetched_by_id: int = 0

    @property
    def total_requests(self) -> int:
        """All HTTP requests sent, token requests included."""
        return sum(self.requests.values())


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
            "retry": RetryPolicy(backoff_429=settings.halo_backoff_429_seconds),
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
        """Every recurring invoice with its lines, disabled ones included.

        HaloPSA sometimes lists an invoice without its `lines` key; lineless would wrongly mean
        "covers nothing", so each such invoice is read by id (that answer always carries its
        lines), within the budget. `lines_fetched_by_id` on the listing and on `stats` counts them.
        """
        params = {"includelines": "true", "includeinactive": "true"}
        raw, pages, duplicates = await self._read_all_pages("RecurringInvoice", "invoices", params)
        raw, by_id = await self._fill_missing_lines(raw)
        parsed = parse_records(RecurringInvoice, raw, kind="RecurringInvoice")
        return Listing(
            records=parsed.records,
            rejects=parsed.rejects,
            pages=pages,
            duplicates=duplicates,
            lines_fetched_by_id=by_id,
        )

    async def recurring_invoice(self, invoice_id: int) -> RecurringInvoice:
        """One recurring invoice with its lines (ids are negative); HaloNotFound if unknown."""
        path = f"/api/RecurringInvoice/{int(invoice_id)}"
        body = await self._invoice_body(int(invoice_id))
        parsed = parse_records(RecurringInvoice, [body], kind="RecurringInvoice")
        if parsed.rejects:
            raise HaloProtocolError("GET", path, 200, parsed.rejects[0].reason)
        return parsed.records[0]

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
        (refused before processing; the budget slows as for reads), a 401 once with a fresh token,
        and connection failures before the request was sent. A 5xx or a timeout may follow a write
        that was (partly) applied: it raises, and the caller re-reads before writing again.
        """
        call = _Call()
        started = time.perf_counter()
        error: str | None = None
        try:
            return await self._post_tries(path, body, resource, call)
        except BaseException as failure:
            error = type(failure).__name__
            raise
        finally:
            log_outgoing_call(
                "halopsa",
                "POST",
                path,
                status=call.status,
                started=started,
                retries=call.retries,
                throttled=call.throttled,
                error=error,
            )

    async def _post_tries(self, path: str, body: Any, resource: str, call: _Call) -> Any:
        auth_refreshed = False
        while True:
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
            except (httpx.ConnectError, httpx.ConnectTimeout) as failure:
                call.status = None  # never reached HaloPSA: safe to send again
                await self._after_transient("POST", path, call, type(failure).__name__, None)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as failure:
                raise HaloUnavailable(
                    "POST", path, None, f"{type(failure).__name__}: the write may have been applied"
                ) from None
            status = response.status_code
            call.status = status
            if status == 401 and not auth_refreshed:
                auth_refreshed = True
                self._drop_token(token)
                continue
            if status == THROTTLED_STATUS:
                await self._after_throttled("POST", path, call, response)
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

    async def _invoice_body(self, invoice_id: int) -> Mapping[str, Any]:
        path = f"/api/RecurringInvoice/{invoice_id}"
        body = await self._get_json(path, {}, resource=INVOICE_BY_ID)
        if not isinstance(body, Mapping) or "id" not in body:
            raise HaloProtocolError("GET", path, 200, "no recurring invoice in the answer")
        return body

    async def _fill_missing_lines(self, raw: list[Any]) -> tuple[list[Any], int]:
        """`raw` with every invoice listed without `lines` replaced by its by-id answer."""
        missing = [n for n, r in enumerate(raw) if isinstance(r, Mapping) and "lines" not in r]
        if not missing:
            return raw, 0
        filled: list[Any] = list(raw)
        gone: set[int] = set()
        fetched = 0

        async def fetch(position: int) -> None:
            nonlocal fetched
            invoice_id = _whole(raw[position].get("id"))
            if invoice_id is None:
                return  # validation rejects it for its id, with the reason
            async with self._slots:
                try:
                    body = await self._invoice_body(invoice_id)
                except HaloNotFound:
                    # Deleted between the listing and this read: it bills nothing any more.
                    gone.add(position)
                    return
                finally:
                    fetched += 1
            if "lines" not in body:
                log.warning("HaloPSA recurring invoice read by id came back without lines too")
            filled[position] = body

        try:
            async with asyncio.TaskGroup() as group:
                for position in missing:
                    group.create_task(fetch(position))
        except ExceptionGroup as failed:
            raise first_error(failed) from None
        self.stats.lines_fetched_by_id += fetched
        log.info("HaloPSA listed %d recurring invoices without lines; read them by id", fetched)
        return [r for n, r in enumerate(filled) if n not in gone], fetched

    # -- paging ------------------------------------------------------------------------------

    async def _read_all_pages(
        self, resource: str, key: str, params: dict[str, str]
    ) -> tuple[list[Any], int, int]:
        path = f"/api/{resource}"

        async def get_page(number: int) -> tuple[list[Any], int | None]:
            return await self._get_page(path, resource, key, params, number)

        return await read_all_pages(
            get_page,
            path=path,
            page_size=self.page_size,
            max_pages=self._max_pages,
            slots=self._slots,
        )

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
        response = await self._request(
            "GET", path, where, resource=resource, params=params, authorised=True
        )
        self._raise_for_status("GET", where, response)
        try:
            return response.json()
        except ValueError:
            raise HaloProtocolError(
                "GET", where, response.status_code, "the answer is not JSON"
            ) from None

    async def _request(
        self,
        method: str,
        path: str,
        where: str,
        *,
        resource: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        authorised: bool = False,
    ) -> httpx.Response:
        """Send a request until it has an answer that retrying cannot change, and log the call.

        Every try draws on the budget. 429: pause (at least the policy's `backoff_429`) and slow
        the budget; 500/502/503/504, timeouts and connection errors: exponential back-off with
        jitter; 401 with a bearer token: refresh the token once. Raises HaloUnavailable or
        HaloRateLimited past the policy's caps; any other answer is returned as it is.
        """
        call = _Call()
        started = time.perf_counter()
        error: str | None = None
        try:
            return await self._tries(method, path, where, call, resource, params, data, authorised)
        except BaseException as failure:
            error = type(failure).__name__
            raise
        finally:
            log_outgoing_call(
                "halopsa",
                method,
                path,
                status=call.status,
                started=started,
                retries=call.retries,
                throttled=call.throttled,
                error=error,
            )

    async def _tries(
        self,
        method: str,
        path: str,
        where: str,
        call: _Call,
        resource: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        authorised: bool,
    ) -> httpx.Response:
        auth_refreshed = False
        while True:
            token = await self._current_token() if authorised else None
            headers = {"Authorization": f"{token.token_type} {token.value}"} if token else None
            if self._budget is not None:
                await self._budget.acquire()
            self.stats.requests[resource] += 1
            try:
                response = await self._http.request(
                    method, path, params=params, headers=headers, data=data
                )
            except (httpx.TimeoutException, httpx.TransportError) as failure:
                call.status = None
                await self._after_transient(method, where, call, type(failure).__name__, None)
                continue
            status = response.status_code
            call.status = status
            if status == 401 and token is not None and not auth_refreshed:
                # The token may have been revoked or expired early: refresh once, then give up.
                auth_refreshed = True
                self._drop_token(token)
                continue
            if status == THROTTLED_STATUS:
                await self._after_throttled(method, where, call, response)
                continue
            if status in TRANSIENT_STATUS:
                await self._after_transient(method, where, call, f"HTTP {status}", response)
                continue
            return response

    async def _after_transient(
        self, method: str, where: str, call: _Call, what: str, response: httpx.Response | None
    ) -> None:
        """Back off after a transient failure, or raise HaloUnavailable past the attempt cap."""
        call.failures += 1
        status = response.status_code if response is not None else None
        if call.failures >= self._retry.max_attempts:
            detail = (
                f"{what} after {call.failures} attempts"
                if response is None
                else f"still failing after {call.failures} attempts"
            )
            raise HaloUnavailable(method, where, status, detail)
        retry_after = self._retry_after(method, where, response, HaloUnavailable)
        delay = max(retry_after or 0.0, self._retry.backoff(call.failures, self._rng))
        log.warning(
            "HaloPSA %s %s: %s, retry %d/%d in %.1fs",
            method,
            where,
            what,
            call.failures,
            self._retry.max_attempts - 1,
            delay,
        )
        call.retries += 1
        self.stats.retries += 1
        await self._sleep(delay)

    async def _after_throttled(
        self, method: str, where: str, call: _Call, response: httpx.Response
    ) -> None:
        """Pause after a 429 and slow the budget, or raise HaloRateLimited past the cap."""
        call.throttled += 1
        self.stats.throttled += 1
        if call.throttled > self._retry.max_throttled:
            raise HaloRateLimited(
                method, where, THROTTLED_STATUS, f"still rate limited after {call.throttled} 429s"
            )
        # HaloPSA sends no Retry-After; one that is present is honoured when it is longer.
        retry_after = self._retry_after(method, where, response, HaloRateLimited)
        wait = max(self._retry.backoff_429, retry_after or 0.0)
        call.retries += 1
        self.stats.retries += 1
        if self._budget is None:
            log.warning("HaloPSA %s %s: HTTP 429, retry in %.1fs", method, where, wait)
            await self._sleep(wait)
            return
        # The limit is per instance, so every request of the run pauses, not only this one: the
        # next `acquire` waits out the pause.
        self._budget.throttled(wait)
        log.warning(
            "HaloPSA %s %s: HTTP 429, every request pauses %.1fs, budget now %.1f/min",
            method,
            where,
            wait,
            self._budget.per_minute,
        )

    def _retry_after(
        self,
        method: str,
        where: str,
        response: httpx.Response | None,
        error_type: type[HaloError],
    ) -> float | None:
        if response is None:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None and retry_after > self._retry.max_retry_after:
            raise error_type(
                method,
                where,
                response.status_code,
                f"asked to wait {retry_after:.0f}s, more than the "
                f"{self._retry.max_retry_after:.0f}s this client may wait",
            )
        return retry_after

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

    async def _current_token(self) -> Token:
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

    def _drop_token(self, token: Token) -> None:
        if self._tokens.get(self._token_key) is token:
            self._tokens.put(self._token_key, None)

    async def _fetch_token(self) -> Token:
        params = {"tenant": self._tenant} if self._tenant else None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": self._scope,
        }
        response = await self._request(
            "POST", TOKEN_PATH, TOKEN_PATH, resource="auth/token", params=params, data=form
        )
        if response.status_code in (400, 401, 403):
            raise HaloAuthError(
                "POST",
                TOKEN_PATH,
                response.status_code,
                oauth_error(response) or "token refused",
            )
        self._raise_for_status("POST", TOKEN_PATH, response)
        self.stats.token_fetches += 1
        return token_from_response(response, self._clock())


@dataclass(slots=True)
class _Call:
    """What one logical request met across its tries."""

    status: int | None = None
    failures: int = 0
    throttled: int = 0
    retries: int = 0


def _whole(value: Any) -> int | None:
    # HaloPSA sends ids as ints, decimals (-94.0) or strings.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


@overload
async def gather_or_cancel(a: Awaitable[T1], b: Awaitable[T2], /) -> tuple[T1, T2]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], /
) -> tuple[T1, T2, T3]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], d: Awaitable[T4], /
) -> tuple[T1, T2, T3, T4]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], d: Awaitable[T4], e: Awaitable[T5], /
) -> tuple[T1, T2, T3, T4, T5]: ...
@overload
async def gather_or_cancel(*awaitables: Awaitable[Any]) -> tuple[Any, ...]: ...
async def gather_or_cancel(*awaitables: Awaitable[Any]) -> tuple[Any, ...]:
    """Await HaloPSA reads concurrently, like `asyncio.gather`, but all or nothing.

    The first failure cancels the others at once (their requests in flight, their back-off waits,
    and every request they had yet to send) and is raised as itself, not as an exception group.
    `asyncio.gather` would raise it too, but leave the others sending requests into a run that has
    already failed, spending the shared budget for nothing.
    """

    async def wait(awaitable: Awaitable[Any]) -> Any:
        return await awaitable

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(wait(awaitable)) for awaitable in awaitables]
    except ExceptionGroup as failed:
        raise first_error(failed) from None
    return tuple(task.result() for task in tasks)


__all__ = [
    "INVOICE_BY_ID",
    "RETRYABLE_STATUS",
    "TOKEN_EXPIRY_MARGIN_SECONDS",
    "ClientStats",
    "Clock",
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
    "Sleep",
    "Token",
    "TokenCache",
    "describe_error",
    "gather_or_cancel",
    "parse_retry_after",
]
