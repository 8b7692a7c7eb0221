"""An event's publish built from the changed clients' part of the current generation (their rows,
the indexes, items, catalogue, mapping, shared names, each rule's targets) gives readers exactly
what a rebuild from the whole current generation gives, and writes only those clients' rows
(HaloPSA and ImmyBot sandboxes, Azurite's tables)."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import UTC, datetime

import pytest

from sandbox.halo_data import generate
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.current import clear_caches
from shared.core.generation import CLIENTS
from shared.halo.client import HaloClient
from shared.halo.client_read import read_client
from shared.runtime.clients import forget_applications
from shared.settings import Settings
from shared.store.generations import (
    read_catalog,
    read_computers,
    read_manifest,
    read_rule_targets,
    read_tenants,
    read_unmapped,
)
from shared.store.matches import read_matches, read_names
from shared.store.repository import Store
from shared.store.sharing import read_index
from shared.sync.event_patch import publish_clients
from shared.sync.event_publish import Base, Published, publish_whole
from shared.sync.event_refresh import fresh_of
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.conftest import azurite_service, immy_settings
from tests.sync.sandbox_runs import HUNTRESS, SENTINELONE, TODAY, answers, put_rules, settings_for

pytestmark = pytest.mark.integration

_prefixes = itertools.count()
# Generated with seed 21 (ImmyBot's with its default seed), several pairs of clients ("Riverbend
# Printing Ltd" and "... LLC") map by name to the two tenants named like them, letter for letter.
SEED = 21


def fresh_store(azurite) -> Store:
    service = azurite_service(azurite)
    store = Store(service, prefix=f"ep{next(_prefixes)}x")
    put_rules(store, HUNTRESS, SENTINELONE)
    return store


@pytest.fixture
def world(halo_sandbox, azurite):
    """Two stores synced alike from the same sandboxes: (HaloPSA sandbox, settings, stores)."""
    data = generate(300, seed=SEED, today=TODAY)
    forget_applications()
    immy_data = immy_data_for(data)
    immy_data.provider_clients = []  # no ImmyBot link: clients map by Entra tenant or by name
    immy = ImmyBotSandbox(immy_data).start()
    try:
        sandbox = halo_sandbox(data)
        immy_values = {key.lower(): value for key, value in immy_settings(immy).items()}
        settings = settings_for(sandbox, azurite, sync_max_drop=0.5, **immy_values)
        stores = (fresh_store(azurite), fresh_store(azurite))
        for store in stores:
            report = asyncio.run(run_sync(settings, store=store))
            assert report.outcome is Outcome.SUCCEEDED, report.error
        yield sandbox, settings, stores
    finally:
        immy.stop()
        forget_applications()


def everything(store: Store) -> dict:
    """All a reader of the current generation can see, its id aside."""
    clear_caches()
    generation = store.current().generation  # type: ignore[union-attr]
    seen = answers(store)
    seen.pop("generation")
    manifest, _ = read_manifest(store, generation)
    seen["manifest"] = manifest.model_dump(mode="json", exclude={"generation", "synced_at"})
    seen["unmapped"] = {
        key: [u.model_dump() for u in read_unmapped(store, generation, entry)]
        for key, entry in manifest.rules.items()
    }
    seen["catalog"] = read_catalog(store, generation).model_dump()
    seen["matches"] = {i: m.model_dump() for i, m in read_matches(store, generation).items()}
    seen["names"] = read_names(store, generation)
    seen["tenants"] = [t.model_dump() for t in read_tenants(store, generation)]
    seen["computers"] = [c.model_dump() for c in read_computers(store, generation)]
    return seen


def halo_now(settings: Settings, client_ids: list[int]):
    """What an event's refresh reads of these clients from HaloPSA now."""

    async def go():
        async with HaloClient.from_settings(settings) as halo:
            return [await read_client(halo, c) for c in client_ids]

    return fresh_of(asyncio.run(go()))


def both_ways(settings: Settings, stores: tuple[Store, Store], client_ids: list[int]):
    """The same refresh published from the part (first store) and from the whole (second)."""
    fresh, now = halo_now(settings, client_ids), datetime.now(UTC)
    patched_store, whole_store = stores
    pointer = patched_store.current()
    assert pointer is not None
    patched = publish_clients(settings, patched_store, pointer, fresh, run_id="event-a", now=now)
    base = Base.read(whole_store, whole_store.current())  # type: ignore[arg-type]
    whole = publish_whole(settings, whole_store, base, fresh, run_id="event-b", now=now)
    return patched, whole


