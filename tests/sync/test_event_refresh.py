"""HaloPSA events end to end: the receiver, Azurite's queue, the `halo_events` function, the
HaloPSA sandbox and Azurite's tables. Only the client an event names changes; the guard holds
as for a sync; a refresh killed mid-way changes nothing and its message is tried again; the next
full sync agrees with what the event published."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.api import current as queries
from shared.core.events import EVENTS_POISON_QUEUE, EVENTS_QUEUE
from shared.core.rules import RuleSet
from shared.runtime.process import get_settings, get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from shared.sync.status import sync_status
from tests.conftest import DEMO_RULES, served
from tests.sync.sandbox_runs import SimulatedCrash

pytestmark = pytest.mark.integration
SECRET = "an-event-secret-long-enough-0123456789"
SAMPLES = Path(__file__).parents[1] / "fixtures" / "halo-webhooks"
RULES = RuleSet.model_validate_json(DEMO_RULES.read_text()).rules


@pytest.fixture
def events(demo_synced, app_host, monkeypatch):
    """The demo synced, the webhook on, and a host whose queue functions we drive."""
    monkeypatch.setenv("HALO_WEBHOOK_SECRET", SECRET)
    get_settings.cache_clear()
    return demo_synced, app_host


def allow_drop(monkeypatch, share: str) -> None:
    monkeypatch.setenv("SYNC_MAX_DROP", share)
    get_settings.cache_clear()


def deliver(host, payload) -> dict:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, answer = host.dispatch(
        "POST", "/api/halo/events", {"authorization": f"Bearer {SECRET}"}, body
    )
    assert status == 202, answer
    return json.loads(answer)


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def halo_changes(sandbox, change) -> None:
    """Serve the sandbox's data with `change(data)` applied (HaloPSA edited by someone)."""
    data = copy.deepcopy(sandbox.data)
    change(data)
    sandbox.set_data(data)


def cancel_contract(contract_id: int):
    def change(data) -> None:
        for contract in data.contracts:
            if int(contract["id"]) == contract_id:
                contract["active"] = False

    return change


def status() -> dict:
    found = sync_status(get_store(), datetime.now(UTC), immybot_configured=False)
    return found.model_dump(mode="json")


def now_served() -> dict:
    queries.clear_caches()
    return served(get_store(), RULES)


def names(view: dict, software: str) -> list[str]:
    return sorted(t["client_name"] for t in view[software])


def without(view: dict, client_id: int) -> dict:
    """What a reader sees of every client but one."""
    out = {}
    for kind in ("clients", "sites", "contracts", "invoices"):
        key = "id" if kind == "clients" else "client_id"
        out[kind] = [r for r in view[kind] if r[key] != client_id]
    return out


def test_a_contract_cancelled_through_an_event_changes_the_targets_and_only_that_client(
    events, monkeypatch
):
    sandbox, host = events
    allow_drop(monkeypatch, "0.5")  # Huntress goes from 3 targets to 2
    before = now_served()
    assert names(before, "Huntress") == ["Contoso Ltd", "Fabrikam, Inc.", "Wide World Importers"]
    halo_changes(sandbox, cancel_contract(3))  # Fabrikam's Managed Security contract
    # HaloPSA changed another client too, but sent no event for it: it must not move.
    halo_changes(sandbox, cancel_contract(9))
    deliver(host, sample("contract-updated.json"))
    assert host.queues.drain() == 1

    after = now_served()
    assert after["generation"] != before["generation"]
    assert names(after, "Huntress") == ["Contoso Ltd", "Wide World Importers"]
    assert without(after, 2) == without(before, 2)
    assert names(after, "SentinelOne") == names(before, "SentinelOne")
    pointer = get_store().current()
    assert pointer is not None and pointer.previous == before["generation"]
    (refresh,) = status()["events"]["last_refreshes"]
    assert refresh["outcome"] == "published" and refresh["changed"] == [2]
    assert refresh["targets"]["huntress"]["removed"] == [2]
    assert refresh["halo_requests"] == 5  # a token, the client, its sites, contracts, invoices


def test_the_next_full_sync_agrees_with_what_the_event_published(events, monkeypatch):
    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    halo_changes(sandbox, cancel_contract(3))
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    by_event = now_served()
    synced_at = get_store().current().synced_at  # type: ignore[union-attr]
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    by_sync = now_served()
    assert {k: v for k, v in by_sync.items() if k != "generation"} == {
        k: v for k, v in by_event.items() if k != "generation"
    }
    # An event's generation keeps the age of the data it was built on; the sync's is new.
    assert get_store().current().synced_at > synced_at  # type: ignore[union-attr]


