"""Billed, targeted and installed per client: the numbers, the signs, the order, the totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.installed import Installed, InventoryState, TenantComputers, with_software
from shared.core.reach import SiteScope
from shared.core.reconcile import quantity_of, reconciliation_row, reconciliation_rows
from shared.core.rules import ItemMatch, Rule
from shared.core.site_links import NO_LINKS, SiteLink
from shared.core.targets import SiteRef, Snapshot, resolve
from shared.records.halo import Client, Contract, RecurringInvoice
from shared.records.immybot import ImmyComputer, InventoryRow

AS_OF = datetime(2026, 12, 2, tzinfo=UTC)
RULE = Rule(software="SentinelOne", items=[ItemMatch(id=7)], contract_types=["Security"])
DETECT = ["Sentinel Agent"]
INVENTORY = InventoryState(searched=["Sentinel Agent"])


def target_with(*lines: dict, client_id: int = 1, name: str = "Contoso", tenant: int | None = 5):
    invoice = RecurringInvoice.model_validate(
        {
            "id": -client_id,
            "client_id": client_id,
            "lines": [{"_itemid": 7, "unit_price": 6.0, **x} for x in lines],
        }
    )
    snapshot = Snapshot.build([Client(id=client_id, name=name)], [], [], [invoice], [])
    (found,) = resolve(snapshot, RULE, AS_OF.date())
    return found.model_copy(update={"immy_tenant_id": tenant})


def computer(id: int, tenant: int = 5, seen_days_ago: int | None = 1, **flags: bool):
    seen = None if seen_days_ago is None else AS_OF - timedelta(days=seen_days_ago)
    return ImmyComputer(id=id, tenant_id=tenant, last_seen=seen, **flags)


def stored(computers: list[ImmyComputer], carrying: set[int]):
    rows = [
        InventoryRow(computer_id=c.id, tenant_id=c.tenant_id, name="Sentinel Agent")
        for c in computers
        if c.id in carrying
    ]
    return with_software(computers, {"Sentinel Agent": rows}, {"Sentinel Agent": tuple(DETECT)})


def test_contoso_billed_25_targeted_5_installed_2_signs_as_documented():
    """The demo's Contoso: 25 fixed seats at 6.00, five targeted computers, two with the agent."""
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 25.0}),
        TenantComputers(targeted=5),
        Installed(2),
    )
    assert (row.quantity, row.quantity_status, row.targeted, row.installed) == (25, "fixed", 5, 2)
    assert row.installed_minus_quantity == -23  # 23 billed seats have no install behind them
    assert row.targeted_minus_installed == 3  # three targeted computers lack it
    assert row.targeted_minus_quantity == -20
    assert (row.unit_price, row.at_stake) == (6.0, -138.0)  # (2 - 25) x 6.00: billed, not there


def test_installs_beyond_the_billed_quantity_are_money_not_billed():
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 2.0}), TenantComputers(targeted=4), Installed(4)
    )
    assert (row.installed_minus_quantity, row.at_stake) == (2, 12.0)


def test_a_calculated_quantity_is_reported_as_calculated_never_zero():
    known = target_with({"id": 1, "qty_order": 14.0, "recurring_invoice_quantity_type": 1})
    assert quantity_of(known) == (14.0, "calculated")
    unknown = target_with(
        {"id": 1, "qty_order": 2.0},
        {"id": 2, "qty_order": 0.0, "recurring_invoice_quantity_type": 2},
    )
    row = reconciliation_row(unknown, TenantComputers(targeted=9), Installed(9))
    assert (row.quantity, row.quantity_status) == (None, "calculated_unknown")
    assert (row.quantity_fixed, row.calculated_unknown, row.unit_price) == (2.0, 1, 6.0)
    assert row.installed_minus_quantity is None and row.at_stake is None
    assert row.targeted_minus_installed == 0  # what is known is still shown


def test_a_contract_only_target_has_no_billed_quantity():
    contract = Contract.model_validate(
        {"id": 3, "client_id": 1, "contracttype_name": "Security", "active": True}
    )
    snapshot = Snapshot.build([Client(id=1, name="C")], [], [contract], [], [])
    (found,) = resolve(snapshot, RULE, AS_OF.date())
    row = reconciliation_row(found, TenantComputers(targeted=3), Installed(1))
    assert (row.quantity, row.quantity_status, row.unit_price, row.at_stake) == (
        None,
        "contract",
        None,
        None,
    )
    assert row.targeted_minus_installed == 2


@pytest.mark.parametrize(
    ("computers", "detect", "inventory", "why"),
    [
        (None, DETECT, INVENTORY, "ImmyBot is not configured"),
        ([], [], INVENTORY, "the rule names no detect pattern"),
        ([], DETECT, None, "the last sync did not read ImmyBot's inventory"),
    ],
)
def test_installed_unknown_says_why_and_puts_nothing_at_stake(computers, detect, inventory, why):
    (row,), totals = reconciliation_rows(
        [target_with({"id": 1, "qty_order": 3.0})],
        computers,
        AS_OF,
        30,
        detect=detect,
        inventory=inventory,
    )
    assert (row.installed, row.installed_unknown, row.at_stake) == (None, why, None)
    assert totals.at_stake == 0


