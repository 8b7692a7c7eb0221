"""Sync runs against real Azurite and the HaloPSA sandbox: atomic swaps, faults, guard, lease."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import ServiceRequestError

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed
from shared.halo.client import HaloClient
from shared.outbound.budget import RetryPolicy
from shared.settings import Settings
from shared.store.base import StoreError
from shared.store.repository import Store
from shared.sync.lease import LEASE_RENEW, LEASE_TTL
from shared.sync.retention import approve_held
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from shared.sync.status import sync_status
from tests.conftest import azurite_service
from tests.sync.sandbox_runs import (
    HUNTRESS,
    SENTINELONE,
    TODAY,
    SimulatedCrash,
    answers,
    put_rules,
    settings_for,
)

pytestmark = pytest.mark.integration

_prefixes = itertools.count()


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"s{next(_prefixes)}x")


def sync(settings: Settings, store: Store, **kwargs) -> SyncReport:
    async def go() -> SyncReport:
        retry = RetryPolicy(
            max_attempts=3,
            base_delay=0.01,
            max_delay=0.05,
            max_retry_after=2,
            max_throttled=2,
            backoff_429=0.01,
        )
        async with HaloClient.from_settings(settings, retry=retry, max_concurrency=4) as halo:
            return await run_sync(settings, store=store, halo=halo, **kwargs)

    return asyncio.run(go())


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
    assert second.read == first.read
    # Nothing changed: every client's rows are shared from the first generation, not rewritten.
    assert second.entities_shared == len(data.clients)
    assert second.entities_written + second.entities_shared == first.entities_written
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
    assert report.rejected_total == len(broken)
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


def test_invoices_listed_without_lines_still_cover_and_are_counted(halo_sandbox, azurite, store):
    sandbox, settings, before = baseline(halo_sandbox, azurite, store)
    sandbox.set_faults(Faults(omit_lines=1.0))
    report = sync(settings, store)
    assert report.outcome is Outcome.SUCCEEDED
    assert report.halo_lines_by_id == len(sandbox.data.invoices) > 0
    assert store.recent_runs(1)[0]["halo_lines_by_id"] == report.halo_lines_by_id
    after = answers(store)
    after.pop("generation"), before.pop("generation")
    assert after == before  # the same coverage as when the listing carried every line


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
    before_generation = before["generation"]

    def crash(generation: str) -> None:
        raise SimulatedCrash(generation)

    with pytest.raises(SimulatedCrash) as crashed:
        sync(settings, store, before_swap=crash)
    orphan = crashed.value.args[0]
    assert orphan in store.generations()
    assert answers(store) == before

    # The dead run's lease blocks until it goes stale, then the next run records it as abandoned
    # and continues its generation from the pages it staged instead of reading them again.
    dead = store.lease()
    assert sync(settings, store).outcome is Outcome.SKIPPED
    later = datetime.now(UTC) + LEASE_TTL + timedelta(seconds=1)
    report = sync(settings, store, now=lambda: later)
    assert report.outcome is Outcome.SUCCEEDED
    assert report.generation == orphan
    assert report.stage is not None and report.stage["resumed"]
    assert report.stage["reused"] > 0 and report.stage["staged"] == 0
    assert report.halo_requests == 0
    assert store.generations() == sorted([before_generation, orphan])
    after = answers(store)
    after.pop("generation"), before.pop("generation")
    assert after == before
    runs = {r.run_id: r for r in sync_status(store, later, immybot_configured=False).last_runs}
    assert runs[dead.owner].outcome == "abandoned"
    assert report.run_id in runs[dead.owner].note


def test_the_lease_is_shorter_than_the_function_timeout_and_renewed():
    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    hours, minutes, seconds = (int(x) for x in host["functionTimeout"].split(":"))
    timeout = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    assert LEASE_TTL < timeout
    # Three renewals fit in one TTL: a busy event loop may delay two before the lease goes stale.
    assert LEASE_RENEW * 3 <= LEASE_TTL


def test_two_concurrent_runs_one_runs_one_skips(halo_sandbox, azurite, store):
    sandbox = halo_sandbox(generate(200, seed=4, today=TODAY), faults=Faults(latency_ms=5))
    settings = settings_for(sandbox, azurite)
    put_rules(store, HUNTRESS)

    async def both() -> list[SyncReport]:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, backoff_429=0.01)
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
    # HaloPSA sends some client ids as decimals or strings.
    clients = sorted(
        {
            int(float(c["client_id"]))
            for c in data.contracts
            if c["contracttype_name"] == "Managed Security"
        }
    )
    gone = set(clients[::2])
    kept = [
        c
        for c in data.contracts
        if not (c["contracttype_name"] == "Managed Security" and int(float(c["client_id"])) in gone)
    ]
    return HaloDataSet.from_json({**data.to_json(), "contracts": kept})


def test_mass_change_guard_holds_a_50_percent_drop_until_approved(halo_sandbox, azurite, store):
    data = generate(200, seed=6, today=TODAY)
    sandbox, settings, before = baseline(halo_sandbox, azurite, store, data)
    settings = settings_for(sandbox, azurite, sync_confirm_by_repeat=False)
    sandbox.set_data(halve_managed_security(data))

    held = sync(settings, store)
    assert held.outcome is Outcome.HELD
    guard = held.guard["targets"][HUNTRESS.key]
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
    sandbox, _settings, before = baseline(halo_sandbox, azurite, store, data)
    settings = settings_for(sandbox, azurite, sync_confirm_by_repeat=True)
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
    assert report.guard["targets"][HUNTRESS.key]["after"] == 0
    assert answers(store) == before


# -- storage faults, as an operator would meet them --------------------------------------------


class FaultyStore(Store):
    """The same tables behind switches: while `down`, every table call fails as an unreachable
    storage account does (azure.core's ServiceRequestError); `down_after_swap` turns it down as
    soon as the pointer has moved; `failing` names methods that fail on their own."""

    down = False
    down_after_swap = False
    failing: frozenset[str] = frozenset()

    def __init__(self, store: Store, **switches) -> None:
        super().__init__(store.service, prefix=store.prefix)
        for key, value in switches.items():
            setattr(self, key, value)

    def _refuse(self) -> None:
        raise ServiceRequestError("storage account unreachable (injected)")

    def table(self, name, *, create=True):
        if self.down:
            self._refuse()
        return super().table(name, create=create)

    def __getattribute__(self, name):
        if name in object.__getattribute__(self, "failing"):
            refuse = object.__getattribute__(self, "_refuse")
            return lambda *args, **kwargs: refuse()
        return super().__getattribute__(name)

    def swap(self, *args, **kwargs):
        pointer = super().swap(*args, **kwargs)
        if self.down_after_swap:
            self.down = True
        return pointer


def runs_by_id(store: Store) -> dict:
    return {
        r.run_id: r
        for r in sync_status(store, datetime.now(UTC), immybot_configured=False).last_runs
    }


def test_storage_down_at_lease_acquisition_fails_the_run_and_the_next_run_records_it(
    halo_sandbox, azurite, store
):
    _sandbox, settings, before = baseline(halo_sandbox, azurite, store)
    down = sync(settings, FaultyStore(store, down=True))  # returns: nothing raised
    assert down.outcome is Outcome.FAILED
    assert "lease" in down.error and "ServiceRequestError" in down.error
    assert down.run_id not in runs_by_id(store)  # storage refused the record too
    assert answers(store) == before

    # Storage is back: the next run runs (no lease left behind) and records the failed one too.
    back = sync(settings, store)
    assert back.outcome is Outcome.SUCCEEDED, back.error
    runs = runs_by_id(store)
    assert runs[down.run_id].outcome == "failed"
    assert "lease" in runs[down.run_id].error
    assert runs[back.run_id].outcome == "succeeded"


def test_errors_after_the_swap_are_warnings_on_a_succeeded_run(halo_sandbox, azurite, store):
    _sandbox, settings, _before = baseline(halo_sandbox, azurite, store)
    faulty = FaultyStore(store)
    original_swap = faulty.swap

    def swap_then_fail(*args, **kwargs):
        pointer = original_swap(*args, **kwargs)
        # Clearing the held entry, dropping old generations and reading rules for the catch-up.
        faulty.failing = frozenset({"set_held", "generations", "rule_documents"})
        return pointer

    faulty.swap = swap_then_fail
    report = sync(settings, faulty)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert store.current().generation == report.generation  # it serves
    assert len(report.warnings) == 3
    assert any("held" in w for w in report.warnings)
    assert any("old generations" in w for w in report.warnings)
    assert any("rules" in w for w in report.warnings)
    recorded = runs_by_id(store)[report.run_id]
    assert recorded.outcome == "succeeded" and len(recorded.warnings) == 3


def test_storage_lost_after_the_swap_succeeds_and_the_next_run_records_it_and_runs(
    halo_sandbox, azurite, store
):
    _sandbox, settings, _before = baseline(halo_sandbox, azurite, store)
    report = sync(settings, FaultyStore(store, down_after_swap=True))
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert store.current().generation == report.generation
    assert any("lease" in w for w in report.warnings)
    assert report.run_id not in runs_by_id(store)
    assert store.lease().owner == report.run_id  # storage refused the release

    # The next run in this process frees that lease instead of waiting for it to go stale.
    after = sync(settings, store)
    assert after.outcome is Outcome.SUCCEEDED, after.error
    runs = runs_by_id(store)
    assert runs[report.run_id].outcome == "succeeded"
    assert runs[after.run_id].outcome == "succeeded"


# -- the guard on rejects and empty reads --------------------------------------------------------


def test_a_sync_whose_invoices_are_all_rejected_is_held_even_first_and_a_repeat_does_not_confirm(
    halo_sandbox, azurite, store
):
    data = demo_data(TODAY)
    orphaned = [{**i, "client_id": 987654} for i in data.invoices]
    sandbox = halo_sandbox(HaloDataSet.from_json({**data.to_json(), "invoices": orphaned}))
    settings = settings_for(sandbox, azurite, sync_confirm_by_repeat=True)
    put_rules(store, HUNTRESS, SENTINELONE)

    first = sync(settings, store)
    assert first.outcome is Outcome.HELD
    assert store.current() is None  # the very first sync: nothing serves until an admin approves
    rejects = first.guard["rejects"]["invoices"]
    assert rejects["rejected"] == rejects["read"] == len(data.invoices)
    assert sum(rejects["causes"].values()) == len(data.invoices)
    assert first.rejected["invoices"] == rejects["causes"]

    repeat = sync(settings, store)
    assert repeat.outcome is Outcome.HELD  # an agreeing repeat never confirms rejects
    assert store.current() is None
    status = sync_status(store, datetime.now(UTC), immybot_configured=False)
    assert status.held.run_id == repeat.run_id
    assert "rejects" in status.held.reason
    assert status.last_runs[0].rejected["invoices"] == rejects["causes"]


def test_a_record_type_that_comes_back_empty_is_held_and_not_confirmed(
    halo_sandbox, azurite, store
):
    data = demo_data(TODAY)
    sandbox, _settings, before = baseline(halo_sandbox, azurite, store, data)
    settings = settings_for(sandbox, azurite, sync_confirm_by_repeat=True, sync_max_drop=1.0)
    sandbox.set_data(HaloDataSet.from_json({**data.to_json(), "contracts": []}))
    held = sync(settings, store)
    assert held.outcome is Outcome.HELD
    assert held.guard["empty"]["contracts"] == {"before": len(data.contracts), "after": 0}
    assert sync(settings, store).outcome is Outcome.HELD
    assert answers(store) == before


def test_a_few_rejects_below_one_percent_do_not_hold(halo_sandbox, azurite, store):
    data = generate(300, seed=8, today=TODAY)
    one = [{**data.contracts[0], "client_id": 987654}, *data.contracts[1:]]
    sandbox = halo_sandbox(HaloDataSet.from_json({**data.to_json(), "contracts": one}))
    put_rules(store, HUNTRESS)
    report = sync(settings_for(sandbox, azurite), store)
    assert report.outcome is Outcome.SUCCEEDED, report.guard
    assert report.rejected_total == 1
