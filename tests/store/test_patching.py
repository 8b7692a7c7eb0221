"""What an event's publish reads of the current generation (shared.store.patching) and the shared
names a generation keeps (shared.store.matches), against real Azurite."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from shared.core.generation import CLIENTS, IMMY_NAMES, ITEMS, ImmyState, Manifest, rule_entry
from shared.core.mapping import ExplicitMapping, map_clients
from shared.core.rules import Rule
from shared.core.targets import Snapshot, resolve
from shared.records.halo import Client, Contract, Item
from shared.records.immybot import ImmyTenant
from shared.store.generations import layout
from shared.store.matches import names_entities, read_names
from shared.store.patching import patched_shared, read_base_part, read_old_clients
from shared.store.repository import Store
from shared.store.sharing import chunk_partition, index_partition, read_index, share_unchanged
from tests.conftest import azurite_service

_names = itertools.count()
TODAY = date(2026, 12, 6)
RULE = Rule(software="Huntress", contract_types=["Managed Security"])


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"pt{next(_names)}x")


def test_shared_names_round_trip_and_a_generation_without_them_says_so(store):
    names = {"blue dental": [(9, "Blue Dental Ltd"), (10, "Blue Dental LLC")]}
    store.write_generation("g1", {IMMY_NAMES: names_entities(names)})
    assert read_names(store, "g1") == names
    store.write_generation("g2", {IMMY_NAMES: names_entities({})})
    assert read_names(store, "g2") == {}  # no name shared: told from "not kept"
    store.write_generation("g3", {ITEMS: []})
    assert read_names(store, "g3") is None


def written(store: Store, generation: str, snapshot: Snapshot, previous: str | None) -> Manifest:
    """`snapshot` laid out and written as a sync writes it."""
    targets = {RULE.key: resolve(snapshot, RULE, TODAY)}
    manifest = Manifest(
        generation=generation,
        synced_at=datetime(2026, 12, 6, tzinfo=UTC),
        today=TODAY,
        read={"clients": len(snapshot.clients)},
        rules={RULE.key: rule_entry(RULE, targets[RULE.key], TODAY, snapshot)},
        immybot=ImmyState(configured=True, tenants=len(snapshot.tenants)),
    )
    planned = layout(snapshot, targets, manifest)
    shared = share_unchanged(store, generation, planned.partitions, previous)
    store.write_generation(generation, shared.partitions)
    return manifest


def test_the_part_an_event_reads_and_what_it_writes(store):
    clients = [Client(id=n, name=f"Client {n}") for n in range(1, 6)]
    tenants = [ImmyTenant(id=n, name=f"Client {n}") for n in range(1, 6)]
    contracts = [Contract(id=n, client_id=n, contracttype_name="Managed Security") for n in (1, 2)]
    snapshot = Snapshot.build(clients, [], contracts, [], [Item(id=1, name="Thing")])
    explicit: dict[int, ExplicitMapping] = {}
    snapshot = snapshot.with_immybot(tenants, map_clients(clients, tenants, explicit))
    manifest = written(store, "g1", snapshot, None)

    part = read_base_part(store, "g1", manifest)
    assert part is not None
    assert sorted(part.clients_index) == [1, 2, 3, 4, 5]
    assert [t.client_id for t in part.targets[RULE.key]] == [1, 2]
    assert [i.name for i in part.items] == ["Thing"] and len(part.matches) == 5
    assert part.names == {} and part.catalog is None and part.tenants == tenants
    old = read_old_clients(store, "g1", [2, 99])
    assert old[2] is not None and old[2].contracts == [contracts[1]] and old[99] is None

    # The new generation holds only client 2's rows; the index names g1 for the others.
    rows = [{"RowKey": "0000000002", "d": '{"client":{"id":2,"name":"Client 2"}}'}]
    partitions = patched_shared(store, "g2", part, rows)
    assert partitions[chunk_partition(CLIENTS, 2)] == rows and CLIENTS not in partitions
    assert partitions[ITEMS] == part.copied[ITEMS]
    store.write_generation("g2", partitions)
    index = read_index(store, "g2", CLIENTS)
    assert index is not None
    assert {o: e.home for o, e in index.items()} == {1: "g1", 2: "g2", 3: "g1", 4: "g1", 5: "g1"}
    assert index[2].rows == chunk_partition(CLIENTS, 2)
    assert read_old_clients(store, "g2", [2])[2].contracts == []  # type: ignore[union-attr]
    assert store.read_partition("g2", index_partition(CLIENTS))


def test_a_generation_written_before_indexes_cannot_be_patched(store):
    snapshot = Snapshot.build([Client(id=1, name="A")], [], [], [], [])
    manifest = written(store, "g1", snapshot, None)
    store.delete_partition("g1", index_partition(CLIENTS))
    assert read_base_part(store, "g1", manifest) is None
