"""Shared rows between generations (shared.store.sharing) against real Azurite: what is written,
where readers find it, the bound on homes, and what retention must keep."""

from __future__ import annotations

import itertools
import json

import pytest

from shared.core.generation import CLIENTS
from shared.store import read_cache
from shared.store.base import encode_data
from shared.store.repository import Store
from shared.store.sharing import (
    CHUNK_ROWS,
    MAX_HOMES,
    all_rows,
    by_owner,
    content_hash,
    in_use,
    index_partition,
    owner_rows,
    read_index,
    share_unchanged,
)
from tests.conftest import azurite_service

_names = itertools.count()


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"sh{next(_names)}x")


def rows(values: dict[int, str]) -> list[dict]:
    """One client document per owner; owner 7 spills into two rows."""
    out = []
    for owner, value in values.items():
        out.append({"RowKey": f"{owner:010d}-000", **encode_data(json.dumps({"v": value}))})
        if owner == 7:
            out.append({"RowKey": f"{owner:010d}-001", **encode_data(json.dumps({"more": 1}))})
    return out


def write(store: Store, generation: str, values: dict[int, str], previous: str | None) -> int:
    planned = share_unchanged(store, generation, {CLIENTS: rows(values), "meta": []}, previous)
    store.write_generation(generation, planned.partitions)
    return sum(len(v) for k, v in planned.partitions.items() if k.startswith(f"{CLIENTS}|"))


def seen(store: Store, generation: str, owner: int) -> list[str]:
    return [str(e["d"]) for e in owner_rows(store, generation, CLIENTS, owner)]


def test_only_changed_owners_are_written_and_each_is_read_from_its_home(store):
    values = {1: "a", 2: "b", 7: "c"}
    assert write(store, "g1", values, None) == 4  # owner 7 has two rows
    assert write(store, "g2", values, "g1") == 0
    assert write(store, "g3", {**values, 2: "B", 9: "new"}, "g2") == 2
    assert {o: entry.home for o, entry in read_index(store, "g3", CLIENTS).items()} == {
        1: "g1",
        2: "g3",
        7: "g1",
        9: "g3",
    }
    read_cache.index_buckets.clear()
    assert seen(store, "g3", 2) == ['{"v": "B"}'] and seen(store, "g2", 2) == ['{"v": "b"}']
    assert len(seen(store, "g3", 7)) == 2
    assert seen(store, "g3", 5) == []  # not in the generation
    everything = [(str(e["RowKey"]), str(e["d"])) for e in all_rows(store, "g3", CLIENTS)]
    assert [key[:10] for key, _ in everything] == [f"{o:010d}" for o in (1, 2, 7, 7, 9)]
    assert ("0000000002-000", '{"v": "b"}') not in everything  # g1's old row is not served
    # A removed owner is gone from the next generation, though its home still holds its rows.
    write(store, "g4", {1: "a", 7: "c"}, "g3")
    assert seen(store, "g4", 9) == []


def test_a_generation_without_an_index_is_read_from_its_own_table_and_shares_nothing(store):
    store.write_generation("old", {CLIENTS: rows({1: "a", 2: "b"})})  # written before indexes
    assert read_index(store, "old", CLIENTS) is None
    assert seen(store, "old", 2) == ['{"v": "b"}']
    assert len(all_rows(store, "old", CLIENTS)) == 2
    assert write(store, "new", {1: "a", 2: "b"}, "old") == 2  # nothing to compare with
    assert store.read_partition("new", index_partition(CLIENTS))


def test_homes_are_bounded_and_retention_keeps_every_home_in_use(store):
    owners = {n: "x" for n in range(1, 11)}
    write(store, "g00", owners, None)
    previous = "g00"
    # Each generation changes one more owner: without a bound, each would be a home for ever.
    for n in range(1, MAX_HOMES + 3):
        owners = {**owners, n: f"v{n}"}
        generation = f"g{n:02d}"
        write(store, generation, owners, previous)
        homes = {entry.home for entry in read_index(store, generation, CLIENTS).values()}
        assert len(homes - {generation}) <= MAX_HOMES
        previous = generation
    kept = in_use(store, [previous])
    assert "g00" in kept  # still home of the owners that never changed
    assert previous in kept and len(kept) <= MAX_HOMES + 1
    for owner, value in owners.items():
        assert seen(store, previous, owner)[0] == json.dumps({"v": value})


