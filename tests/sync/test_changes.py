"""The change log of real publishes, against Azurite and the HaloPSA sandbox: a sync's swap and an
admin's approval each record who became or stopped being a target, why, and what caused it."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.halo_data import HaloDataSet, demo_data
from shared.core.changes import Cause, Change, RuleTargets
from shared.core.mapping import MatchKind
from shared.core.targets import ContractReason, Quantities, Target
from shared.settings import Settings
from shared.store.base import StoreError
from shared.store.changes import TABLE, iter_changes, write_changes
from shared.store.repository import Store
from shared.sync.changes import record_changes
from shared.sync.retention import approve_held
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from tests.conftest import azurite_service
from tests.sync.sandbox_runs import HUNTRESS, SENTINELONE, TODAY, put_rules, settings_for

pytestmark = pytest.mark.integration
_prefixes = itertools.count()
APPROVED_AT = datetime(2026, 12, 6, 16, 30, tzinfo=UTC)


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"ch{next(_prefixes)}x")


class NoChangeLog(Store):
    """The same tables, except that writing the change log fails as storage refusing it would."""

    def write_partitions(self, table, partitions):
        if table.table_name == self.prefix + TABLE:
            raise StoreError("transaction 0 on the change log: HttpResponseError 503 (injected)")
        return super().write_partitions(table, partitions)


def sync(settings: Settings, store: Store) -> SyncReport:
    return asyncio.run(run_sync(settings, store=store))


def logged(store: Store) -> list[Change]:
    return list(iter_changes(store, datetime.now(UTC) - timedelta(days=7)))


def without_fabrikams_contract(data: HaloDataSet) -> HaloDataSet:
    """The demo with Fabrikam's Managed Security contract (id 3) deleted in HaloPSA."""
    kept = [c for c in data.contracts if int(float(c["id"])) != 3]
    assert len(kept) == len(data.contracts) - 1
    return HaloDataSet.from_json({**data.to_json(), "contracts": kept})


def rule_targets_of_one_client(*, covered: bool) -> dict[str, RuleTargets]:
    """Fabrikam's Huntress target (its contract 3) when `covered`, else none."""
    reason = ContractReason(
        contract_id=3,
        ref="MSEC-000003",
        contract_type="Managed Security",
        start_date=None,
        end_date=None,
        in_grace=False,
    )
    fabrikam = Target(
        client_id=2,
        client_name="Fabrikam, Inc.",
        immy_tenant_id=3,
        immy_tenant_name="Fabrikam",
        mapping=MatchKind.NAME,
        sites=[],
        quantity=None,
        quantities=Quantities(fixed=0, calculated=0, calculated_unknown=0),
        reasons=[reason],
    )
    return {"huntress": RuleTargets("Huntress", [fabrikam] if covered else [])}


def first_sync(halo_sandbox, azurite, store, **overrides):
    data = demo_data(TODAY)
    sandbox = halo_sandbox(data)
    settings = settings_for(sandbox, azurite, **overrides)
    put_rules(store, HUNTRESS, SENTINELONE)
    report = sync(settings, store)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    return sandbox, settings, data, report


def test_the_first_sync_records_every_target_as_became_and_a_rerun_nothing(
    halo_sandbox, azurite, store
):
    _sandbox, settings, _data, report = first_sync(halo_sandbox, azurite, store)
    changes = logged(store)
    assert {(c.software, c.client_name, c.change) for c in changes} == {
        ("Huntress", "Contoso Ltd", "became"),
        ("Huntress", "Fabrikam, Inc.", "became"),
        ("Huntress", "Wide World Importers", "became"),
        ("SentinelOne", "Contoso Ltd", "became"),
        ("SentinelOne", "Northwind Traders", "became"),
        ("SentinelOne", "Wide World Importers", "became"),
    }
    assert {c.cause for c in changes} == {Cause(kind="sync", id=report.run_id)}
    assert {c.generation for c in changes} == {report.generation}
    fabrikam = next(c for c in changes if c.client_name == "Fabrikam, Inc.")
    assert fabrikam.before == [] and fabrikam.after == ["contract MSEC-000003 (Managed Security)"]

    again = sync(settings, store)
    assert again.outcome is Outcome.SUCCEEDED and not again.warnings
    assert logged(store) == changes