def test_the_same_event_again_changes_nothing(events, monkeypatch):
    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    halo_changes(sandbox, cancel_contract(3))
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    first = now_served()
    deliver(host, sample("contract-updated.json"))  # a replay, or HaloPSA sending it again
    host.queues.drain()
    assert now_served() == first
    refreshes = status()["events"]["refreshes"]
    assert (refreshes["published"], refreshes["unchanged"]) == (1, 1)
    # The replay built nothing, so its record says nothing of how it was built.
    last = status()["events"]["last_refreshes"]
    assert [("built" in r, r["outcome"]) for r in last[:2]] == [
        (False, "unchanged"),
        (True, "published"),
    ]


def test_messages_received_before_a_read_of_their_client_are_coalesced(events):
    _, host = events
    deliver(host, [sample("contract-updated.json")] * 3)  # one message: the same client
    deliver(host, sample("contract-updated.json"))
    deliver(host, sample("contract-updated.json"))
    assert len(host.queues.peek(EVENTS_QUEUE)) == 3
    host.queues.drain()
    counts = status()["events"]["refreshes"]
    assert counts["refreshes"] == 1 and counts["coalesced"] == 2


def test_the_guard_holds_an_event_that_drops_too_many_targets(events):
    sandbox, host = events
    before = now_served()
    halo_changes(sandbox, cancel_contract(3))  # Huntress 3 -> 2: over SYNC_MAX_DROP 0.3
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    assert now_served() == before
    held = get_store().held()
    assert held is not None and held.run_id.startswith("event-")
    (refresh,) = status()["events"]["last_refreshes"]
    assert refresh["outcome"] == "held" and "targets" in refresh["guard"]


def test_a_rejected_record_holds_the_event_as_it_holds_a_sync(events):
    sandbox, host = events

    def break_contract(data) -> None:
        for contract in data.contracts:
            if int(contract["id"]) == 3:
                contract["start_date"] = "not-a-date"

    before = now_served()
    halo_changes(sandbox, break_contract)
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    assert now_served() == before
    (refresh,) = status()["events"]["last_refreshes"]
    assert refresh["outcome"] == "held" and "rejects" in refresh["guard"]
    assert refresh["rejected"] == {"contracts": {"invalid start_date": 1}}


def test_a_refresh_killed_between_read_and_publish_changes_nothing_and_is_tried_again(
    events, monkeypatch
):
    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    import shared.sync.event_refresh as refresh_module

    real = refresh_module.publish_clients
    calls = []

    def killed_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SimulatedCrash  # the process dies after reading HaloPSA, before publishing
        return real(*args, **kwargs)

    monkeypatch.setattr(refresh_module, "publish_clients", killed_once)
    before = now_served()
    halo_changes(sandbox, cancel_contract(3))
    deliver(host, sample("contract-updated.json"))
    assert host.queues.deliver_once() == 1
    assert now_served() == before  # nothing serves differently
    lease = get_store().lease()
    assert lease is not None and lease.owner.startswith("event-")  # a dead run keeps its lease
    # Time passes: the dead refresh's lease goes stale and the next attempt takes it over.
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert get_store().acquire_lease("time-passes", now=later, ttl=timedelta(seconds=1))
    get_store().release_lease("time-passes")
    assert host.queues.drain() == 1
    assert len(calls) == 2
    assert names(now_served(), "Huntress") == ["Contoso Ltd", "Wide World Importers"]
    assert host.queues.peek(EVENTS_POISON_QUEUE) == []


def test_a_busy_lease_retries_then_poisons_with_the_reason_and_the_client_stays_pending(events):
    _, host = events
    store = get_store()
    assert store.acquire_lease("a-long-sync", now=datetime.now(UTC), ttl=timedelta(minutes=5))
    deliver(host, sample("client-updated.json"))
    assert host.queues.drain() == 5  # host.json's maxDequeueCount
    (poisoned,) = [json.loads(m) for m in host.queues.peek(EVENTS_POISON_QUEUE)]
    assert poisoned["key"] == "client|1" and poisoned["attempts"] == 5
    assert "held by a-long-sync" in poisoned["reason"]
    assert json.loads(poisoned["message"])["id"] == 1
    seen = status()["events"]
    assert seen["poison"] == 1 and "a-long-sync" in seen["last_poison"][0]["reason"]
    assert seen["pending"] == 1
    store.release_lease("a-long-sync")
    # The next event's refresh drains what is pending, the poisoned client among them.
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    (last, *_) = status()["events"]["last_refreshes"]
    assert last["keys"] == 2 and status()["events"]["pending"] == 0


def test_a_malformed_message_goes_straight_to_poison(events):
    _, host = events
    host.queues.send(EVENTS_QUEUE, ['{"target": "client"', "not json at all"])
    assert host.queues.drain() == 2
    poisoned = [json.loads(m) for m in host.queues.peek(EVENTS_POISON_QUEUE)]
    assert [p["attempts"] for p in poisoned] == [1, 1]
    assert all(p["reason"].startswith("malformed message") for p in poisoned)
    assert status()["events"]["poison"] == 2


