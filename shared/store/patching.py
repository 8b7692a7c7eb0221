"""A generation written from the current one with a few clients changed (an event's publish).

What the new generation's table must hold for readers is what a sync lays out
(shared.store.generations). Reading all of it back to change one client costs a read of every
client and every computer; so an event reads only what does not grow with the clients' records
(`BasePart`: the manifest, the shared partitions' indexes, the items, the catalogue, ImmyBot's
tenants, matches and shared names, each rule's targets), and the new generation is written as:
- `clients`: only the changed clients' rows, and an index naming, for every other client, the
  home the current generation's index names (shared.store.sharing); likewise the computers'
  index, unchanged;
- items, ImmyBot's tenants: copied row for row;
- matches, shared names, targets, unmapped (from the targets and matches), meta: laid out again.
A current generation without indexes (written before they existed) cannot be patched: `None`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.core.catalog import Catalog
from shared.core.generation import (
    CLIENTS,
    IMMY_COMPUTERS,
    IMMY_TENANTS,
    ITEMS,
    ClientRecord,
    Manifest,
)
from shared.core.mapping import TenantMatch
from shared.core.targets import Target
from shared.records.halo import Item
from shared.records.immybot import ImmyTenant
from shared.store.base import StoreError
from shared.store.generations import (
    read_catalog,
    read_client,
    read_items,
    read_targets,
    read_tenants,
)
from shared.store.matches import Names, read_matches, read_names
from shared.store.repository import Store
from shared.store.sharing import (
    Index,
    by_owner,
    chunked,
    index_entities,
    index_partition,
    owners_rows,
    patch_index,
    read_index,
)

Rows = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class BasePart:
    """What an event's publish reads of the current generation (nothing per client record)."""

    generation: str
    manifest: Manifest
    clients_index: Index
    computers_index: Index | None
    items: list[Item]
    copied: dict[str, Rows]  # partitions copied as they are (items, ImmyBot's tenants)
    catalog: Catalog | None
    tenants: list[ImmyTenant]
    matches: dict[int, TenantMatch]
    names: Names | None  # names several tenants share, and their clients (None: not stored)
    targets: dict[str, list[Target]]  # by rule key


def read_old_clients(
    store: Store, generation: str, client_ids: Sequence[int]
) -> dict[int, ClientRecord | None]:
    """These clients' records as of `generation` (one small range read each)."""
    return {c: read_client(store, generation, c) for c in client_ids}


def read_base_part(store: Store, generation: str, manifest: Manifest) -> BasePart | None:
    """What `BasePart` holds of `generation`; None when it has no clients index (or ImmyBot's
    computers without one): its own table holds everything, and only a whole read will do."""
    clients_index = read_index(store, generation, CLIENTS)
    immybot = manifest.immybot.configured
    computers_index = read_index(store, generation, IMMY_COMPUTERS) if immybot else None
    if clients_index is None or (
        immybot and computers_index is None and manifest.immybot.computers
    ):
        return None
    copied = {ITEMS: _rows(store, generation, ITEMS)}
    if immybot:
        copied[IMMY_TENANTS] = _rows(store, generation, IMMY_TENANTS)
    try:
        catalog: Catalog | None = read_catalog(store, generation)
    except StoreError:
        catalog = None  # written without one: the new generation has none either
    entries = manifest.rules
    return BasePart(
        generation=generation,
        manifest=manifest,
        clients_index=clients_index,
        computers_index=computers_index,
        items=read_items(store, generation),
        copied=copied,
        catalog=catalog,
        tenants=read_tenants(store, generation) if immybot else [],
        matches=read_matches(store, generation) if immybot else {},
        names=read_names(store, generation) if immybot else None,
        targets={k: read_targets(store, generation, e.partition) for k, e in entries.items()},
    )


def _rows(store: Store, generation: str, partition: str) -> Rows:
    """A partition's rows as they are written (RowKey and properties, no PartitionKey)."""
    return [
        {k: v for k, v in row.items() if k != "PartitionKey"}
        for row in store.read_partition(generation, partition)
    ]


def patched_shared(
    store: Store, generation: str, part: BasePart, client_rows: Rows
) -> dict[str, Rows]:
    """The shared partitions of the new `generation`: the changed clients' rows (and the rows of
    owners whose home is dropped to keep homes bounded), both indexes, and the copied
    partitions."""
    out = dict(part.copied)
    written = by_owner(client_rows)
    index = patch_index(part.clients_index, written, generation)
    moved = {o for o, entry in index.items() if entry.home == generation} - set(written)
    groups = {**by_owner(owners_rows(store, part.clients_index, CLIENTS, moved)), **written}
    out |= chunked(CLIENTS, groups, index, generation)
    out[index_partition(CLIENTS)] = index_entities(index, CLIENTS)
    if part.computers_index is not None:
        computers = index_entities(part.computers_index, IMMY_COMPUTERS)
        out[index_partition(IMMY_COMPUTERS)] = computers
    return out
