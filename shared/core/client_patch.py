"""A snapshot with some clients' records replaced by what HaloPSA holds now (an event's refresh).

Pure: the refresh (shared.sync.event_publish) reads the current generation and the clients from
HaloPSA; this says whether anything changed and builds the new snapshot, in which every other
client's records are exactly the current ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from shared.core.generation import ClientRecord
from shared.core.rules import normalise
from shared.core.targets import Snapshot, Target
from shared.records.halo import Contract, Item, RecurringInvoice, Site

R = TypeVar("R", Site, Contract, RecurringInvoice)

# Record types a refresh counts as the sync does (shared.sync.read), but items: a refresh reads no
# items, so their count is the current generation's.
PATCHED_KINDS = ("clients", "sites", "contracts", "invoices", "invoice_lines")


def records_of(snapshot: Snapshot, client_id: int) -> ClientRecord | None:
    """One client's records in a snapshot, or None if it does not hold the client."""
    client = snapshot.clients.get(client_id)
    if client is None:
        return None
    return ClientRecord(
        client=client,
        sites=list(snapshot.sites_by_client.get(client_id, ())),
        contracts=[c for c in snapshot.contracts if c.client_id == client_id],
        invoices=[i for i in snapshot.invoices if i.client_id == client_id],
    )


def same_records(old: ClientRecord | None, new: ClientRecord) -> bool:
    """Whether a client's records are unchanged (order aside)."""
    if old is None:
        return False

    def by_id(records: Iterable[Site | Contract | RecurringInvoice]) -> list[str]:
        return sorted(r.model_dump_json() for r in records)

    return (
        old.client == new.client
        and by_id(old.sites) == by_id(new.sites)
        and by_id(old.contracts) == by_id(new.contracts)
        and by_id(old.invoices) == by_id(new.invoices)
    )


def replace_clients(snapshot: Snapshot, fresh: Sequence[ClientRecord]) -> Snapshot:
    """`snapshot` with each client in `fresh` (and every record it now holds, should a contract
    have moved to it from another client) replaced; ImmyBot's part is left for the caller to map
    again. Every other client's records are the snapshot's own."""
    replaced = {f.client.id for f in fresh}

    def kept(records: Iterable[R], fresh_records: Iterable[R]) -> list[R]:
        fresh_list = list(fresh_records)
        ids = {r.id for r in fresh_list}
        old = [r for r in records if r.client_id not in replaced and r.id not in ids]
        return old + fresh_list

    return Snapshot.build(
        {**snapshot.clients, **{f.client.id: f.client for f in fresh}}.values(),
        kept(snapshot.sites.values(), (s for f in fresh for s in f.sites)),
        kept(snapshot.contracts, (c for f in fresh for c in f.contracts)),
        kept(snapshot.invoices, (i for f in fresh for i in f.invoices)),
        snapshot.items.values(),
    )


def patched_read(
    read: Mapping[str, int], old: Iterable[ClientRecord | None], new: Mapping[str, int]
) -> dict[str, int]:
    """The generation's records-read counts after a refresh: the current counts less what the
    refreshed clients held, plus what the refresh read of them (`new`, rejects included)."""
    out = dict(read)
    for record in old:
        if record is None:
            continue
        held = _counts(record)
        for kind in PATCHED_KINDS:
            out[kind] = max(0, out.get(kind, 0) - held[kind])
    for kind in PATCHED_KINDS:
        out[kind] = out.get(kind, 0) + new.get(kind, 0)
    return out


def _counts(record: ClientRecord) -> dict[str, int]:
    return {
        "clients": 1,
        "sites": len(record.sites),
        "contracts": len(record.contracts),
        "invoices": len(record.invoices),
        "invoice_lines": sum(len(i.lines) for i in record.invoices),
    }


def snapshot_of(records: Iterable[ClientRecord], items: Iterable[Item]) -> Snapshot:
    """A snapshot holding only these clients' records (and the items their lines name)."""
    found = list(records)
    return Snapshot.build(
        (r.client for r in found),
        (s for r in found for s in r.sites),
        (c for r in found for c in r.contracts),
        (i for r in found for i in r.invoices),
        items,
    )


def patch_targets(
    old: Sequence[Target], fresh: Iterable[Target], clients: set[int]
) -> list[Target]:
    """A rule's targets with those of `clients` replaced by `fresh` (their targets now), in the
    order `resolve` gives: by client name, then id."""
    kept = [t for t in old if t.client_id not in clients]
    return sorted([*kept, *fresh], key=lambda t: (normalise(t.client_name), t.client_id))