def test_rows_put_the_most_money_at_stake_first_either_sign_and_total_up():
    targets = [
        target_with({"id": 1, "qty_order": 3.0, "unit_price": 1.0}, client_id=1, name="Small"),
        target_with({"id": 1, "qty_order": 10.0, "unit_price": 5.0}, client_id=2, name="Large"),
        target_with({"id": 1, "qty_order": 1.0, "unit_price": 4.0}, client_id=3, name="Over"),
        target_with({"id": 1, "qty_order": 4.0}, client_id=4, name="Unmapped", tenant=None),
    ]
    targets[1] = targets[1].model_copy(update={"immy_tenant_id": 6})
    targets[2] = targets[2].model_copy(update={"immy_tenant_id": 7})
    machines = [
        computer(1, 5),
        computer(2, 6),
        computer(3, 6),
        computer(4, 6, seen_days_ago=90),
        computer(5, 7),
        computer(6, 7, is_sandbox=True),
        computer(7, 7),
    ]
    rows, totals = reconciliation_rows(
        targets,
        stored(machines, carrying={1, 2, 5, 6, 7}),
        AS_OF,
        30,
        detect=DETECT,
        inventory=INVENTORY,
    )
    assert [r.client_name for r in rows] == ["Large", "Over", "Small", "Unmapped"]
    assert [(r.targeted, r.installed, r.stale, r.not_deployable, r.at_stake) for r in rows] == [
        (2, 1, 1, 0, -45.0),  # (1 - 10) x 5
        (2, 3, 0, 1, 8.0),  # (3 - 1) x 4: the sandbox computer's agent counts as installed
        (1, 1, 0, 0, -2.0),
        (None, None, None, None, None),
    ]
    assert rows[3].installed_unknown == "the client has no ImmyBot tenant"
    assert (totals.targeted, totals.installed, totals.stale, totals.not_deployable) == (5, 5, 1, 1)
    assert (totals.at_stake, totals.at_stake_unbilled, totals.at_stake_not_installed) == (
        -39.0,
        8.0,
        -47.0,
    )
    assert (totals.unmapped_clients, totals.installed_unknown_clients) == (1, 0)
    assert totals.quantity_fixed == 18


def test_no_targets_give_no_rows_and_zero_totals():
    rows, totals = reconciliation_rows([], [], AS_OF, 30)
    assert rows == [] and totals.at_stake == 0 and totals.unmapped_clients == 0


def test_a_rounded_zero_at_stake_is_never_negative():
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 2.0, "unit_price": 0.001}),
        TenantComputers(targeted=2),
        Installed(1),
    )
    assert row.at_stake == 0.0 and str(row.at_stake) == "0.0"


def scoped_target(sites: list[int]):
    found = target_with({"id": 1, "qty_order": 4.0})
    return found.model_copy(update={"sites": [SiteRef(id=s, name=f"site {s}") for s in sites]})


def link(computer_id: int, site: int | None, client: int = 1) -> SiteLink:
    return SiteLink(computer_id=computer_id, tenant_id=5, client_id=client, site_id=site)


def test_a_site_scoped_rule_counts_only_the_computers_at_the_clients_sites():
    fleet = [
        computer(1),  # at site 10: targeted, installed
        computer(2),  # at site 10: targeted
        computer(3, seen_days_ago=60),  # at site 10, stale: not targeted, still installed
        computer(4),  # at site 11, out of scope: counted nowhere though installed
        computer(5),  # site unknown: unplaced
        computer(6),  # linked to another client's site 10: not this client's
    ]
    links = {1: link(1, 10), 2: link(2, 10), 3: link(3, 10), 4: link(4, 11), 5: link(5, None)}
    links[6] = link(6, 10, client=2)
    (row,), totals = reconciliation_rows(
        [scoped_target([10])],
        stored(fleet, carrying={1, 3, 4, 5}),
        AS_OF,
        30,
        detect=DETECT,
        inventory=INVENTORY,
        scope=SiteScope(links),
    )
    assert (row.targeted, row.stale, row.installed, row.unplaced) == (2, 1, 2, 1)
    assert row.installed_minus_quantity == -2 and row.targeted_minus_installed == 0
    assert totals.unplaced == 1 and totals.targeted == 2
    # The same computers for a rule with no site scope: the whole tenant.
    (whole,), _ = reconciliation_rows(
        [scoped_target([10])],
        stored(fleet, carrying={1, 3, 4, 5}),
        AS_OF,
        30,
        detect=DETECT,
        inventory=INVENTORY,
    )
    assert (whole.targeted, whole.installed, whole.unplaced) == (5, 4, None)


def test_without_links_a_site_scoped_rule_knows_neither_targeted_nor_installed():
    (row,), totals = reconciliation_rows(
        [scoped_target([10])],
        stored([computer(1), computer(2)], carrying={1}),
        AS_OF,
        30,
        detect=DETECT,
        inventory=INVENTORY,
        scope=SiteScope(None),
    )
    assert (row.targeted, row.installed, row.unplaced) == (None, None, 2)
    assert row.targeted_unknown == row.installed_unknown == NO_LINKS
    assert row.at_stake is None and totals.unmapped_clients == 0  # mapped, just not placed


def test_targeted_says_why_it_is_unknown():
    (row,), _ = reconciliation_rows(
        [target_with({"id": 1, "qty_order": 4.0}, tenant=None)], [], AS_OF, 30, detect=DETECT
    )
    assert row.targeted is None and row.targeted_unknown == "the client has no ImmyBot tenant"
    (off,), _ = reconciliation_rows([target_with({"id": 1, "qty_order": 4.0})], None, AS_OF, 30)
    assert off.targeted_unknown == "ImmyBot is not configured"
