"""One client read again from HaloPSA's REST API, for an event: the client, its sites, contracts
and recurring invoices (with lines), in four requests (plus any invoice listed without lines).

`GET /api/Client/{id}`, and `Site`, `ClientContract` and `RecurringInvoice` filtered by
`client_id` (each list takes it: HaloPSA's OpenAPI document, ../shared/halo-openapi). A record a
filtered list returns for another client (were HaloPSA to ignore the filter) is left out and
counted, never kept under the wrong client. A contract or invoice an event names without its
client is read by id first (`ClientContract/{id}`, `RecurringInvoice/{id}`) to learn whose it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.halo.client import HaloClient
from shared.halo.errors import HaloNotFound
from shared.halo.listing import Listing
from shared.halo.paging import gather_or_cancel
from shared.records.halo import Client, Contract, RecurringInvoice, Site
from shared.records.ids import whole_number
from shared.records.parsing import Reject, parse_records

# The stats key of `GET /api/Client/{id}`, apart from the client listing.
CLIENT_BY_ID = "Client/{id}"
# A record an event names without its client, read by id: (path, stats key).
RECORD_BY_ID = {
    "contract": ("/api/ClientContract/{id}", "ClientContract/{id}"),
    "invoice": ("/api/RecurringInvoice/{id}", "RecurringInvoice/{id}"),
}
R = TypeVar("R", Site, Contract, RecurringInvoice)


@dataclass(frozen=True, slots=True)
class ClientRead:
    """What HaloPSA holds of one client now. `client` is None when HaloPSA does not know it
    (404, or an answer without it) or its record is invalid (`rejects` says why)."""

    client_id: int
    client: Client | None
    sites: list[Site] = field(default_factory=list)
    contracts: list[Contract] = field(default_factory=list)
    invoices: list[RecurringInvoice] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    foreign: int = 0  # records a filtered list returned for another client, left out
    # Records read per type, rejects included (invoice_lines counted apart), as a sync counts.
    read: dict[str, int] = field(default_factory=dict)


async def read_client(halo: HaloClient, client_id: int) -> ClientRead:
    """The client and its records as HaloPSA has them now; HaloError when HaloPSA fails."""
    client, rejects = await _client(halo, client_id)
    if client is None:
        return ClientRead(client_id, None, rejects=rejects)
    selector = {"client_id": str(client_id)}
    sites, contracts, invoices = await gather_or_cancel(
        halo.sites(**selector), halo.contracts(**selector), halo.recurring_invoices(**selector)
    )
    kept_sites, foreign_sites = _own(sites, client_id)
    kept_contracts, foreign_contracts = _own(contracts, client_id)
    kept_invoices, foreign_invoices = _own(invoices, client_id)
    rejects += sites.rejects + contracts.rejects + invoices.rejects
    line_rejects = sum(r.kind == "invoice_lines" for r in invoices.rejects)
    read = {
        "clients": 1,
        "sites": len(kept_sites) + len(sites.rejects),
        "contracts": len(kept_contracts) + len(contracts.rejects),
        "invoices": len(kept_invoices) + len(invoices.rejects) - line_rejects,
        "invoice_lines": sum(len(i.lines) for i in kept_invoices) + line_rejects,
    }
    return ClientRead(
        client_id,
        client,
        kept_sites,
        kept_contracts,
        kept_invoices,
        rejects,
        foreign_sites + foreign_contracts + foreign_invoices,
        read,
    )


async def _client(halo: HaloClient, client_id: int) -> tuple[Client | None, list[Reject]]:
    path = f"/api/Client/{int(client_id)}"
    try:
        body: Any = await halo.get_json(path, {}, resource=CLIENT_BY_ID)
    except HaloNotFound:
        return None, []
    if not isinstance(body, Mapping) or body.get("id") in (None, 0, "0"):
        return None, []  # HaloPSA answers an unknown id with an empty record on some versions
    parsed = parse_records(Client, [body])
    if parsed.rejects:
        return None, parsed.rejects
    client = parsed.records[0]
    return (client, []) if client.id == client_id else (None, [])


async def client_of(halo: HaloClient, target: str, record_id: int) -> int | None:
    """The client a contract or recurring invoice belongs to now (one `GET` by id), or None when
    HaloPSA does not know the record or it names no client; HaloError when HaloPSA fails."""
    path, resource = RECORD_BY_ID[target]
    try:
        body: Any = await halo.get_json(path.format(id=int(record_id)), {}, resource=resource)
    except HaloNotFound:
        return None
    client = whole_number(body.get("client_id")) if isinstance(body, Mapping) else None
    return client if client is not None and client > 0 else None


def _own(listing: Listing[R], client_id: int) -> tuple[list[R], int]:
    kept = [r for r in listing.records if r.client_id == client_id]
    return kept, len(listing.records) - len(kept)
