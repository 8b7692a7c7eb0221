"""ImmyBot's part of a sync run: its tenants, computers and HaloPSA links, merged into the snapshot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.core.generation import ImmyState
from shared.core.mapping import ExplicitMapping, links_of, map_clients
from shared.core.targets import Snapshot
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.immybot.links import HaloLinks, read_halo_links
from shared.records.immybot import ImmyComputer, ImmyTenant
from shared.store.generations import read_computers, read_manifest, read_tenants
from shared.store.matches import read_matches
from shared.store.repository import Store


@dataclass(frozen=True, slots=True)
class ImmyRead:
    tenants: list[ImmyTenant] | None
    computers: list[ImmyComputer]
    error: ImmyError | None
    links: HaloLinks = field(default_factory=HaloLinks)


async def read_immybot(immy: ImmyClient, link_id: int | None) -> ImmyRead:
    try:
        tenants, computers, links = await asyncio.gather(
            immy.tenants(), immy.computers(), read_halo_links(immy, link_id)
        )
    except ImmyError as error:
        return ImmyRead(None, [], error)
    return ImmyRead(tenants, computers, None, links)


def with_immybot(
    store: Store, snapshot: Snapshot, read: ImmyRead | None
) -> tuple[Snapshot, list[ImmyComputer], ImmyState]:
    """The snapshot with ImmyBot's tenants and the client mapping, and ImmyBot's computers.

    If ImmyBot is down, its tenants and computers are carried over from the current generation,
    so an ImmyBot outage does not hold back HaloPSA's billing changes; with nothing to carry over
    the run fails (all targets unmapped would read as "deploy nowhere").
    """
    if read is None:
        return snapshot, [], ImmyState()
    tenants, computers, note, links = read.tenants, read.computers, None, read.links.links
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
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    matches = map_clients(snapshot.clients.values(), tenants, explicit, links)
    state = ImmyState(
        configured=True,
        tenants=len(tenants),
        computers=len(computers),
        note=note,
        halo_link=read.links.note,
    )
    return snapshot.with_immybot(tenants, matches), computers, state
