"""Billed against deployed across a rule's targets: computers counted by kind, rows by money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.reconcile import count_computers, reconciliation_rows
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot, Target, resolve
from shared.records.halo import Client, RecurringInvoice
from shared.records.immybot import ImmyComputer

AS_OF = datetime(2026, 12, 2, tzinfo=UTC)
RULE = Rule(software="SentinelOne", items=[ItemMatch(id=7)])


def target(client_id: int, name: str, qty: float, price: float, tenant: int | None) -> Target:
    invoice = RecurringInvoice.model_validate(
        {
            "id": client_id,
            "client_id": client_id,
            "lines": [{"id": 1, "_itemid": 7, "qty_order": qty, "unit_price": price}],
        }
    )
    snapshot = Snapshot.build([Client(id=client_id, name=name)], [], [], [invoice], [])
    (found,) = resolve(snapshot, RULE, AS_OF.date())
    return found.model_copy(update={"immy_tenant_id": tenant})


def computer(id: int, tenant: int, seen_days_ago: int | None, **flags: bool) -> ImmyComputer:
    seen = None if seen_days_ago is None else AS_OF - timedelta(days=seen_days_ago)
    return ImmyComputer(id=id, tenant_id=tenant, last_seen=seen, **flags)


def test_computers_are_counted_active_stale_or_not_deployable():
    computers = [
        computer(1, 5, 1),
        computer(2, 5, 40),
        computer(3, 5, None),
        computer(4, 5, 1, is_sandbox=True),
        computer(5, 6, 29),
    ]
    counts = count_computers(computers, AS_OF, 30)
    assert counts["active"] == {5: 1, 6: 1}
    assert counts["stale"] == {5: 2}
    assert counts["not_deployable"] == {5: 1}


def test_a_naive_last_seen_counts_as_utc():
    naive = ImmyComputer(id=1, tenant_id=5, last_seen=datetime(2026, 12, 1))
    assert count_computers([naive], AS_OF, 30)["active"] == {5: 1}


def test_rows_put_the_most_money_at_stake_first_and_total_up():
    targets = [
        target(1, "Small", qty=3, price=1.0, tenant=5),  # 1 deployed: 2 at stake
        target(2, "Large", qty=10, price=5.0, tenant=6),  # 2 deployed: 40 at stake
        target(3, "Unmapped", qty=4, price=5.0, tenant=None),
    ]
    computers = [computer(1, 5, 1), computer(2, 6, 1), computer(3, 6, 1), computer(4, 6, 90)]
    rows, totals = reconciliation_rows(targets, computers, AS_OF, 30)
    assert [r.client_name for r in rows] == ["Large", "Small", "Unmapped"]
    assert [(r.deployed, r.stale, r.at_stake) for r in rows] == [
        (2, 1, 40.0),
        (1, 0, 2.0),
        (None, None, None),
    ]
    assert totals.deployed == 3 and totals.stale == 1
    assert totals.at_stake == 42.0 and totals.unmapped_clients == 1
    assert totals.billed_fixed == 17


def test_no_targets_give_no_rows_and_zero_totals():
    rows, totals = reconciliation_rows([], [], AS_OF, 30)
    assert rows == [] and totals.at_stake == 0 and totals.unmapped_clients == 0