def only_contract_targets(store: Store) -> list[int]:
    """Huntress targets with a tenant that one contract alone covers."""
    generation = store.current().generation  # type: ignore[union-attr]
    found = read_rule_targets(store, generation, HUNTRESS.key) or []
    return [t.client_id for t in found if len(t.reasons) == 1 and t.immy_tenant_id is not None]


def paired_by_name(seen: dict) -> tuple[int, int, str]:
    """Two clients mapped by a name two tenants share, paired letter for letter, in what a reader
    sees (`everything`): (one, the other, the other's name)."""
    for named in (seen["names"] or {}).values():
        kinds = [seen["matches"][i]["kind"] for i, _ in named]
        if len(named) == 2 and kinds == ["name", "name"]:
            (one, _), (other, name) = named
            return one, other, name
    raise AssertionError("no pair of clients mapped by a shared name")


def test_a_patched_publish_reads_as_a_whole_rebuild_and_writes_only_the_changed_clients(world):
    sandbox, settings, stores = world
    before = everything(stores[0])
    assert before == everything(stores[1])
    paired, renamed, name = paired_by_name(before)
    cancelled = next(c for c in only_contract_targets(stores[0]) if c not in (paired, renamed))
    data = copy.deepcopy(sandbox.data)
    for contract in data.contracts:
        if int(contract["client_id"]) == cancelled:
            contract["active"] = False
    # Renamed, one client of the pair no longer pairs with a tenant: the other, named alike, is
    # mapped again too (ambiguous now), though HaloPSA sent nothing for it.
    next(c for c in data.clients if int(c["id"]) == renamed)["name"] = f"{name} Holdings"
    sandbox.set_data(data)

    patched, whole = both_ways(settings, stores, [cancelled, renamed])
    assert (patched.outcome, patched.built, whole.outcome) == ("published", "patched", "published")
    seen = everything(stores[0])
    assert seen == everything(stores[1])
    assert seen["matches"][paired]["kind"] == "ambiguous"
    assert renamed not in {i for named in seen["names"].values() for i, _ in named}
    assert patched.changed == sorted([cancelled, renamed])
    assert patched.targets == whole.targets and patched.tenants == whole.tenants
    # Only the changed clients' rows are the new generation's own; the index names the rest.
    generation = patched.generation
    assert generation is not None
    # The partition and its chunks (`clients|<first owner>`) sort before `clients|~`.
    rows = stores[0].read_partitions(generation, CLIENTS, f"{CLIENTS}|~")
    assert sorted({int(str(r["RowKey"])[:10]) for r in rows}) == sorted([cancelled, renamed])
    index = read_index(stores[0], generation, CLIENTS)
    assert index is not None and len(index) == 300

    # And again from the patched generation (a whole rebuild's generation is patchable too).
    data = copy.deepcopy(sandbox.data)
    next(c for c in data.clients if int(c["id"]) == renamed)["name"] = name
    sandbox.set_data(data)
    patched, whole = both_ways(settings, stores, [renamed])
    assert (patched.built, whole.outcome) == ("patched", "published")
    seen = everything(stores[0])
    assert seen == everything(stores[1])
    assert seen["matches"][paired]["kind"] == "name"

    # The next full sync agrees with what the events published.
    report = asyncio.run(run_sync(settings, store=stores[0]))
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert everything(stores[0]) == seen


def test_a_rule_edited_since_the_sync_means_a_whole_rebuild(world):
    sandbox, settings, stores = world
    put_rules(stores[0], HUNTRESS.model_copy(update={"grace_days": 7}))
    data = copy.deepcopy(sandbox.data)
    data.contracts[0]["active"] = False
    sandbox.set_data(data)
    client = int(data.contracts[0]["client_id"])
    fresh, now = halo_now(settings, [client]), datetime.now(UTC)
    published: Published = publish_clients(
        settings,
        stores[0],
        stores[0].current(),
        fresh,
        run_id="event-c",
        now=now,  # type: ignore[arg-type]
    )
    assert published.built == "whole: rules edited since"
    manifest, _ = read_manifest(stores[0], published.generation)  # type: ignore[arg-type]
    assert manifest.rules[HUNTRESS.key].rule.grace_days == 7
