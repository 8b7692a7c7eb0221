"""HaloPSA REST client: OAuth2 client credentials, paging, retries, and a shared request budget.

Every read is a GET and therefore safe to retry. Errors are typed (shared.halo.errors); their text
never holds the secret, the token or a body. Seams: pacing and retries in shared.outbound.budget,
sending in shared.halo.transport, tokens in shared.halo.tokens and .auth, paging in .paging,
invoices listed without lines in .invoices; what a list read answers is a .listing.Listing.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from shared.halo.auth import Token, TokenCache
from shared.halo.errors import HaloNotFound, HaloProtocolError
from shared.halo.invoices import fill_missing_lines
from shared.halo.listing import Listing, parse_listing
from shared.halo.paging import PageStage, read_all_pages
from shared.halo.tokens import TokenSource, request_token
from shared.halo.transport import ClientStats, HaloTransport, raise_for_status, report_rows
from shared.outbound.budget import Clock, RequestBudget, RetryPolicy, Sleep
from shared.outbound.http import OwnsHttp, open_http
from shared.records.halo import Asset, Client, Contract, Item, RecurringInvoice, Site, Ticket, User
from shared.records.ids import reported_count
from shared.records.parsing import parse_records, vendor_json
from shared.settings import Settings

log = logging.getLogger("halo_immy.halo")

M = TypeVar("M", bound=BaseModel)
# The stats key of `GET /api/RecurringInvoice/{id}`, apart from the listing's pages.
INVOICE_BY_ID = "RecurringInvoice/{id}"


# `GET /api/Client` leaves `azure_tenants` out unless asked ("includeazuretenants: Include azure
# tenants in the response", halo-openapi/halo-api-subset.json). A sync's read and the report
# read's REST sample (shared.halo.proof) list clients alike.
CLIENT_LIST_PARAMS = {"includeinactive": "true", "includeazuretenants": "true"}


class HaloClient(OwnsHttp):
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
        stage: PageStage | None = None,
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
        token_key = (self._base, client_id, tenant or "", scope)
        self._tokens = TokenSource(token_cache or TokenCache(), token_key, clock, self._fetch_token)
        self.stats = ClientStats()
        # A sync's read (shared.sync.stage): pages and by-id answers kept in it are not requested
        # again, and those requested are put in it.
        self._stage = stage
        self._http = open_http(self._base, timeout, transport)
        self._transport = HaloTransport(
            self._http,
            budget=budget,
            retry=self._retry,
            sleep=sleep,
            rng=self._rng,
            stats=self.stats,
            current_token=self._tokens.current,
            drop_token=self._tokens.drop,
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

    def __repr__(self) -> str:
        return f"HaloClient(base_url={self._base!r}, client_id={self._client_id!r})"

    def staged(self, stage: PageStage) -> Self:
        """This client reading through `stage`; it shares the connections, budget and stats, and
        closing stays with this one."""
        clone = copy.copy(self)
        clone._stage = stage
        return clone

    @property
    def budget(self) -> RequestBudget | None:
        """The request budget every call of this client draws on, if any."""
        return self._budget

    # -- reads -------------------------------------------------------------------------------

    async def clients(self) -> Listing[Client]:
        """Every client, inactive ones included (so they can be excluded knowingly), with the
        Microsoft Entra tenants linked to it (an exact key for ImmyBot's tenants)."""
        return await self.list_records("Client", "clients", Client, CLIENT_LIST_PARAMS)

    async def sites(self, **filters: str) -> Listing[Site]:
        """Every site (of the client `client_id=` names), inactive ones included."""
        params = {"includeinactive": "true", **filters}
        return await self.list_records("Site", "sites", Site, params)

    async def contracts(self, **filters: str) -> Listing[Contract]:
        """Every client contract (of `client_id=`), inactive and expired ones included."""
        params = {"includeinactive": "true", **filters}
        return await self.list_records("ClientContract", "contracts", Contract, params)

    async def recurring_invoices(self, **filters: str) -> Listing[RecurringInvoice]:
        """Every recurring invoice (of `client_id=`) with its lines, disabled ones included.

        HaloPSA sometimes lists an invoice without its `lines` key; lineless would wrongly mean
        "covers nothing", so each such invoice is read by id (that answer always carries its
        lines), within the budget. `lines_fetched_by_id` on the listing and on `stats` counts them.
        """
        params = {"includelines": "true", "includeinactive": "true", **filters}
        raw, pages, duplicates = await self._read_all_pages("RecurringInvoice", "invoices", params)
        raw, by_id = await self._fill_missing_lines(raw)
        return parse_listing(
            RecurringInvoice,
            raw,
            "RecurringInvoice",
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

    async def report(self, sql: str) -> list[Mapping[str, Any]]:
        """The rows of one SELECT run by `POST /api/Report` (`_loadreportonly`), values as HaloPSA
        wrote them (strings). A SELECT changes nothing, so it is retried like a GET, but a 504 or
        read timeout raises HaloReportTimeout at once (the caller asks for fewer rows). Raises
        HaloReportError when HaloPSA could not run the SQL (it answers that with HTTP 200)."""
        path = "/api/Report"
        response = await self._transport.request(
            "POST",
            path,
            path,
            resource="Report",
            json_body=[{"sql": sql, "_loadreportonly": True}],
            authorised=True,
            deadline_is_final=True,
        )
        return report_rows(path, response)

    async def get_json(self, path: str, params: Mapping[str, str], *, resource: str) -> Any:
        """One GET under the client's budget, retries and token handling; the decoded JSON."""
        return await self._get_json(path, params, resource=resource)

    async def post_json(self, path: str, body: Any, *, resource: str) -> Any:
        """One POST of a JSON body; the decoded answer (None if it is not JSON).

        Writes are not idempotent: a 5xx or a timeout raises without a second send (see
        `HaloTransport.write`), and the caller re-reads before writing again.
        """
        response = await self._transport.write("POST", path, resource=resource, body=body)
        raise_for_status("POST", path, response)
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
        return parse_listing(model, raw, resource, pages=pages, duplicates=duplicates)

    async def list_page(
        self,
        resource: str,
        key: str,
        model: type[M],
        number: int,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Listing[M], int | None]:
        """Page `number` of `GET /api/{resource}`, validated, with the `record_count` it gave."""
        raw, count, _ = await self._get_page(
            f"/api/{resource}", resource, key, dict(params or {}), number
        )
        return parse_listing(model, raw, resource), count

    async def invoice_page(self, number: int) -> tuple[Listing[RecurringInvoice], int | None]:
        """Page `number` of the recurring invoices with their lines (an invoice listed without
        them is read by id), with the `record_count` HaloPSA gave."""
        params = {"includelines": "true", "includeinactive": "true"}
        raw, count, _ = await self._get_page(
            "/api/RecurringInvoice", "RecurringInvoice", "invoices", params, number
        )
        raw, by_id = await self._fill_missing_lines(raw)
        return parse_listing(
            RecurringInvoice, raw, "RecurringInvoice", lines_fetched_by_id=by_id
        ), count

    async def _invoice_body(self, invoice_id: int) -> Mapping[str, Any]:
        path = f"/api/RecurringInvoice/{invoice_id}"
        key = f"RecurringInvoice|id|{invoice_id}"
        kept = await self._stage.get(key) if self._stage is not None else None
        if isinstance(kept, Mapping) and "id" in kept:
            return kept
        body, sent = await self._get_json_as_sent(path, {}, resource=INVOICE_BY_ID)
        if not isinstance(body, Mapping) or "id" not in body:
            raise HaloProtocolError("GET", path, 200, "no recurring invoice in the answer")
        if self._stage is not None:
            await self._stage.put(key, sent)
        return body

    async def _fill_missing_lines(self, raw: list[Any]) -> tuple[list[Any], int]:
        """`raw` with every invoice listed without `lines` replaced by its by-id answer."""
        filled, fetched = await fill_missing_lines(raw, self._invoice_body, self._slots)
        self.stats.lines_fetched_by_id += fetched
        return filled, fetched

    # -- paging ------------------------------------------------------------------------------

    async def _read_all_pages(
        self, resource: str, key: str, params: dict[str, str]
    ) -> tuple[list[Any], int, int]:
        path = f"/api/{resource}"
        # A kept page stands for the same request only: same resource, parameters and page size.
        asked = json.dumps({**params, "page_size": self.page_size}, sort_keys=True)
        stage_key = f"{resource}|{hashlib.sha256(asked.encode()).hexdigest()[:12]}"

        async def get_page(number: int) -> tuple[list[Any], int | None]:
            if self._stage is None:
                return (await self._get_page(path, resource, key, params, number))[:2]
            name = f"{stage_key}|{number:05d}"
            kept = await self._stage.get(name)
            if isinstance(kept, Mapping) and isinstance(kept.get(key), list):
                return list(kept[key]), reported_count(kept.get("record_count"))
            records, record_count, sent = await self._get_page(path, resource, key, params, number)
            # The answer as HaloPSA sent it: staging it costs no second serialisation.
            await self._stage.put(name, sent)
            return records, record_count

        return await read_all_pages(
            get_page,
            path=path,
            page_size=self.page_size,
            max_pages=self._max_pages,
            slots=self._slots,
        )

    async def _get_page(
        self, path: str, resource: str, key: str, params: dict[str, str], number: int
    ) -> tuple[list[Any], int | None, bytes]:
        """Page `number`: its records, the record_count HaloPSA gave, and the answer's JSON."""
        query = {
            **params,
            "pageinate": "true",
            "page_size": str(self.page_size),
            "page_no": str(number),
        }
        body, sent = await self._get_json_as_sent(path, query, resource=resource)
        where = f"{path} page {number}"
        if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
            raise HaloProtocolError("GET", where, 200, f"the answer has no '{key}' list")
        return list(body[key]), reported_count(body.get("record_count")), sent

    # -- transport ---------------------------------------------------------------------------

    async def _get_json(self, path: str, params: Mapping[str, str], *, resource: str) -> Any:
        return (await self._get_json_as_sent(path, params, resource=resource))[0]

    async def _get_json_as_sent(
        self, path: str, params: Mapping[str, str], *, resource: str
    ) -> tuple[Any, bytes]:
        """One GET's decoded JSON, and its body as HaloPSA sent it."""
        where = path + (f" page {params['page_no']}" if "page_no" in params else "")
        response = await self._transport.request(
            "GET", path, where, resource=resource, params=params, authorised=True
        )
        raise_for_status("GET", where, response)
        try:
            return vendor_json(response.content), response.content
        except ValueError:
            raise HaloProtocolError(
                "GET", where, response.status_code, "the answer is not JSON"
            ) from None

    # -- token -------------------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Fetch a token now (or reuse the cached one); raises what the token request raises."""
        await self._tokens.current()

    async def _fetch_token(self) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": self._scope,
        }
        return await request_token(self._transport, form, self._tenant, self._clock)