def test_a_patched_index_keeps_homes_bounded_and_the_dropped_homes_rows_are_read_to_rewrite(store):
    from shared.store.sharing import owners_rows, patch_index

    owners = {n: "x" for n in range(1, 11)}
    write(store, "g00", owners, None)
    previous = "g00"
    for n in range(1, MAX_HOMES + 1):  # each of g01.. is the home of one changed owner
        owners = {**owners, n: f"v{n}"}
        write(store, f"g{n:02d}", owners, previous)
        previous = f"g{n:02d}"
    index = read_index(store, previous, CLIENTS)
    assert index is not None
    written = {9: rows({9: "patched"})}
    patched = patch_index(index, written, "gp")
    assert patched[9][1] == "gp"
    homes = {entry.home for entry in patched.values()} - {"gp"}
    assert len(homes) <= MAX_HOMES and "g00" in homes
    # Owner 1's home (g01, the least used) is dropped: its rows must be written into gp.
    moved = {o for o, entry in patched.items() if entry.home == "gp"} - set(written)
    assert moved == {1}
    found = owners_rows(store, index, CLIENTS, moved)
    assert [(r["RowKey"], r["d"]) for r in found] == [("0000000001-000", '{"v": "v1"}')]
    assert "PartitionKey" not in found[0]


def test_written_rows_go_in_chunks_of_whole_owners_that_readers_find(store):
    owners = {n: f"v{n}" for n in range(1, 2 * CHUNK_ROWS + 51)}  # owner 7 has two rows
    planned = share_unchanged(store, "g1", {CLIENTS: rows(owners), "meta": []}, None)
    chunks = {k: v for k, v in planned.partitions.items() if k.startswith(f"{CLIENTS}|")}
    assert CLIENTS not in planned.partitions
    assert sorted(len(v) for v in chunks.values()) == [51, CHUNK_ROWS, CHUNK_ROWS]
    for name, chunk in chunks.items():
        assert name == f"{CLIENTS}|{int(chunk[0]['RowKey'][:10])}"  # named by its first owner
    assert {str(r["RowKey"])[:10] for r in chunks[f"{CLIENTS}|1"]} >= {"0000000007"}
    store.write_generation("g1", planned.partitions)
    read_cache.index_buckets.clear()
    assert seen(store, "g1", 250) == ['{"v": "v250"}'] and len(seen(store, "g1", 7)) == 2
    assert len(all_rows(store, "g1", CLIENTS)) == len(owners) + 1
    # The next generation writes only what changed, in a chunk of its own.
    assert write(store, "g2", {**owners, 120: "changed"}, "g1") == 1
    read_cache.index_buckets.clear()
    assert seen(store, "g2", 120) == ['{"v": "changed"}'] and seen(store, "g2", 121) == [
        '{"v": "v121"}'
    ]
    assert len(all_rows(store, "g2", CLIENTS)) == len(owners) + 1


def test_rows_written_before_chunks_are_found_and_shared_where_they_are(store):
    # An index entry without a chunk: the owner's rows are in the partition itself.
    old_rows = rows({1: "a", 2: "b"})
    entries = [[o, content_hash(r), "old"] for o, r in by_owner(old_rows).items()]
    index = [{"RowKey": "head", **encode_data("[]")}]
    index.append({"RowKey": "0000000-000", **encode_data(json.dumps(entries))})
    store.write_generation("old", {CLIENTS: old_rows, index_partition(CLIENTS): index})
    assert seen(store, "old", 2) == ['{"v": "b"}']
    assert {o: e.rows for o, e in read_index(store, "old", CLIENTS).items()} == {
        1: CLIENTS,
        2: CLIENTS,
    }
    assert write(store, "new", {1: "a", 2: "B"}, "old") == 1
    where = {o: (e.home, e.rows) for o, e in read_index(store, "new", CLIENTS).items()}
    assert where == {1: ("old", CLIENTS), 2: ("new", f"{CLIENTS}|2")}
    read_cache.index_buckets.clear()
    assert seen(store, "new", 1) == ['{"v": "a"}'] and seen(store, "new", 2) == ['{"v": "B"}']
    assert [str(e["d"]) for e in all_rows(store, "new", CLIENTS)] == ['{"v": "a"}', '{"v": "B"}']
