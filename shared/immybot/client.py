"""ImmyBot REST client: tenants, computers, their inventory (in bulk, by software name), tags,
provider links; and the writes the app makes: creating tags, adding and removing tags on tenants
and on computers. Its Entra ID token comes from `shared.immybot.auth` (msal, client credentials),
its errors from `shared.immybot.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from shared.immybot.auth import EntraToken, MsalApplications, MsalHttpClient
from shared.immybot.errors import ImmyAuthError, ImmyProtocolError, ImmyUnavailable
from shared.outbound.budget import RETRYABLE_STATUS, RetryPolicy, Sleep, parse_retry_after
from shared.outbound.http import CallRecord, OwnsHttp, logged_call, open_http
from shared.records.immybot import (
    ImmyComputer,
    ImmyTag,
    ImmyTenant,
    InventoryRow,
    ProviderClient,
    ProviderLink,
)
from shared.records.parsing import describe_error
from shared.settings import Settings

log = logging.getLogger("halo_immy.immy")
PAGE_SIZE = 500
TENANT_PAGE_SIZE = 500
# add-tags/remove-tags take lists of ids; keep one request's body modest.
MAX_IDS_PER_WRITE = 500
# SoftwareTableNameSearchMode 0: the name contains the text (PSImmyBot's enum names, unverified).
SEARCH_CONTAINS = 0


class ImmyClient(OwnsHttp):
    """Reads ImmyBot. Use as `async with ImmyClient(...) as immy:`; share one per process."""

    def __init__(
        self,
        base_url: str,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr | str,
        scope: str | None = None,
        authority_host: str = "https://login.microsoftonline.com",
        timeout: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        msal_http: MsalHttpClient | None = None,
        applications: MsalApplications | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._entra = EntraToken(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope or f"{self.base_url}/.default",
            authority_host=authority_host,
            timeout=timeout,
            msal_http=msal_http,
            applications=applications,
        )
        self._retry = retry or RetryPolicy(max_attempts=4)
        self._sleep = sleep
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self.requests = 0
        self.writes = 0
        self._http = open_http(self.base_url, timeout, transport)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ImmyClient | None:
        """A client from app settings, or None when ImmyBot is not configured."""
        immy = settings.immybot
        if immy is None:
            return None
        options: dict[str, Any] = {
            "tenant_id": immy.tenant_id,
            "client_id": immy.client_id,
            "client_secret": immy.client_secret,
            "scope": immy.scope,
            "authority_host": immy.authority_host,
        }
        options.update(kwargs)
        return cls(immy.base_url, **options)

    def __repr__(self) -> str:
        return f"ImmyClient(base_url={self.base_url!r}, client_id={self._client_id!r})"

    # -- token -------------------------------------------------------------------------------------

    async def token(self) -> str:
        """An access token for ImmyBot; msal caches it and refreshes it before it expires."""
        return await self._entra.token()

    # -- reads ---------------------------------------------------------------------------------------

    async def tenants(self) -> list[ImmyTenant]:
        """Every tenant ImmyBot knows, with the tags each carries.

        The endpoint pages with Sieve's `Page`/`PageSize` and answers a bare list (no count), so
        pages are read until one is empty; a server that ignores paging (the same page again) ends
        it too.
        """
        found: dict[int, ImmyTenant] = {}
        page = 1
        while True:
            params = {"Page": str(page), "PageSize": str(TENANT_PAGE_SIZE)}
            body = await self._get("/api/v1/tenants", params)
            if not isinstance(body, list):
                raise ImmyProtocolError("GET /api/v1/tenants: the answer is not a list")
            tenants = self._parse(ImmyTenant, body, "tenant")
            fresh = [t for t in tenants if t.id not in found]
            found.update((t.id, t) for t in fresh)
            if not body or not fresh:
                break
            page += 1
            if page > 10_000:
                raise ImmyProtocolError("GET /api/v1/tenants: more than 10,000 pages")
        return sorted(found.values(), key=lambda t: t.id)

    async def computers(self, tenant_id: int | None = None) -> list[ImmyComputer]:
        """Every computer (offline ones included), optionally of one tenant, paged by id.

        A page may be shorter than asked for (the server caps `take`), so paging ends only on an
        empty page or once `skip` reaches the `count` the server reports (DESIGN.md section 9).
        """
        found: list[ImmyComputer] = []
        skip = 0
        while True:
            params = {
                "skip": str(skip),
                "take": str(PAGE_SIZE),
                "includeOffline": "true",
                "sort": "id",
                "sortDesc": "false",
            }
            if tenant_id is not None:
                params["tenantId"] = str(tenant_id)
            body = await self._get("/api/v1/computers/paged", params)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise ImmyProtocolError("GET /api/v1/computers/paged: no 'results' list")
            found.extend(self._parse(ImmyComputer, results, "computer"))
            skip += len(results)
            total = body.get("count", body.get("totalCount"))
            if not results or (isinstance(total, int) and skip >= total):
                break
            if skip > 1_000_000:
                raise ImmyProtocolError(
                    "GET /api/v1/computers/paged: more than a million computers"
                )
        unique = {c.id: c for c in found}
        return sorted(unique.values(), key=lambda c: c.id)

    async def inventory_search(self, text: str) -> list[InventoryRow]:
        """Every computer whose inventory has software with `text` in its display name, across
        all tenants, in one request: `GET /api/v1/computers/all-inventory-software/search-by-name`.

        Source: ImmyBot's OpenAPI document (shared/immybot-openapi, immy.bot API v1): parameters
        `q`, `tenantId` (left out: every tenant) and `searchMode` (`SoftwareTableNameSearchMode`,
        0 = Contains per PSImmyBot's names, unverified); the answer is a bare array of
        `ComputerInventoryAllSoftware` with no paging. The sister `inventory-software/search-by-name`
        answers only a count per name and version across the instance, nothing per tenant, so it
        cannot say where the software is. Contains is asked for rather than a regex because its
        meaning does not hang on an unverified enum name beyond 0; callers filter the rows by
        their own patterns.
        """
        path = "/api/v1/computers/all-inventory-software/search-by-name"
        body = await self._get(path, {"q": text, "searchMode": str(SEARCH_CONTAINS)})
        if not isinstance(body, list):
            raise ImmyProtocolError(f"GET {path}: the answer is not a list")
        return self._parse(InventoryRow, body, "inventory row")

    async def tags(self) -> list[ImmyTag]:
        """Every tag (`GET /api/v1/tags`)."""
        body = await self._get("/api/v1/tags", {})
        if not isinstance(body, list):
            raise ImmyProtocolError("GET /api/v1/tags: the answer is not a list")
        return self._parse(ImmyTag, body, "tag")

    async def create_tag(self, name: str, description: str) -> ImmyTag:
        """Create a tag (`POST /api/v1/tags`) and return it."""
        body = await self._send(
            "POST", "/api/v1/tags", {}, {"name": name, "description": description}
        )
        try:
            return ImmyTag.model_validate(body)
        except ValidationError:
            pass
        # ImmyBot's OpenAPI document gives this answer no schema: if it is not the tag, find it.
        found = [t for t in await self.tags() if t.name.casefold() == name.casefold()]
        if len(found) != 1:
            raise ImmyProtocolError(f"POST /api/v1/tags: tag {name!r} not found after creating it")
        return found[0]

    async def add_tenant_tags(self, tenant_ids: list[int], tag_ids: list[int]) -> int:
        """Put every tag of `tag_ids` on every tenant of `tenant_ids`; returns the requests sent."""
        return await self._entity_tags("/api/v1/tenants/add-tags", tenant_ids, tag_ids)

    async def remove_tenant_tags(self, tenant_ids: list[int], tag_ids: list[int]) -> int:
        """Take every tag of `tag_ids` off every tenant of `tenant_ids`; returns requests sent."""
        return await self._entity_tags("/api/v1/tenants/remove-tags", tenant_ids, tag_ids)

    async def add_computer_tags(self, computer_ids: list[int], tag_ids: list[int]) -> int:
        """Put every tag of `tag_ids` on every computer of `computer_ids`; returns requests sent."""
        return await self._entity_tags("/api/v1/computers/add-tags", computer_ids, tag_ids)

    async def remove_computer_tags(self, computer_ids: list[int], tag_ids: list[int]) -> int:
        """Take every tag of `tag_ids` off every computer of `computer_ids`; returns requests
        sent."""
        return await self._entity_tags("/api/v1/computers/remove-tags", computer_ids, tag_ids)

    async def _entity_tags(self, path: str, entity_ids: list[int], tag_ids: list[int]) -> int:
        # Tenants and computers take the same bodies: AddTagsRequest / RemoveTagsRequest
        # ({entityIds, tagIds}) in ImmyBot's OpenAPI document, for both paths.
        sent = 0
        ids = sorted(set(entity_ids))
        for start in range(0, len(ids), MAX_IDS_PER_WRITE):
            chunk = ids[start : start + MAX_IDS_PER_WRITE]
            await self._send("POST", path, {}, {"entityIds": chunk, "tagIds": sorted(set(tag_ids))})
            sent += 1
        return sent

    async def provider_links(self) -> list[ProviderLink]:
        """ImmyBot's integrations (`GET /api/v1/provider-links`)."""
        body = await self._get("/api/v1/provider-links", {})
        if not isinstance(body, list):
            raise ImmyProtocolError("GET /api/v1/provider-links: the answer is not a list")
        return self._parse(ProviderLink, body, "provider link")

    async def provider_clients(self, link_id: int) -> list[ProviderClient]:
        """The clients of one provider link and the tenants they are linked to."""
        path = f"/api/v1/provider-links/{int(link_id)}/clients"
        body = await self._get(path, {})
        if not isinstance(body, list):
            raise ImmyProtocolError(f"GET {path}: the answer is not a list")
        return self._parse(ProviderClient, body, "provider client")

    async def get_json(self, path: str, params: Mapping[str, str]) -> Any:
        """One GET with the client's token and retries; the decoded JSON (for one-off probes)."""
        return await self._get(path, params)

    @staticmethod
    def _parse(model: Any, raw: list[Any], kind: str) -> list[Any]:
        parsed = []
        for item in raw:
            try:
                parsed.append(model.model_validate(item))
            except ValidationError as error:
                log.warning("ImmyBot %s skipped: %s", kind, describe_error(error))
        return parsed

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        return await self._send("GET", path, params)

    async def _send(
        self, method: str, path: str, params: Mapping[str, str], body: Any = None
    ) -> Any:
        """One call with retries; logs one `outgoing_call` line for it, its retries included."""
        call = CallRecord()
        sending = self._send_tries(method, path, params, body, call)
        return await logged_call("immybot", method, path, call, sending)

    async def _send_tries(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Any,
        call: CallRecord,
    ) -> Any:
        # Both writes the app makes are idempotent (a tag added twice is added once), so a write
        # is retried like a read.
        auth_retried = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.token()
            self.requests += 1
            if method != "GET":
                self.writes += 1
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError as error:
                call.status = None
                if attempt >= self._retry.max_attempts:
                    raise ImmyUnavailable(
                        f"{method} {path}: {type(error).__name__} after {attempt} attempts"
                    ) from None
                call.retries = attempt
                await self._sleep(self._retry.backoff(attempt, self._rng))
                continue
            status = response.status_code
            call.status = status
            if status == 401 and not auth_retried:
                auth_retried = True
                attempt -= 1
                await asyncio.to_thread(self._forget_tokens)
                continue
            if status == 429:
                call.throttled += 1
            if status in RETRYABLE_STATUS and attempt < self._retry.max_attempts:
                wait = parse_retry_after(response.headers.get("Retry-After")) or 0.0
                call.retries = attempt
                await self._sleep(
                    min(
                        self._retry.max_retry_after,
                        max(wait, self._retry.backoff(attempt, self._rng)),
                    )
                )
                continue
            return _answer(method, path, response)

    def _forget_tokens(self) -> None:
        self._entra.forget_tokens()


def _answer(method: str, path: str, response: httpx.Response) -> Any:
    """The decoded JSON of a final answer, or the typed ImmyError its status stands for."""
    status = response.status_code
    if status in (401, 403):
        raise ImmyAuthError(
            f"{method} {path}: HTTP {status}: check the ImmyBot user of the app registration",
            status=status,
        )
    if status >= 400:
        error_type = ImmyUnavailable if status >= 500 or status == 429 else ImmyProtocolError
        raise error_type(f"{method} {path}: HTTP {status}")
    if method != "GET" and not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ImmyProtocolError(f"{method} {path}: the answer is not JSON") from None
