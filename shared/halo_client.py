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
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

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
from shared.halo_paging import read_all_pages
from shared.settings import Settings

log = logging.getLogger("halo_immy.halo")

M = TypeVar("M", bound=BaseModel)


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
        path = TOKEN_PATH
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
                    "POST", path, response.status_code, oauth_error(response) or "token refused"
                )
            self._raise_for_status("POST", path, response)
            break
        self.stats.token_fetches += 1
        return token_from_response(response, self._clock())


__all__ = [
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
    "parse_retry_after",
]
