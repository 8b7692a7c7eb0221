"""The tab's Table reads: what serves (pointer, held run, last run) and the generation it reads.

A tab view's Table requests, on its critical path:
1. `SyncState`, one partition query: the pointer and the held generation together.
2. `SyncRuns`, the newest row (beside 1): whether the last run failed.
3. the client's record in the current generation (`shared.store.generations.read_client`).
4. beside 3, its ImmyBot tenant's computers as the sync stored them, with the software ImmyBot's
   inventory showed on each (`read_computers` of one tenant): where the tab's installed and
   missing come from, so a view asks ImmyBot nothing per computer.
5. beside 3 and 4, when a rule is site-scoped, the generation's computer-to-site links
   (`shared.store.site_links`): which computers a site-scoped rule reaches.
1 and 2 are kept for `read_cache.TTL_SECONDS`, 3 and 4 for as long as the generation serves (an
LRU), 5 per generation (its summary checked again after a response once it is TTL_SECONDS old).
3 and 4 are not read at all once the generation's indexes are loaded: the first view of a
generation starts both loads after its response (every client's record and every tenant's stored
computers, one range read per home table each, kept as text: about 3.4 KB per client and a third
of a kilobyte per computer; one over `MAX_INDEX_CHARS` is not kept).
The generation's manifest, item catalogue and client -> tenant matches are the same for every
view of a generation, so they are read once per process and generation (on the first view of it)
and kept; the manifest (which a rule or mapping edit replaces within a generation) is re-read after
the response once it is `read_cache.TTL_SECONDS` old, with the matches when the manifest changed.
What is kept lives in `shared.store.read_cache`.
The computer list itself comes live from ImmyBot (one request); the stored list stands in when
ImmyBot misses the deadline. No write is on the critical path (see `shared.tab.page`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from json import loads

from azure.core.exceptions import ResourceNotFoundError

from shared.core.generation import CLIENTS, IMMY_COMPUTERS, ClientRecord
from shared.core.generation import client_record as documents_record
from shared.core.installed import StoredComputer
from shared.core.site_links import SiteLink
from shared.runtime.background import after_response
from shared.store import read_cache
from shared.store.generations import read_client, read_computers, read_items, read_manifest
from shared.store.matches import read_matches
from shared.store.read_cache import GenerationData, GenerationKey, KeptLinks, ServingState
from shared.store.repository import Store
from shared.store.sharing import owner_texts
from shared.store.site_links import read_site_links, site_links_summary
from shared.store.tab_cache import OwnerIndex, TenantTexts

log = logging.getLogger("halo_immy.tab")
# An index larger than this is not kept (20,000 clients' records are about 68 million
# characters): views of such a generation read each client's record instead.
MAX_INDEX_CHARS = 100_000_000


def _last_outcome(store: Store) -> str | None:
    table = store.table("SyncRuns", create=False)
    try:
        for entity in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "run"}, results_per_page=1, select=["outcome"]
        ):
            outcome = entity.get("outcome")
            return str(outcome) if outcome is not None else None
    except ResourceNotFoundError:
        pass
    return None


async def sync_status(store: Store, clock: Callable[[], float] = time.monotonic) -> ServingState:
    """The pointer, held generation and last run outcome: two requests side by side, kept for
    `read_cache.TTL_SECONDS` (a swap, hold or run record made by this process is seen at once;
    one made elsewhere within the TTL, as for the targets API's pointer)."""
    key, writes, now = store.identity, store.local_writes, clock()
    hit = read_cache.statuses.get(key, writes, now)
    if hit is not None:
        return hit
    (pointer, held), outcome = await asyncio.gather(
        asyncio.to_thread(store.current_and_held), asyncio.to_thread(_last_outcome, store)
    )
    status = ServingState(pointer, held, outcome)
    read_cache.statuses.put(key, writes, now, status)
    return status


async def client_record(store: Store, generation: str, client_id: int) -> ClientRecord | None:
    """One client's records in a generation: from the generation's client index once it is
    loaded (no Table read), until then one range read, kept in an LRU of
    `read_cache.CLIENTS_KEPT`."""
    index = _index(read_cache.client_index, store, generation, CLIENTS)
    if index is not None:
        texts = index.get(client_id)
        return documents_record([loads(t) for t in texts]) if texts else None
    key = (store.identity, generation, client_id)
    kept, record = read_cache.client_records.get(key)
    if kept:
        return record
    record = await asyncio.to_thread(read_client, store, generation, client_id)
    read_cache.client_records.put(key, record)
    return record


async def tenant_computers(store: Store, generation: str, tenant_id: int) -> list[StoredComputer]:
    """One ImmyBot tenant's computers as the sync stored them, with the software its inventory
    search found on each: from the generation's computer index once it is loaded, until then one
    range read, kept in an LRU as client records are."""
    index = _index(read_cache.computer_index, store, generation, IMMY_COMPUTERS)
    if index is not None:
        return [
            StoredComputer.model_validate(x) for t in index.get(tenant_id, ()) for x in loads(t)
        ]
    key = (store.identity, generation, tenant_id)
    kept, computers = read_cache.tenant_computers.get(key)
    if kept and computers is not None:
        return computers
    computers = await asyncio.to_thread(read_computers, store, generation, tenant_id)
    read_cache.tenant_computers.put(key, computers)
    return computers


def _index(index: OwnerIndex, store: Store, generation: str, partition: str) -> TenantTexts | None:
    """The generation's texts of `partition` by owner, once loaded; the first caller for a
    generation starts the load, after its response."""
    texts, load = index.get((store.identity, generation))
    if load:
        after_response.submit(
            f"{partition} index", lambda: _load_index(index, store, generation, partition)
        )
    return texts


def _load_index(index: OwnerIndex, store: Store, generation: str, partition: str) -> None:
    key = (store.identity, generation)
    texts = None
    try:
        texts = owner_texts(store, generation, partition)
    finally:
        if texts is not None and sum(len(t) for x in texts.values() for t in x) > MAX_INDEX_CHARS:
            # Every instance would keep it in memory: past the bound, views read per owner.
            log.warning("%s index of %s not kept: too large", partition, generation)
            index.refuse(key)
        else:
            index.put(key, texts)


async def site_links(store: Store, generation: str) -> Mapping[int, SiteLink] | None:
    """The generation's computer-to-site links by computer id (None: it has none), for a
    site-scoped rule's numbers and cells. Asset population writes them after the generation
    became current, so what is kept is checked again after the response once it is
    `read_cache.TTL_SECONDS` old: one small read of their summary, the links themselves only when
    another asset run wrote them."""
    key = (store.identity, generation)
    kept, entry = read_cache.site_links.get(key)
    if kept and entry is not None:
        read_at, run_id, links = entry
        if time.monotonic() - read_at > read_cache.TTL_SECONDS:
            read_cache.site_links.put(key, (time.monotonic(), run_id, links))  # one check at once
            after_response.submit(
                "site links", lambda: _check_links(store, generation, key, run_id)
            )
        return links
    entry = await asyncio.to_thread(_read_links, store, generation)
    read_cache.site_links.put(key, entry)
    return entry[2]


def _read_links(store: Store, generation: str) -> KeptLinks:
    found = read_site_links(store, generation)
    if found is None:
        return time.monotonic(), None, None
    return time.monotonic(), found[0].run_id, found[1]


def _check_links(store: Store, generation: str, key: GenerationKey, run_id: str | None) -> None:
    summary = site_links_summary(store, generation)
    if (summary.run_id if summary is not None else None) != run_id:
        read_cache.site_links.put(key, _read_links(store, generation))


def _load(store: Store, generation: str, previous: GenerationData | None) -> GenerationData:
    manifest, version = read_manifest(store, generation)
    items = (
        previous.items if previous is not None else {i.id: i for i in read_items(store, generation)}
    )
    if previous is not None and previous.version == version:
        matches = previous.matches
    elif manifest.immybot.configured:
        matches = read_matches(store, generation)
    else:
        matches = {}
    return GenerationData(manifest, version, items, matches, time.monotonic())


def _refresh(store: Store, generation: str, key: GenerationKey) -> None:
    fresh: GenerationData | None = None
    try:
        fresh = _load(store, generation, read_cache.generations.previous(key))
    finally:
        read_cache.generations.refreshed(key, fresh)


async def generation_data(store: Store, generation: str) -> GenerationData:
    """The generation's manifest, items and matches: read on its first view in this process, then
    kept; a manifest older than the TTL is re-read after the response, not before it."""
    key = (store.identity, generation)
    hit, stale = read_cache.generations.get(key, time.monotonic())
    if hit is None:
        loaded = await asyncio.to_thread(_load, store, generation, None)
        read_cache.generations.replace(key, loaded)
        return loaded
    if stale:
        after_response.submit("manifest refresh", lambda: _refresh(store, generation, key))
    return hit
