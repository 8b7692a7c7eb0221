"""The read side's caches: the current pointer and manifest for a few seconds, whole targets
answers per generation, manifest and rule version; and the Table round trips they save, counted
on a real Azurite."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from azure.core.pipeline import PipelineRequest
from azure.data.tables import TableServiceClient, UpdateMode

import shared.api.current as queries
from shared.api.rules import put_rule
from shared.api.targets import answer_targets
from shared.api.targets_query import TargetsQuery
from shared.core.generation import Manifest
from shared.runtime.process import get_settings, get_store
from shared.store import read_cache
from shared.store.base import STATE_PK
from shared.store.read_cache import AnswerCache, CurrentCache
from shared.store.repository import Store
from shared.store.service import table_service
from shared.store.state import Pointer
from shared.sync.run import run_sync

DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
HUNTRESS = TargetsQuery("software", "Huntress")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RoundTrips:
    """Counts every request the Azure SDK sends (one per Table round trip, retries included),
    through azure-core's per-request hook, which every table client of a service runs."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        self.sent.append(f"{request.http_request.method} {request.http_request.url}")


# -- the pointer and manifest cache, against a stand-in store ---------------------------------------


class FakeStore:
    """What CurrentCache reads from a store: identity, local writes, the pointer, the manifest."""

    identity = "fake|"

    def __init__(self) -> None:
        self.local_writes = 0
        self.generation = "g1"
        self.etag = "e1"
        self.reads = 0

    def current(self) -> Pointer:
        self.reads += 1
        return Pointer(self.generation, None, datetime(2026, 12, 1, tzinfo=UTC), "run")

    def read_document(self, generation: str, partition: str, row: str):
        self.reads += 1
        manifest = {"generation": generation, "synced_at": "2026-12-01T00:00:00Z"}
        return {**manifest, "today": "2026-12-01"}, self.etag


def test_within_the_ttl_nothing_is_read_and_at_the_ttl_both_are_read_again():
    clock, store = Clock(), FakeStore()
    cache = CurrentCache(5.0, clock)
    first = cache.read(store)  # type: ignore[arg-type]
    assert store.reads == 2
    clock.now += 4.999
    assert cache.read(store) is first  # type: ignore[arg-type]
    assert store.reads == 2
    store.generation = "g2"  # another instance swapped
    clock.now += 0.001
    again = cache.read(store)  # type: ignore[arg-type]
    assert again is not None and again.pointer.generation == "g2"
    assert store.reads == 4


def test_an_unchanged_manifest_is_not_validated_again(monkeypatch):
    clock, store = Clock(), FakeStore()
    cache = CurrentCache(5.0, clock)
    first = cache.read(store)  # type: ignore[arg-type]
    validated = []
    original = Manifest.model_validate
    monkeypatch.setattr(
        Manifest, "model_validate", lambda doc: validated.append(doc) or original(doc)
    )
    clock.now += 5
    second = cache.read(store)  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert second.manifest is first.manifest and validated == []
    store.etag = "e2"  # a rule edit rewrote the manifest
    clock.now += 5
    third = cache.read(store)  # type: ignore[arg-type]
    assert third is not None and third.manifest_etag == "e2" and len(validated) == 1


def test_a_write_by_this_process_is_seen_at_once():
    clock, store = Clock(), FakeStore()
    cache = CurrentCache(5.0, clock)
    cache.read(store)  # type: ignore[arg-type]
    store.generation, store.local_writes = "g2", 1
    current = cache.read(store)  # type: ignore[arg-type]
    assert current is not None and current.pointer.generation == "g2"


def test_a_clock_going_backwards_does_not_extend_an_entry():
    clock, store = Clock(), FakeStore()
    cache = CurrentCache(5.0, clock)
    cache.read(store)  # type: ignore[arg-type]
    clock.now -= 1
    cache.read(store)  # type: ignore[arg-type]
    assert store.reads == 4


def test_before_the_first_sync_nothing_is_cached():
    class Empty(FakeStore):
        def current(self):  # type: ignore[override]
            self.reads += 1
            return None

    store = Empty()
    cache = CurrentCache(5.0, Clock())
    assert cache.read(store) is None  # type: ignore[arg-type]
    assert cache.read(store) is None  # type: ignore[arg-type]
    assert store.reads == 2


# -- the answer cache -------------------------------------------------------------------------------


