"""Steady-state syncs write only what changed: generations share unchanged clients' rows, and
every reader, rollback, retention and an approved hold see exactly what a full rewrite gives."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from sandbox.halo_data import HaloDataSet, generate
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.current import clear_caches
from shared.core.generation import CLIENTS
from shared.halo.client import HaloClient
from shared.runtime.clients import forget_applications
from shared.settings import Settings
from shared.store import read_cache
from shared.store.generations import read_client, read_computers, read_snapshot
from shared.store.repository import Store
from shared.store.sharing import read_index
from shared.sync.retention import approve_held, collect_garbage
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from shared.tab.snapshot import client_record
from tests.conftest import azurite_service, immy_settings
from tests.sync.sandbox_runs import HUNTRESS, SENTINELONE, TODAY, answers, put_rules, settings_for

pytestmark = pytest.mark.integration

_prefixes = itertools.count()
CLIENT_COUNT = 300


def fresh_store(azurite) -> Store:
    service = azurite_service(azurite)
    store = Store(service, prefix=f"sh{next(_prefixes)}x")
    put_rules(store, HUNTRESS, SENTINELONE)
    return store


def sync(settings: Settings, store: Store) -> SyncReport:
    async def go() -> SyncReport:
        async with HaloClient.from_settings(settings) as halo:
            return await run_sync(settings, store=store, halo=halo)

    report = asyncio.run(go())
    assert report.outcome in (Outcome.SUCCEEDED, Outcome.HELD), report.error
    return report


def renamed(data: HaloDataSet, every: int) -> tuple[HaloDataSet, list[int]]:
    """A copy with every `every`th client renamed (its stored record changes), and their ids."""
    changed = data.copy()
    ids = []
    for position, client in enumerate(changed.clients):
        if position % every == 0:
            client["name"] = f"{client['name']} (renamed)"
            ids.append(int(client["id"]))
    return changed, ids


def full_rewrite(azurite, halo_sandbox, data: HaloDataSet) -> dict:
    """What a reader sees after one sync of `data` into an empty store (nothing to share)."""
    sandbox = halo_sandbox(data)
    store = fresh_store(azurite)
    sync(settings_for(sandbox, azurite), store)
    seen = answers(store)
    seen.pop("generation")
    return seen


def seen_now(store: Store) -> dict:
    seen = answers(store)
    seen.pop("generation")
    return seen


def test_unchanged_and_one_percent_changed_syncs_write_little_and_read_as_a_full_rewrite(
    halo_sandbox, azurite
):
    data = generate(CLIENT_COUNT, seed=11, today=TODAY)
    sandbox = halo_sandbox(data)
    settings = settings_for(sandbox, azurite)
    store = fresh_store(azurite)

    first = sync(settings, store)
    assert first.entities_shared == 0
    unchanged = sync(settings, store)
    # Every client shared: the rest is the items, manifest, catalogue, targets and the index.
    assert unchanged.entities_shared == CLIENT_COUNT
    assert unchanged.entities_written < 0.05 * first.entities_written
    assert seen_now(store) == full_rewrite(azurite, halo_sandbox, data)

    changed_data, changed_ids = renamed(data, 100)  # 3 of 300 clients: 1%
    sandbox.set_data(changed_data)
    changed = sync(settings, store)
    assert changed.entities_shared == CLIENT_COUNT - len(changed_ids)
    assert changed.entities_written < 0.10 * first.entities_written
    expected = full_rewrite(azurite, halo_sandbox, changed_data)
    assert seen_now(store) == expected

    # The tab's one-client read and the API's whole snapshot, through the shared rows.
    generation = store.current().generation
    index = read_index(store, generation, CLIENTS)
    assert {entry.home for entry in index.values()} == {first.generation, changed.generation}
    by_id = {c["id"]: c for c in expected["clients"]}
    for client_id in [*changed_ids, int(data.clients[1]["id"]), int(data.clients[-1]["id"])]:
        read_cache.forget_tab()
        record = asyncio.run(client_record(store, generation, client_id))
        assert record is not None and record.client.model_dump(mode="json") == by_id[client_id]
        assert read_client(store, generation, client_id) == record
    assert read_client(store, generation, 10**9) is None
    snapshot = read_snapshot(store, generation)
    assert sorted(snapshot.clients) == sorted(by_id)
    assert {c.id: c.name for c in snapshot.clients.values()}[changed_ids[0]].endswith("(renamed)")


def test_retention_keeps_every_generation_rows_are_shared_from_and_rollback_reads_whole(
    halo_sandbox, azurite
):
    data = generate(CLIENT_COUNT, seed=12, today=TODAY)
    sandbox = halo_sandbox(data)
    settings = settings_for(sandbox, azurite)
    store = fresh_store(azurite)

    first = sync(settings, store)
    before = seen_now(store)
    sync(settings, store)
    changed_data, _ = renamed(data, 100)
    sandbox.set_data(changed_data)
    second = sync(settings, store)
    third = sync(settings, store)
    # Current (third) and previous (second) are kept, and the first: it holds the rows of the
    # 297 clients that never changed, which both share. The unchanged sync between is dropped.
    collect_garbage(store)
    assert store.generations() == sorted([first.generation, second.generation, third.generation])
    after = seen_now(store)

    # Rollback: the previous generation serves again, whole, from the rows it shares.
    pointer = store.current()
    store.swap(pointer.previous, run_id="rollback", synced_at=pointer.synced_at, expected=pointer)
    clear_caches()
    assert seen_now(store) == after  # second and third hold the same data
    sandbox.set_data(data)
    fourth = sync(settings, store)  # back to the first data: the renamed clients change again
    assert fourth.entities_shared == CLIENT_COUNT - 3
    assert seen_now(store) == before


def test_a_held_generation_that_shares_rows_is_approved_and_serves_its_own_data(
    halo_sandbox, azurite
):
    data = generate(CLIENT_COUNT, seed=13, today=TODAY)
    sandbox = halo_sandbox(data)
    settings = settings_for(sandbox, azurite)
    store = fresh_store(azurite)
    first = sync(settings, store)

    # Most Managed Security contracts switched off: Huntress loses most targets, so it is held.
    dropped = data.copy()
    for position, contract in enumerate(dropped.contracts):
        if contract.get("contracttype_name") == "Managed Security" and position % 5:
            contract["active"] = False
    sandbox.set_data(dropped)
    held = sync(settings, store)
    assert held.outcome is Outcome.HELD
    assert 0 < held.entities_shared < CLIENT_COUNT  # the clients whose contracts did not change
    collect_garbage(store)
    assert store.current().generation == first.generation

    approve_held(store)
    clear_caches()
    assert store.current().generation == held.generation
    assert seen_now(store) == full_rewrite(azurite, halo_sandbox, dropped)
    assert first.generation in store.generations()  # previous, and home of the unchanged


def test_each_tenants_computers_are_shared_and_read_back_whole(halo_sandbox, azurite):
    data = generate(CLIENT_COUNT, seed=14, today=TODAY)
    forget_applications()
    immy = ImmyBotSandbox(immy_data_for(data)).start()
    try:
        sandbox = halo_sandbox(data)
        immy_values = {key.lower(): value for key, value in immy_settings(immy).items()}
        settings = settings_for(sandbox, azurite, **immy_values)
        store = fresh_store(azurite)
        first = sync(settings, store)
        computers = read_computers(store, first.generation)
        assert computers and first.immybot["computers"] == len(computers)
        second = sync(settings, store)
        assert second.entities_written < 0.05 * first.entities_written
        assert read_computers(store, second.generation) == computers
        tenant = computers[-1].tenant_id
        read_cache.forget_tab()
        one = read_computers(store, second.generation, tenant)
        assert one == [c for c in computers if c.tenant_id == tenant]
    finally:
        immy.stop()
        forget_applications()
