"""Sync runs against real Azurite and the HaloPSA sandbox: atomic swaps, faults, guard, lease."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed
from shared.generation import read_clients, read_items, read_rule_targets
from shared.halo_client import HaloClient, RetryPolicy
from shared.rules import ItemMatch, Rule
from shared.settings import Settings, load_settings
from shared.store import Store, StoreError
from shared.sync import (
    LEASE_TTL,
    Outcome,
    SyncReport,
    approve_held,
    run_sync,
    sync_status,
)

pytestmark = pytest.mark.integration

TODAY = date.today()
HUNTRESS = Rule(software="Huntress", contract_types=["Managed Security"])
SENTINELONE = Rule(software="SentinelOne", items=[ItemMatch(name="SentinelOne Complete")])
_prefixes = itertools.count()


class SimulatedCrash(BaseException):
    """Stands for the process being killed: nothing in the sync may catch it."""


@pytest.fixture
def store(azurite) -> Store:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return Store(service, prefix=f"s{next(_prefixes)}x")


def settings_for(sandbox, azurite, **overrides) -> Settings:
    values = {
        "halo_base_url": sandbox.url,
        "halo_client_id": "sandbox-client",
        "halo_client_secret": "sandbox-secret",
        "halo_requests_per_minute": 600_000,
        "halo_page_size": 100,
        "halo_read_mode": "rest",
        "tables_connection_string": azurite.connection_string,
        "tables_endpoint": None,
        **overrides,
    }
    return load_settings(**values)


def sync(settings: Settings, store: Store, **kwargs) -> SyncReport:
    async def go() -> SyncReport:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2)
        async with HaloClient.from_settings(settings, retry=retry, max_concurrency=4) as halo:
            return await run_sync(settings, store=store, halo=halo, **kwargs)

    return asyncio.run(go())


def put_rules(store: Store, *rules: Rule) -> None:
    for rule in rules:
        store.put_rule_document(rule.key, rule.model_dump(mode="json"))


def answers(store: Store) -> dict:
    """Everything a reader can see through the current pointer."""
    pointer = store.current()
    assert pointer is not None
    records = read_clients(store, pointer.generation)

    def dump(models) -> list[dict]:
        return [m.model_dump(mode="json") for m in models]

    out = {
        "clients": dump(r.client for r in records),
        "sites": dump(s for r in records for s in r.sites),
        "contracts": dump(c for r in records for c in r.contracts),
        "invoices": dump(i for r in records for i in r.invoices),
        "items": dump(read_items(store, pointer.generation)),
    }
    for rule in (HUNTRESS, SENTINELONE):
        out[rule.software] = dump(read_rule_targets(store, pointer.generation, rule.key))
    return {"generation": pointer.generation, **out}


def ids(records) -> list[int]:
    return sorted(r["id"] for r in records)


def test_demo_sync_stores_every_record_once_and_a_rerun_changes_no_answer(
    halo_sandbox, azurite, store
):
    data = demo_data(TODAY)
    sandbox = halo_sandbox(data)
    settings = settings_for(sandbox, azurite)
    put_rules(store, HUNTRESS, SENTINELONE)

    first = sync(settings, store)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    seen = answers(store)
    assert ids(seen["clients"]) == ids(data.clients)
    assert ids(seen["sites"]) == ids(data.sites)
    assert ids(seen["contracts"]) == ids(data.contracts)
    assert ids(seen["invoices"]) == ids(data.invoices)
    assert ids(seen["items"]) == ids(data.items)
    lines = sorted(line["id"] for i in seen["invoices"] for line in i["lines"])
    assert lines == sorted(line["id"] for i in data.invoices for line in i["lines"])
    assert seen["Huntress"] and seen["SentinelOne"]
    assert first.rejected == {}

    second = sync(settings, store)
    assert second.outcome is Outcome.SUCCEEDED
    again = answers(store)
    assert again.pop("generation") != seen.pop("generation")
    assert again == seen
    assert (second.read, second.entities_written, second.transactions) == (
        first.read,
        first.entities_written,
        first.transactions,
    )
    pointer = store.current()
    assert pointer.previous == first.generation
    # Current and previous (for rollback) are kept; nothing else.
    assert store.generations() == sorted([first.generation, second.generation])


def test_generated_2000_clients_with_malformed_records(halo_sandbox, azurite, store):
    data, broken = inject_malformed(generate(2000, seed=3, today=TODAY), 12, seed=5)
    sandbox = halo_sandbox(data)
    put_rules(store, HUNTRESS, SENTINELONE)
    report = sync(settings_for(sandbox, azurite), store)
    assert report.outcome is Outcome.SUCCEEDED, report.error

    broken_ids = {(kind, rid) for kind, rid in broken}
    seen = answers(store)
    for kind, resource in (("contracts", "ClientContract"), ("invoices", "RecurringInvoice")):
        expected = sorted(
            r["id"]
            for r in getattr(data, kind)
            if (kind, r["id"]) not in broken_ids and (resource, r["id"]) not in broken_ids
        )
        assert ids(seen[kind]) == expected
    assert ids(seen["clients"]) == ids(data.clients)
    assert sum(report.rejected.values()) == len(broken)
    assert len(report.reject_samples) == len(broken)
    assert all("client_id" in s or "date" in s for s in report.reject_samples)
    run = store.recent_runs(1)[0]
    assert json.loads(run["rejected"]) == report.rejected


def baseline(halo_sandbox, azurite, store, data: HaloDataSet | None = None):
    sandbox = halo_sandbox(data or demo_data(TODAY))
    settings = settings_for(sandbox, azurite)
    put_rules(store, HUNTRESS, SENTINELONE)
    report = sync(settings, store)
    assert report.outcome is Outcome.SUCCEEDED
    return sandbox, settings, answers(store)


def test_halo_500_on_the_last_invoice_page_changes_nothing(halo_sandbox, azurite, store):
    sandbox, settings, before = baseline(
        halo_sandbox, azurite, store, generate(300, seed=2, today=TODAY)
    )
    sandbox.set_faults(
        Faults(fail=[{"resource": "RecurringInvoice", "page": "last", "status": 500}])
    )
    report = sync(settings, store)
    assert report.outcome is Outcome.FAILED
    assert "RecurringInvoice" in report.error and "500" in report.error
    assert answers(store) == before


def test_throttling_beyond_the_retry_cap_changes_nothing(halo_sandbox, azurite, store):
    sandbox, settings, before = baseline(halo_sandbox, azurite, store)
    sandbox.set_faults(Faults(fail=[{"resource": "Client", "page": None, "status": 429}]))
    report = sync(settings, store)
    assert report.outcome is Outcome.FAILED
    assert "429" in report.error
    assert answers(store) == before
    assert store.recent_runs(1)[0]["outcome"] == "failed"


def test_storage_failure_mid_write_changes_nothing(halo_sandbox, azurite, store):
    _sandbox, settings, before = baseline(halo_sandbox, azurite, store)

    def fail_after_three(partition: str, sequence: int) -> None:
        if sequence >= 3:
            raise StoreError("injected storage failure")

    faulty = Store(
        store.service, prefix=store.prefix, concurrency=2, transaction_hook=fail_after_three
    )
    report = sync(settings, faulty)
    assert report.outcome is Outcome.FAILED
    assert "injected storage failure" in report.error
    assert answers(store) == before


def test_crash_before_the_swap_then_a_new_run(halo_sandbox, azurite, store):
    _sandbox, settings, before = baseline(halo_sandbox, azurite, store)

    def crash(generation: str) -> None:
        raise SimulatedCrash(generation)

    with pytest.raises(SimulatedCrash) as crashed:
        sync(settings, store, before_swap=crash)
    orphan = crashed.value.args[0]
    assert orphan in store.generations()
    assert answers(store) == before

    # The dead run's lease blocks until it goes stale, then the next run cleans up after it.
    assert sync(settings, store).outcome is Outcome.SKIPPED
    later = datetime.now(UTC) + LEASE_TTL + timedelta(seconds=1)
    report = sync(settings, store, now=lambda: later)
    assert report.outcome is Outcome.SUCCEEDED
    assert orphan not in store.generations()
    after = answers(store)
    after.pop("generation"), before.pop("generation")
    assert after == before


def test_two_concurrent_runs_one_runs_one_skips(halo_sandbox, azurite, store):
    sandbox = halo_sandbox(generate(200, seed=4, today=TODAY), faults=Faults(latency_ms=5))
    settings = settings_for(sandbox, azurite)
    put_rules(store, HUNTRESS)

    async def both() -> list[SyncReport]:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
        async with (
            HaloClient.from_settings(settings, retry=retry) as a,
            HaloClient.from_settings(settings, retry=retry) as b,
        ):
            return list(
                await asyncio.gather(
                    run_sync(settings, store=store, halo=a), run_sync(settings, store=store, halo=b)
                )
            )

    reports = asyncio.run(both())
    assert sorted(r.outcome for r in reports) == [Outcome.SKIPPED, Outcome.SUCCEEDED]
    winner = next(r for r in reports if r.outcome is Outcome.SUCCEEDED)
    assert store.generations() == [winner.generation]
    assert store.current().generation == winner.generation


def halve_managed_security(data: HaloDataSet) -> HaloDataSet:
    """Every other Managed Security client loses its contracts, as a permission change would."""
    clients = sorted(
        {c["client_id"] for c in data.contracts if c["contracttype_name"] == "Managed Security"}
    )
    gone = set(clients[::2])
    kept = [
        c
        for c in data.contracts
        if not (c["contracttype_name"] == "Managed Security" and c["client_id"] in gone)
    ]
    return HaloDataSet.from_json({**data.to_json(), "contracts": kept})


def test_mass_change_guard_holds_a_50_percent_drop_until_approved(halo_sandbox, azurite, store):
    data = generate(200, seed=6, today=TODAY)
    sandbox, settings, before = baseline(halo_sandbox, azurite, store, data)
    settings = settings_for(sandbox, azurite, sync_confirm_by_repeat=False)
    sandbox.set_data(halve_managed_security(data))

    held = sync(settings, store)
    assert held.outcome is Outcome.HELD
    guard = held.guard[HUNTRESS.key]
    assert guard["before"] == len(before["Huntress"])
    assert 0.4 < guard["share"] < 0.6
    assert answers(store) == before  # still serving the old targets
    status = sync_status(store, datetime.now(UTC), immybot_configured=False)
    assert status.held.run_id == held.run_id
    assert status.last_runs[0].outcome == "held"

    # Without confirmation by repeat, the same outcome stays held.
    assert sync(settings, store).outcome is Outcome.HELD

    approve_held(store)
    after = answers(store)
    assert len(after["Huntress"]) == guard["after"]
    assert store.held() is None
    with pytest.raises(StoreError, match="no held sync run"):
        approve_held(store)


def test_guard_release_by_a_repeat_of_the_same_outcome(halo_sandbox, azurite, store):
    data = generate(200, seed=6, today=TODAY)
    sandbox, settings, before = baseline(halo_sandbox, azurite, store, data)
    sandbox.set_data(halve_managed_security(data))
    assert sync(settings, store).outcome is Outcome.HELD
    confirmed = sync(settings, store)
    assert confirmed.outcome is Outcome.SUCCEEDED
    assert "confirmed" in confirmed.note
    assert len(answers(store)["Huntress"]) < len(before["Huntress"])


def test_a_rule_losing_every_target_is_held(halo_sandbox, azurite, store):
    data = demo_data(TODAY)
    sandbox, _settings, before = baseline(halo_sandbox, azurite, store, data)
    stripped = [c for c in data.contracts if c["contracttype_name"] != "Managed Security"]
    sandbox.set_data(HaloDataSet.from_json({**data.to_json(), "contracts": stripped}))
    report = sync(settings_for(sandbox, azurite, sync_max_drop=1.0), store)
    assert report.outcome is Outcome.HELD
    assert report.guard[HUNTRESS.key]["after"] == 0
    assert answers(store) == before