def test_the_answer_cache_drops_the_least_recently_used_past_its_size():
    cache: AnswerCache[str] = AnswerCache(max_bytes=10)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # now "b" is the least recently used
    cache.put("c", b"cccc")
    assert cache.get("b") is None
    assert cache.get("a") == b"aaaa" and cache.get("c") == b"cccc"
    assert len(cache) == 2


# -- against Azurite ----------------------------------------------------------------------------------

integration = pytest.mark.integration


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(read_cache, "current", CurrentCache(5.0, clock))
    queries.clear_caches()
    return clock


@pytest.fixture
def counted(demo_synced) -> tuple[Store, RoundTrips]:
    """A store on the app's tables that counts its round trips (same identity as get_store())."""
    trips = RoundTrips()
    settings = get_settings()
    store = Store(table_service(settings, raw_request_hook=trips), prefix=settings.tables_prefix)
    assert store.identity == get_store().identity
    return store, trips


@integration
def test_a_second_call_within_the_ttl_makes_no_table_round_trip(counted, clock):
    store, trips = counted
    first = answer_targets(store, HUNTRESS)
    assert first.body is not None and len(trips.sent) >= 3  # pointer, manifest, lists
    trips.sent.clear()
    clock.now += 4.9
    second = answer_targets(store, HUNTRESS)
    assert second == first
    assert answer_targets(store, HUNTRESS, first.etag).body is None  # the 304
    assert trips.sent == []


@integration
def test_after_the_ttl_only_the_pointer_and_manifest_are_read(counted, clock):
    store, trips = counted
    first = answer_targets(store, HUNTRESS)
    trips.sent.clear()
    clock.now += 5
    assert answer_targets(store, HUNTRESS) == first
    assert len(trips.sent) == 2, trips.sent
    assert "SyncState" in trips.sent[0]


@integration
def test_a_swap_elsewhere_is_served_no_longer_than_the_ttl(counted, clock):
    store, _ = counted
    old = store.current()
    asyncio.run(run_sync())
    new = store.current()
    assert old is not None and new is not None and new.generation != old.generation
    assert json.loads(answer_targets(store, HUNTRESS).body or b"")["generation"] == new.generation
    # Another instance moves the pointer back: written past this process's store.
    settings = get_settings()
    raw = TableServiceClient.from_connection_string(
        settings.tables_connection_string.get_secret_value()  # type: ignore[union-attr]
    ).get_table_client(settings.tables_prefix + "SyncState")
    pointer = raw.get_entity(STATE_PK, "current")
    raw.upsert_entity({**pointer, "generation": old.generation}, mode=UpdateMode.REPLACE)
    clock.now += 4.9
    within = answer_targets(store, HUNTRESS)
    assert json.loads(within.body or b"")["generation"] == new.generation
    clock.now += 0.1
    past = answer_targets(store, HUNTRESS)
    assert json.loads(past.body or b"")["generation"] == old.generation
    assert past.etag != within.etag


@integration
def test_a_swap_in_this_process_is_served_at_once(counted, clock):
    store, _ = counted
    before = answer_targets(store, HUNTRESS)
    asyncio.run(run_sync())
    after = answer_targets(store, HUNTRESS)
    generation = store.current().generation  # type: ignore[union-attr]
    assert json.loads(after.body or b"")["generation"] == generation
    assert after.etag != before.etag
    assert answer_targets(store, HUNTRESS, before.etag).body is not None


@integration
def test_a_rule_edit_changes_the_answer_and_its_etag_at_once(counted, clock):
    store, trips = counted
    before = answer_targets(store, HUNTRESS)
    body = json.loads(before.body or b"")
    excluded = body["targets"][0]["client_id"]
    rule = {**body["rule"], "exclude_clients": [excluded]}
    put_rule(get_store(), "Huntress", json.dumps(rule).encode(), date.today())
    after = answer_targets(store, HUNTRESS)
    assert after.etag != before.etag
    assert excluded not in [t["client_id"] for t in json.loads(after.body or b"")["targets"]]
    assert answer_targets(store, HUNTRESS, before.etag).body is not None  # no stale 304
    trips.sent.clear()
    assert answer_targets(store, HUNTRESS) == after
    assert trips.sent == []


@integration
def test_the_answer_echoes_the_query_as_written(counted, clock):
    store, _ = counted
    lower = answer_targets(store, TargetsQuery("software", "huntress"))
    upper = answer_targets(store, HUNTRESS)
    assert json.loads(lower.body or b"")["query"] == {"software": "huntress"}
    assert json.loads(upper.body or b"")["query"] == {"software": "Huntress"}
    assert lower.etag == upper.etag