def test_unknown_clients_and_records_are_answered_not_retried(events):
    _, host = events
    before = now_served()
    deliver(host, {"event": "Client Updated", "object_id": 999})
    deliver(host, {"event": "Contract Updated", "object_id": 999})
    assert host.queues.drain() == 2
    assert now_served() == before
    assert host.queues.peek(EVENTS_POISON_QUEUE) == []
    refreshes = status()["events"]["last_refreshes"]
    assert any(r.get("unknown_to_halo") == [999] for r in refreshes)
    assert any(r.get("unresolved") == 1 for r in refreshes)


def test_a_contract_named_without_its_client_is_resolved_from_the_snapshot(events, monkeypatch):
    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    halo_changes(sandbox, cancel_contract(9))  # Wide World Importers' contract
    deliver(host, sample("contract-event-information-only.json"))
    host.queues.drain()
    assert names(now_served(), "Huntress") == ["Contoso Ltd", "Fabrikam, Inc."]
    (refresh,) = status()["events"]["last_refreshes"]
    assert refresh["clients"] == [6]


def test_status_counts_what_the_receiver_took_in(events):
    _, host = events
    deliver(host, (SAMPLES / "batch.json").read_bytes())
    deliver(host, sample("ticket-status-changed.real.json"))
    from shared.runtime.background import after_events

    after_events.wait(timeout=30)
    received = status()["events"]
    assert received["received"]["deliveries"] == 2
    assert received["received"]["unknown"] == 1 and received["received"]["ignored"] == 1
    assert received["unknown_event_names"] == ["Quotation Approved"]


def test_a_dead_refresh_is_no_abandoned_sync_run(events):
    from shared.store.lease import LeaseInfo
    from shared.sync.lease import record_abandoned
    from shared.sync.runs import SyncReport

    store = get_store()
    now = datetime.now(UTC)
    report = SyncReport(run_id="sync-1", started_at=now)
    stale = LeaseInfo(owner="event-0123456789ab", started_at=now, expires_at=now)
    asyncio.run(record_abandoned(store, stale, report))
    assert [r["outcome"] for r in status()["last_runs"]] == ["succeeded"]  # the demo's sync
    asyncio.run(record_abandoned(store, LeaseInfo("run-9", now, now), report))
    assert [r["outcome"] for r in status()["last_runs"]] == ["abandoned", "succeeded"]


def test_a_contract_cancelled_through_an_event_is_in_the_change_log_with_the_event_as_cause(
    events, monkeypatch
):
    from shared.store.changes import iter_changes

    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    halo_changes(sandbox, cancel_contract(3))
    deliver(host, sample("contract-updated.json"))
    host.queues.drain()
    (refresh,) = status()["events"]["last_refreshes"]
    since = datetime.now(UTC) - timedelta(days=1)
    (change,) = [c for c in iter_changes(get_store(), since) if c.cause.kind == "event"]
    assert (change.software, change.client_id, change.change) == ("Huntress", 2, "stopped")
    assert change.cause.id == refresh["run_id"] and change.generation == refresh["generation"]


def test_refreshes_spend_no_more_than_a_full_sync_and_the_next_sync_answers_the_rest(
    events, monkeypatch
):
    import shared.sync.event_refresh as refresh_module
    from shared.core.events import EventMessage

    sandbox, host = events
    allow_drop(monkeypatch, "0.5")
    # The demo's full REST sync costs 6 HaloPSA requests (a token, a page of each of 5 lists);
    # without the floor kept for small data sets, that is all refreshes may spend until a sync.
    monkeypatch.setattr(refresh_module, "MIN_ROOM", 0)
    halo_changes(sandbox, cancel_contract(3))
    before = sandbox.stats()["total"]
    deliver(host, sample("contract-updated.json"))  # client 2: a token and 4 requests
    deliver(host, sample("client-updated.json"))  # client 1: 5 more would be 10 > 6
    early = datetime.now(UTC)
    host.queues.drain()
    assert sandbox.stats()["total"] - before == 5
    seen = status()["events"]
    assert (seen["refreshes"]["published"], seen["refreshes"]["deferred"]) == (1, 1)
    assert seen["pending"] == 1
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert status()["events"]["pending"] == 0  # the sync read client 1 and answered it
    # A message for client 1 received before that sync read it is answered already.
    message = EventMessage(target="client", id=1, kinds=["client"], events=1,
                           received_at=early, delivery="late")  # fmt: skip
    host.queues.send(EVENTS_QUEUE, [message.model_dump_json()])
    host.queues.drain()
    assert status()["events"]["refreshes"]["coalesced"] == 1
