"""ImmyBot's part of a sync run: its tenants, computers, HaloPSA links and inventory, merged into
the snapshot.

The inventory is read in bulk: one `all-inventory-software/search-by-name` request per search text
of the rules' detect patterns (`shared.core.installed.search_plan`), never one per computer, and
stored on the computers, so the reconciliation, the tags API and the tab count installed software
without calling ImmyBot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.core.generation import ImmyState
from shared.core.installed import InventoryState, StoredComputer, with_software
from shared.core.mapping import ExplicitMapping, links_of, map_clients
from shared.core.targets import Snapshot
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.immybot.links import HaloLinks, read_halo_links
from shared.records.immybot import ImmyTenant, InventoryRow
from shared.store.generations import read_computers, read_manifest, read_tenants
from shared.store.matches import read_matches
from shared.store.repository import Store


@dataclass(frozen=True, slots=True)
class ImmyRead:
    """What one run read of ImmyBot (tenants None: ImmyBot could not be read, see `error`)."""

    tenants: list[ImmyTenant] | None
    computers: list[StoredComputer]
    error: ImmyError | None
    links: HaloLinks = field(default_factory=HaloLinks)
    inventory: InventoryState | None = None


async def read_immybot(
    immy: ImmyClient, link_id: int | None, plan: Mapping[str, Sequence[str]] | None = None
) -> ImmyRead:
    """Tenants, computers, HaloPSA links and the inventory searches of `plan` (search text ->
    its detect patterns), side by side. A failed search costs only the rules that need it."""
    wanted = plan or {}
    try:
        tenants, computers, links, (found, inventory) = await asyncio.gather(
            immy.tenants(),
            immy.computers(),
            read_halo_links(immy, link_id),
            search_inventory(immy, wanted),
        )
    except ImmyError as error:
        return ImmyRead(None, [], error)
    stored = with_software(computers, found, wanted)
    kept = inventory.model_copy(update={"rows": sum(len(c.software) for c in stored)})
    return ImmyRead(tenants, stored, None, links, kept)


async def search_inventory(
    immy: ImmyClient, plan: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[InventoryRow]], InventoryState]:
    """One inventory search per text, side by side: the rows of each that answered, and which
    texts were read or failed (with why). Never raises ImmyError."""
    texts = list(plan)
    answers = await asyncio.gather(
        *(immy.inventory_search(text) for text in texts), return_exceptions=True
    )
    found: dict[str, list[InventoryRow]] = {}
    failed: dict[str, str] = {}
    for text, answer in zip(texts, answers, strict=True):
        if isinstance(answer, ImmyError):
            failed[text] = str(answer)[:300]
        elif isinstance(answer, BaseException):
            raise answer
        else:
            found[text] = answer
    return found, InventoryState(searched=sorted(found), failed=failed)


def with_immybot(
    store: Store, snapshot: Snapshot, read: ImmyRead | None
) -> tuple[Snapshot, list[StoredComputer], ImmyState]:
    """The snapshot with ImmyBot's tenants and the client mapping, and ImmyBot's computers.

    If ImmyBot is down, its tenants and computers (with their inventory) are carried over from
    the current generation, so an ImmyBot outage does not hold back HaloPSA's billing changes;
    with nothing to carry over the run fails (all targets unmapped would read as "deploy
    nowhere").
    """
    if read is None:
        return snapshot, [], ImmyState()
    tenants, computers, note, links = read.tenants, read.computers, None, read.links.links
    inventory = read.inventory
    if tenants is None:
        pointer = store.current()
        previous = read_manifest(store, pointer.generation)[0] if pointer else None
        if pointer is None or previous is None or not previous.immybot.configured:
            raise read.error or ImmyError("ImmyBot could not be read")
        tenants = read_tenants(store, pointer.generation)
        computers = read_computers(store, pointer.generation)
        links = links_of(read_matches(store, pointer.generation).values())
        note = (
            f"ImmyBot unavailable ({read.error}); "
            f"tenants and computers from generation {pointer.generation}"
        )
        carried = previous.immybot.inventory
        inventory = (
            carried.model_copy(update={"note": f"from generation {pointer.generation}"})
            if carried is not None
            else None
        )
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    matches = map_clients(snapshot.clients.values(), tenants, explicit, links)
    state = ImmyState(
        configured=True,
        tenants=len(tenants),
        computers=len(computers),
        note=note,
        halo_link=read.links.note,
        inventory=inventory,
    )
    return snapshot.with_immybot(tenants, matches), computers, state
