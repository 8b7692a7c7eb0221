"""A sync's read of HaloPSA: every record type, validated, with references between them checked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.halo_client import HaloClient, Listing, gather_or_cancel
from shared.halo_models import Cause, Reject
from shared.halo_report import ReadMode, read_by_report
from shared.targets import Snapshot

RECORD_KINDS = ("clients", "sites", "contracts", "invoices", "items")


@dataclass(frozen=True, slots=True)
class SyncData:
    """What a run read from HaloPSA, validated."""

    snapshot: Snapshot
    rejects: list[Reject]
    read: dict[str, int]
    read_mode: str = "rest"


async def read_halo(halo: HaloClient, mode: ReadMode | str = ReadMode.REST) -> SyncData:
    """Read every record type a sync needs, concurrently, and validate references between them.

    `mode` reads through SQL reports or REST pages (`auto`: reports when HaloPSA runs them); both
    give the same records, so everything after the read is the same."""
    found = await read_by_report(halo, mode)
    if found is not None:
        clients, sites, contracts = found.clients, found.sites, found.contracts
        invoices, items = found.invoices, found.items
    else:
        # All or nothing: when one listing fails, the others stop sending requests.
        clients, sites, contracts, invoices, items = await gather_or_cancel(
            halo.clients(), halo.sites(), halo.contracts(), halo.recurring_invoices(), halo.items()
        )
    listings: dict[str, Listing[Any]] = {
        "clients": clients,
        "sites": sites,
        "contracts": contracts,
        "invoices": invoices,
        "items": items,
    }
    rejects = [r for listing in listings.values() for r in listing.rejects]
    known = {c.id for c in clients.records}
    rejected_clients = {r.record_id for r in clients.rejects}

    def linked(kind: str, records: list[Any]) -> list[Any]:
        # A record pointing at a client HaloPSA did not list, or listed but we rejected, cannot be
        # shown or targeted: it is counted under its own cause, never dropped without a trace.
        kept = []
        for record in records:
            if record.client_id in known:
                kept.append(record)
            elif str(record.client_id) in rejected_clients:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client {record.client_id} was rejected",
                        Cause.CLIENT_REJECTED,
                    )
                )
            else:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client_id {record.client_id} is unknown",
                        Cause.CLIENT_UNKNOWN,
                    )
                )
        return kept

    snapshot = Snapshot.build(
        clients.records,
        linked("sites", sites.records),
        linked("contracts", contracts.records),
        linked("invoices", invoices.records),
        items.records,
    )
    read = {kind: len(listing.records) + len(listing.rejects) for kind, listing in listings.items()}
    line_rejects = sum(r.kind == "invoice_lines" for r in invoices.rejects)
    # Line rejects sit in the invoices listing: count them as lines, not as invoices.
    read["invoices"] -= line_rejects
    read["invoice_lines"] = sum(len(i.lines) for i in invoices.records) + line_rejects
    read_mode = ReadMode.REST if found is None else ReadMode.REPORT
    return SyncData(snapshot, rejects, read, str(read_mode))


def count_rejects(rejects: Iterable[Reject]) -> dict[str, dict[str, int]]:
    """Rejects counted per record type, then per cause."""
    counts: dict[str, dict[str, int]] = {}
    for reject in rejects:
        per_kind = counts.setdefault(reject.kind, {})
        per_kind[reject.cause] = per_kind.get(reject.cause, 0) + 1
    return counts
