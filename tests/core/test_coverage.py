"""A client's coverage as the tab shows it: rows, reasons, expiry and grace."""

from __future__ import annotations

from datetime import date

from shared.core.coverage import coverage, quantity_text
from shared.core.generation import ClientRecord, RuleEntry, rule_entry
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot
from shared.records.halo import Client, Contract, Item, RecurringInvoice, RecurringInvoiceLine, Site

TODAY = date(2026, 3, 1)
EMPTY = Snapshot.build([], [], [], [], [])


def entry(rule: Rule) -> RuleEntry:
    return rule_entry(rule, [], TODAY, EMPTY)


def contract(id: int, kind: str, end: str | None, **extra: object) -> Contract:
    return Contract.model_validate(
        {"id": id, "client_id": 1, "ref": f"C-{id}", "contracttype_name": kind, "end_date": end}
        | extra
    )


def record(contracts=(), invoices=(), sites=()) -> ClientRecord:
    return ClientRecord(Client(id=1, name="Contoso"), list(sites), list(contracts), list(invoices))


def test_quantities_read_for_people():
    assert quantity_text(14, "fixed", calculated=False) == "14"
    assert quantity_text(None, "fixed", calculated=False) == "0"
    assert quantity_text(3, "users", calculated=True) == "3 (users)"
    assert quantity_text(None, "users", calculated=True) == "calculated (users)"


def test_a_contract_ending_soon_entitles_and_is_flagged():
    rules = [entry(Rule(software="Office", contract_types=["Managed"], detect=["Microsoft 365"]))]
    found = coverage(record([contract(7, "Managed", "2026-03-20")]), {}, rules, TODAY)
    [row] = found.software
    assert row.software == "Office"
    assert row.reasons == ["contract C-7 (Managed)"]
    # The last day is the 20th: the first day without Office is the 21st, 20 days from today.
    assert row.expiring and (row.ends, row.ends_in) == (date(2026, 3, 21), 20)
    assert row.ends_why == ["contract C-7 ends 2026-03-20"]
    [wanted] = found.wanted
    assert (wanted.software, wanted.patterns, wanted.site_scoped) == (
        "Office",
        ("Microsoft 365",),
        False,
    )
    # The client as the rule's target: what the tab's heading counts billed from.
    assert (wanted.target.client_id, wanted.target.quantity) == (1, None)
    assert [r.kind for r in wanted.target.reasons] == ["contract"]
    [shown] = found.contracts
    assert shown.ref == "C-7" and shown.expiring and not shown.in_grace


def test_software_ends_only_when_its_last_cover_does_grace_days_counted():
    ending = contract(7, "Managed", "2026-03-20")
    lenient = [entry(Rule(software="Office", contract_types=["Managed"], grace_days=7))]
    [row] = coverage(record([ending]), {}, lenient, TODAY).software
    assert (row.ends, row.ends_in) == (date(2026, 3, 28), 27)
    assert row.ends_why == ["contract C-7 ends 2026-03-20 + 7 grace days"]
    renewed = [ending, contract(9, "Managed", None, start_date="2026-03-01")]
    strict = [entry(Rule(software="Office", contract_types=["Managed"]))]
    [row] = coverage(record(renewed), {}, strict, TODAY).software
    assert not row.expiring and row.ends is None and row.ends_in is None
    # The ending contract itself still shows as ending soon.
    shown = coverage(record(renewed), {}, strict, TODAY).contracts
    assert {r.ref: r.expiring for r in shown} == {"C-7": True, "C-9": False}


def test_a_contract_past_its_end_shows_only_inside_a_rules_grace():
    lapsed = contract(8, "Managed", "2026-02-25")
    strict = [entry(Rule(software="Office", contract_types=["Managed"]))]
    assert coverage(record([lapsed]), {}, strict, TODAY).contracts == []
    lenient = [entry(Rule(software="Office", contract_types=["Managed"], grace_days=10))]
    found = coverage(record([lapsed]), {}, lenient, TODAY)
    assert [r.in_grace for r in found.contracts] == [True]
    assert found.software[0].reasons == ["contract C-8 (Managed) in grace"]


def test_active_contracts_show_sorted_by_end_with_their_site():
    site = Site(id=3, name="Leeds", client_id=1)
    contracts = [contract(1, "Gold", None), contract(2, "Silver", "2026-12-31", site_id=3)]
    found = coverage(record(contracts, sites=[site]), {}, [], TODAY)
    assert [(r.ref, r.contract_type) for r in found.contracts] == [
        ("C-2", "Silver (Leeds)"),
        ("C-1", "Gold"),
    ]
    assert found.software == [] and found.wanted == []


def test_a_billed_item_line_entitles_with_its_quantity():
    line = RecurringInvoiceLine(id=1, item_id=50, qty_order=0, recurring_invoice_quantity_type=2)
    invoice = RecurringInvoice(id=9, client_id=1, lines=[line])
    items = {50: Item(id=50, name="M365 Business")}
    rules = [entry(Rule(software="Office", items=[ItemMatch(id=50)]))]
    found = coverage(record(invoices=[invoice]), items, rules, TODAY)
    [row] = found.items
    assert (row.item, row.quantity, row.invoice_id) == ("M365 Business", "calculated (users)", 9)
    assert found.software[0].reasons == ["M365 Business, qty calculated (users) (invoice 9)"]
    assert not found.software[0].expiring
