"""The Table Storage repository against real Azurite."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient

from shared.store import repository
from shared.store.base import (
    CHUNK_CHARS,
    MAX_DOCUMENT_CHARS,
    MAX_ENTITY_CHARS,
    EntityTooLarge,
    StoreConflict,
    StoreError,
    check_key,
    decode_data,
    encode_data,
)
from shared.store.repository import Store, document_entities, documents_to_entities
from tests.conftest import azurite_service

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture
def store(azurite) -> Store:
    # A fresh table prefix per test keeps tests independent on the one session Azurite.
    service = azurite_service(azurite)
    return Store(service, prefix=f"t{next(_names)}x")


def test_bulk_write_splits_into_100_entity_transactions_per_partition(store):
    partitions = {
        "contracts": documents_to_entities([(f"{i:06d}", {"n": i}) for i in range(250)]),
        "items": documents_to_entities([(f"{i:06d}", {"n": i}) for i in range(100)]),
        "sites": documents_to_entities([("000001", {"n": 1})]),
    }
    stats = store.write_generation("g1", partitions)
    assert stats.transactions == 3 + 1 + 1
    assert stats.entities == 351
    assert [d["n"] for d in store.read_documents("g1", "contracts")] == list(range(250))
    assert len(store.read_documents("g1", "items")) == 100


def test_large_documents_are_split_across_properties_and_read_back_whole(store):
    big = {"text": "x" * (CHUNK_CHARS * 3 + 17), "unicode": "Zoë — 東京"}
    entities = documents_to_entities([("r1", big)])
    assert entities[0]["n"] == 4
    assert all(len(v) <= CHUNK_CHARS for k, v in entities[0].items() if k.startswith("d"))
    store.write_generation("g2", {"invoices": entities})
    assert store.read_documents("g2", "invoices") == [big]


def test_transactions_stay_under_the_payload_limit(store):
    # 20 entities of ~400 KB (UTF-16) each: far over 4 MiB together, so several transactions.
    doc = {"text": "y" * (MAX_ENTITY_CHARS - 100)}
    entities = documents_to_entities([(f"{i:03d}", doc) for i in range(20)])
    stats = store.write_generation("g3", {"invoices": entities})
    assert stats.entities == 20
    assert stats.transactions >= 3
    assert len(store.read_partition("g3", "invoices")) == 20


def test_a_document_too_large_for_an_entity_is_refused():
    with pytest.raises(EntityTooLarge):
        encode_data("z" * (MAX_ENTITY_CHARS + 1))
    assert decode_data(encode_data("short")) == "short"


@pytest.mark.parametrize("bad", ["a/b", "a\\b", "a#b", "a?b", "a\tb", "", "x" * 513])
def test_forbidden_keys_are_refused_before_any_write(store, bad):
    with pytest.raises(ValueError, match="table key"):
        check_key(bad)
    with pytest.raises(ValueError, match="table key"):
        store.write_generation("g4", {"items": [{"RowKey": bad, "d": "{}"}]})


def test_range_read_returns_one_clients_records(store):
    rows = [(f"{c:010d}-{r:010d}", {"client": c, "row": r}) for c in (1, 2, 10) for r in (1, 2)]
    store.write_generation("g5", {"contracts": documents_to_entities(rows)})
    got = store.read_documents("g5", "contracts", row_prefix=f"{1:010d}-")
    assert [(d["client"], d["row"]) for d in got] == [(1, 1), (1, 2)]


def test_injected_failures_are_retried_and_persistent_ones_fail(azurite):
    service = azurite_service(azurite)
    failures = {"left": 2}

    def flaky(partition: str, sequence: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            from azure.core.exceptions import (
                HttpResponseError,
            )

            error = HttpResponseError(message="injected 503")
            error.status_code = 503
            raise error

    store = Store(service, prefix=f"t{next(_names)}x", transaction_hook=flaky)
    stats = store.write_generation("g6", {"items": documents_to_entities([("1", {})])})
    assert stats.retries == 2 and stats.entities == 1

    def broken(partition: str, sequence: int) -> None:
        raise StoreError("disk on fire")

    store = Store(service, prefix=f"t{next(_names)}x", transaction_hook=broken)
    with pytest.raises(StoreError, match="disk on fire"):
        store.write_generation("g7", {"items": documents_to_entities([("1", {})])})


def test_reads_before_any_write_create_no_table(store):
    from shared.store.event_state import answer_pending
    from shared.sync.tag_store import rule_memory

    assert (store.current(), store.held(), store.lease()) == (None, None, None)
    assert store.rule_documents() == []
    memory = rule_memory(store, "huntress")
    assert (memory.tenants, memory.computers, memory.lost_on) == (set(), set(), {})
    assert answer_pending(store, NOW) == 0  # a sync's end, before any HaloPSA event
    tables = [t.name for t in store.service.list_tables() if t.name.startswith(store.prefix)]
    assert tables == []
    # The first write creates its table.
    store.swap("gen1", run_id="r1", synced_at=NOW, expected=None)
    store.put_rule_document("r", {"software": "R"})
    assert store.current().generation == "gen1" and len(store.rule_documents()) == 1


def test_pointer_swap_is_optimistic(store):
    assert store.current() is None
    first = store.swap("gen1", run_id="r1", synced_at=NOW, expected=None)
    assert (first.generation, first.previous) == ("gen1", None)
    second = store.swap("gen2", run_id="r2", synced_at=NOW, expected=first)
    assert (second.generation, second.previous) == ("gen2", "gen1")
    with pytest.raises(StoreError, match="pointer moved"):
        store.swap("gen3", run_id="r3", synced_at=NOW, expected=first)  # stale view
    with pytest.raises(StoreError, match="pointer moved"):
        store.swap("gen3", run_id="r3", synced_at=NOW, expected=None)
    assert store.current().generation == "gen2"


def test_generations_are_listed_and_dropped(store):
    for generation in ("20261125120000aaaaaa", "20261125121500bbbbbb"):
        store.write_generation(generation, {"items": documents_to_entities([("1", {})])})
    assert store.generations() == ["20261125120000aaaaaa", "20261125121500bbbbbb"]
    store.delete_generation("20261125120000aaaaaa")
    assert store.generations() == ["20261125121500bbbbbb"]


def test_runs_are_listed_newest_first(store):
    for minute in (1, 3, 2):
        store.record_run(f"run{minute}", NOW + timedelta(minutes=minute), {"outcome": "succeeded"})
    assert [r["run_id"] for r in store.recent_runs(2)] == ["run3", "run2"]


def test_rule_documents_round_trip(store):
    store.put_rule_document("huntress", {"software": "Huntress", "contract_types": ["MS"]})
    assert store.rule_documents() == [{"software": "Huntress", "contract_types": ["MS"]}]
    assert store.delete_rule("huntress") is True
    assert store.delete_rule("huntress") is False
    assert json.dumps(store.rule_documents()) == "[]"


def test_rules_are_put_and_deleted_a_hundred_to_a_transaction(store, monkeypatch):
    sent: list[tuple[str, int]] = []
    for name in ("submit_upserts", "submit_deletes"):
        real = getattr(repository, name)

        def counted(table, partition, rows, *args, _real=real, _name=name, **kwargs):
            sent.append((_name, len(rows)))
            return _real(table, partition, rows, *args, **kwargs)

        monkeypatch.setattr(repository, name, counted)
    documents = {f"tool {n:03d}": {"software": f"Tool {n:03d}"} for n in range(250)}
    store.put_rule_documents(documents)
    assert sorted(d["software"] for d in store.rule_documents()) == sorted(
        d["software"] for d in documents.values()
    )
    store.delete_rules(list(documents)[:240])
    assert [d["software"] for d in store.rule_documents()] == [
        f"Tool {n:03d}" for n in range(240, 250)
    ]
    assert sent == [("submit_upserts", n) for n in (100, 100, 50)] + [
        ("submit_deletes", n) for n in (100, 100, 40)
    ]


def test_a_rule_put_again_is_replaced_whole_not_merged(store):
    # Stored over several properties (d0, d1, ...), then in one (d): a merge would leave d0..
    # behind, and the other way round the old `d` would shadow the new parts when read.
    long = {"software": "Long", "note": "x" * (2 * CHUNK_CHARS)}
    store.put_rule_documents({"long": long})
    store.put_rule_documents({"long": {"software": "Long"}})
    assert store.rule_documents() == [{"software": "Long"}]
    store.put_rule_documents({"long": long})
    assert store.rule_documents() == [long]


def test_deleting_rules_one_of_which_is_gone_already_deletes_the_rest(store):
    store.put_rule_documents({k: {"software": k} for k in ("a", "b", "c")})
    store.delete_rule("b")  # as a concurrent delete would, between reading and deleting
    store.delete_rules(["a", "b", "c"])
    assert store.rule_documents() == []


def test_a_document_over_several_rows_is_read_whole_and_replaced_in_one_transaction(store):
    big = json.dumps({"text": "m" * (2 * MAX_ENTITY_CHARS + 10)})
    rows = document_entities("manifest", big)
    assert [r["RowKey"] for r in rows] == ["manifest", "manifest|001", "manifest|002"]
    store.write_generation("g8", {"meta": rows + document_entities("mapping", "[1]")})
    document, token = store.read_document("g8", "meta", "manifest")
    assert document == json.loads(big)
    assert store.read_document("g8", "meta", "mapping")[0] == [1]

    # Shrinking to one row deletes the others in the same transaction.
    written = store.replace_document("g8", "meta", "manifest", '{"small": true}', token)
    document, newer = store.read_document("g8", "meta", "manifest")
    assert document == {"small": True}
    assert written == newer  # the token a cache may key on at once, without reading it back
    # Growing to several rows again: every new row's token.
    grown = store.replace_document("g8", "meta", "manifest", big, newer)
    assert grown == store.read_document("g8", "meta", "manifest")[1] != newer
    newer = store.replace_document("g8", "meta", "manifest", '{"small": true}', grown)
    assert [e["RowKey"] for e in store.read_partition("g8", "meta")] == ["manifest", "mapping"]
    # A writer holding the old token loses, and changes nothing.
    with pytest.raises(StoreConflict):
        store.replace_document("g8", "meta", "manifest", big, token)
    assert store.read_document("g8", "meta", "manifest")[1] == newer
    with pytest.raises(EntityTooLarge):
        document_entities("manifest", "x" * (MAX_DOCUMENT_CHARS + 1))


def test_a_replace_answered_without_etags_gives_a_token_no_read_gives(store, monkeypatch):
    store.write_generation("g11", {"meta": document_entities("manifest", "[1]")})
    _, token = store.read_document("g11", "meta", "manifest")
    real = TableClient.submit_transaction

    def without_etags(self, operations, **kwargs):
        return [{} for _ in real(self, operations, **kwargs)]

    monkeypatch.setattr(TableClient, "submit_transaction", without_etags)
    assert store.replace_document("g11", "meta", "manifest", "[2]", token) == ""
    assert store.read_document("g11", "meta", "manifest")[0] == [2]  # written all the same


def test_rows_are_deleted_in_transactions_all_or_none(store):
    store.write_generation(
        "g9", {"items": documents_to_entities([(f"{i:04d}", {}) for i in range(150)])}
    )
    with pytest.raises(HttpResponseError) as failed:
        store.delete_rows("g9", "items", ["0001", "0002", "nope"])  # one missing: none deleted
    assert failed.value.status_code == 404
    assert len(store.read_partition("g9", "items")) == 150
    store.delete_rows("g9", "items", ["0001", "0002"])
    assert len(store.read_partition("g9", "items")) == 148
    assert store.delete_partition("g9", "items") == 148  # two transactions
    assert store.read_partition("g9", "items") == []


def test_partitions_are_deleted_by_kind_and_the_ones_between_are_kept(store):
    rows = documents_to_entities([(f"{i:04d}", {}) for i in range(120)])
    names = ["targets|a|1", "targets|b|1", "targets|c|1", "unmapped|a|1", "unmapped|c|1", "items"]
    store.write_generation("g10", {name: rows for name in names})
    gone = ["targets|a|1", "targets|c|1", "unmapped|a|1", "unmapped|c|1", "targets|z|9"]
    assert store.delete_partitions("g10", gone) == 4 * 120  # the never-written one counts 0
    for name in names:
        expected = 0 if name in gone else 120
        assert len(store.read_partition("g10", name)) == expected, name


def test_batched_entities_keep_every_property_type_and_awkward_keys(store):
    entity = {
        "RowKey": "it's 100% | ü",
        "text": 'quote " and ü',
        "small": 7,
        "large": 2**40,
        "ratio": 1.0,
        "flag": True,
        "blob": b"\x00\xff",
        "at": datetime(2026, 12, 6, 17, 30, 1, 250000, tzinfo=UTC),
        "nothing": None,
    }
    store.write_generation("g10", {"odd|partition": [entity]})
    [back] = store.read_partition("g10", "odd|partition")
    assert {k: back[k] for k in ("RowKey", "text", "small", "flag", "blob")} == {
        k: entity[k] for k in ("RowKey", "text", "small", "flag", "blob")
    }
    assert back["large"].value == 2**40  # the SDK hands 64-bit integers back typed
    assert back["ratio"] == 1.0 and isinstance(back["ratio"], float)
    assert back["at"] == entity["at"]  # datetimes go as Edm.DateTime, in UTC
    assert "nothing" not in back  # Table Storage keeps no None properties
