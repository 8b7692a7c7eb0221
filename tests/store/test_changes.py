"""The change log against real Azurite: written per day, read newest first, pruned by whole days."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.core.changes import Cause, Change
from shared.store.changes import (
    TABLE,
    day_key,
    iter_changes,
    partition_key,
    prune_changes,
    row_key,
    write_changes,
)
from shared.store.repository import Store
from tests.conftest import azurite_service

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"c{next(_names)}x")


def change(at: datetime, client_id: int, software: str = "Huntress", **extra) -> Change:
    values = {
        "at": at,
        "software": software,
        "client_id": client_id,
        "client_name": f"Client {client_id}",
        "immy_tenant_id": None,
        "change": "became",
        "before": [],
        "after": [f"contract MSEC-{client_id:06d} (Managed Security)"],
        "cause": Cause(kind="sync", id="69dcda6e242c"),
        "generation": at.strftime("%Y%m%d%H%M%S") + "abcdef",
    }
    return Change.model_validate(values | extra)


def publish(store: Store, *changes: Change) -> None:
    write_changes(store, list(changes))


def test_keys_sort_later_days_and_later_publishes_first():
    assert day_key(date(2026, 12, 6)) == "79738793"
    assert day_key(date(2026, 12, 7)) < day_key(date(2026, 12, 6)) < day_key(date(2025, 12, 31))
    later, earlier = row_key(NOW, "g2", 0), row_key(NOW - timedelta(milliseconds=1), "g1", 5)
    assert later < earlier
    assert row_key(NOW, "g2", 1) > row_key(NOW, "g2", 0)  # a publish's own order


def test_a_publish_spreads_over_partitions_of_a_hundred_inside_its_days_bounds():
    day = day_key(NOW.date())
    first, last = partition_key(NOW, "g2", 0), partition_key(NOW, "g2", 250)
    assert first.startswith(day + "-") and first < last < day + "~"
    assert partition_key(NOW, "g2", 99) == first != partition_key(NOW, "g2", 100)
    assert partition_key(NOW + timedelta(milliseconds=1), "g3", 900) < first  # later first
    assert partition_key(NOW - timedelta(days=1), "g1", 0) > day + "~"


def test_a_large_publish_reads_back_in_its_order_after_a_later_one(store):
    publish(store, *(change(NOW, n) for n in range(1, 251)))
    publish(store, change(NOW + timedelta(seconds=1), 999))
    found = list(iter_changes(store, NOW))
    assert [c.client_id for c in found] == [999, *range(1, 251)]
    table = store.table(TABLE, create=False)
    sizes: dict[str, int] = {}
    for entity in table.list_entities(select=["PartitionKey"]):
        sizes[entity["PartitionKey"]] = sizes.get(entity["PartitionKey"], 0) + 1
    assert sorted(sizes.values()) == [1, 50, 100, 100]


def test_a_round_trip_newest_first_across_days_in_each_publishs_order(store):
    two_days_ago = NOW - timedelta(days=2)
    publish(store, change(two_days_ago, 5))
    publish(
        store,
        change(NOW, 1, "Huntress", change="stopped", before=["contract A (B)"], after=[]),
        change(NOW, 2, "SentinelOne", immy_tenant_id=7, cause=Cause(kind="approval", id="x1")),
    )
    found = list(iter_changes(store, NOW - timedelta(days=7)))
    assert [(c.at, c.client_id) for c in found] == [(NOW, 1), (NOW, 2), (two_days_ago, 5)]
    assert found[0] == change(
        NOW, 1, "Huntress", change="stopped", before=["contract A (B)"], after=[]
    )
    assert found[1].immy_tenant_id == 7 and found[1].cause.describe() == "approval x1"


def test_since_is_exact_inside_its_day(store):
    morning, evening = NOW.replace(hour=8), NOW.replace(hour=20)
    publish(store, change(morning, 1))
    publish(store, change(evening, 2))
    assert [c.client_id for c in iter_changes(store, NOW)] == [2]
    assert [c.client_id for c in iter_changes(store, morning)] == [2, 1]
    assert list(iter_changes(store, evening + timedelta(seconds=1))) == []


def test_one_rule_by_its_key(store):
    publish(store, change(NOW, 1, "Huntress"), change(NOW, 2, "Sentinel One"))
    assert [c.client_id for c in iter_changes(store, NOW, rule="sentinel one")] == [2]
    assert list(iter_changes(store, NOW, rule="nothing")) == []


def test_ids_past_32_bits_and_unicode_names_read_back(store):
    big = change(NOW, 2**40, immy_tenant_id=2**35, client_name="Zoë — 東京", after=["línea ü"])
    publish(store, big)
    assert list(iter_changes(store, NOW)) == [big]


def test_reading_before_any_publish_finds_nothing_and_creates_no_table(store):
    assert list(iter_changes(store, NOW)) == []
    assert prune_changes(store, NOW.date()) == 0
    names = [t.name for t in store.service.list_tables()]
    assert store.prefix + TABLE not in names


def test_pruning_drops_whole_days_before_the_first_kept_one(store):
    for days_ago in (0, 1, 2, 3):
        at = NOW - timedelta(days=days_ago)
        # 150 changes on the oldest day: more than one transaction to delete.
        count = 150 if days_ago == 3 else 1
        publish(store, *(change(at, n) for n in range(1, count + 1)))
    kept_from = (NOW - timedelta(days=1)).date()
    assert prune_changes(store, kept_from) == 151
    left = list(iter_changes(store, NOW - timedelta(days=30)))
    assert sorted({c.at.date() for c in left}) == [kept_from, NOW.date()]
    assert prune_changes(store, kept_from) == 0


def test_an_unreadable_entity_is_skipped_not_fatal(store):
    publish(store, change(NOW, 1))
    store.table(TABLE).upsert_entity(
        {"PartitionKey": day_key(NOW.date()), "RowKey": "0", "software": "x"}
    )
    assert [c.client_id for c in iter_changes(store, NOW - timedelta(days=1))] == [1]