def test_a_sync_that_removes_a_clients_contract_records_it_stopped_with_its_cause(
    halo_sandbox, azurite, store
):
    # One of Huntress's three targets is a third: let that through the guard.
    sandbox, settings, data, _first = first_sync(halo_sandbox, azurite, store, sync_max_drop=0.5)
    sandbox.set_data(without_fabrikams_contract(data))
    report = sync(settings, store)
    assert report.outcome is Outcome.SUCCEEDED, report.error

    newest = logged(store)[0]
    assert [c for c in logged(store) if c.generation == report.generation] == [newest]
    assert (newest.software, newest.client_id, newest.client_name) == (
        "Huntress",
        2,
        "Fabrikam, Inc.",
    )
    assert newest.change == "stopped"
    assert (newest.before, newest.after) == (["contract MSEC-000003 (Managed Security)"], [])
    assert newest.cause == Cause(kind="sync", id=report.run_id)


def test_an_approval_records_the_held_runs_changes_caused_by_the_approval(
    halo_sandbox, azurite, store
):
    sandbox, settings, data, _first = first_sync(halo_sandbox, azurite, store)
    sandbox.set_data(without_fabrikams_contract(data))
    held = sync(settings, store)
    assert held.outcome is Outcome.HELD
    assert [c.generation for c in logged(store) if c.change != "became"] == []  # held: nothing

    approve_held(store, now=lambda: APPROVED_AT)
    approved = [c for c in iter_changes(store, APPROVED_AT) if c.generation == held.generation]
    assert [(c.client_name, c.change, c.at) for c in approved] == [
        ("Fabrikam, Inc.", "stopped", APPROVED_AT)
    ]
    assert approved[0].cause == Cause(kind="approval", id=held.run_id)


def test_an_unwritable_change_log_is_a_warning_and_the_next_publish_records_its_own(
    halo_sandbox, azurite, store
):
    sandbox, settings, data, _first = first_sync(halo_sandbox, azurite, store, sync_max_drop=0.5)
    sandbox.set_data(without_fabrikams_contract(data))
    report = sync(settings, NoChangeLog(store.service, prefix=store.prefix))
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert store.current().generation == report.generation  # it serves
    assert report.warnings == [
        "could not record the change log: StoreError: transaction 0 on the change log: "
        "HttpResponseError 503 (injected)"
    ]
    assert [c for c in logged(store) if c.generation == report.generation] == []

    # Fabrikam's contract comes back: the next publish records its own diff, Fabrikam became.
    sandbox.set_data(data)
    back = sync(settings, store)
    assert back.outcome is Outcome.SUCCEEDED and not back.warnings
    assert [
        (c.client_name, c.change) for c in logged(store) if c.generation == back.generation
    ] == [("Fabrikam, Inc.", "became")]


def test_an_unwritable_change_log_does_not_fail_an_approval(halo_sandbox, azurite, store):
    sandbox, settings, data, _first = first_sync(halo_sandbox, azurite, store)
    sandbox.set_data(without_fabrikams_contract(data))
    held = sync(settings, store)
    pointer = approve_held(NoChangeLog(store.service, prefix=store.prefix))
    assert pointer.generation == held.generation == store.current().generation
    assert store.held() is None


def test_the_sync_drops_change_log_days_older_than_changes_keep_days(halo_sandbox, azurite, store):
    _sandbox, settings, _data, _first = first_sync(
        halo_sandbox, azurite, store, changes_keep_days=30
    )
    old = logged(store)[0].model_copy(update={"at": datetime.now(UTC) - timedelta(days=31)})
    kept = old.model_copy(update={"at": datetime.now(UTC) - timedelta(days=29)})
    write_changes(store, [old])
    write_changes(store, [kept])
    assert sync(settings, store).outcome is Outcome.SUCCEEDED
    left = list(iter_changes(store, datetime.now(UTC) - timedelta(days=60)))
    assert kept in left and old not in left
    assert len(left) == 7  # the first sync's 6 and the one kept


def test_an_event_refresh_records_one_clients_changes_from_what_it_holds(azurite, store):
    # What an event refresh holds: one client's targets per rule, before and after.
    before = rule_targets_of_one_client(covered=True)
    after = rule_targets_of_one_client(covered=False)
    cause = Cause(kind="event", id="3f2a9c0e-5b1d-4c57-9a3e-0d6c1b2a7e11")
    count = record_changes(store, before, after, generation="g2", cause=cause, at=APPROVED_AT)
    assert count == 1
    [change] = iter_changes(store, APPROVED_AT)
    assert (change.software, change.client_id, change.change) == ("Huntress", 2, "stopped")
    assert change.cause == cause and change.generation == "g2"
