"""What bills on a day: contracts in date or in grace, live invoices, billing lines, item matches."""

from __future__ import annotations

from datetime import date

from shared.core.billing import ItemMatcher, contract_covers, invoice_live, line_bills
from shared.core.rules import ItemMatch, Rule
from shared.records.halo import Contract, Item, RecurringInvoice, RecurringInvoiceLine

TODAY = date(2026, 3, 1)


def contract(**fields: object) -> Contract:
    return Contract.model_validate({"id": 1, "client_id": 1} | fields)


def test_a_contract_covers_in_date_unless_halopsa_expired_it():
    assert contract_covers(contract(end_date="2026-03-01"), TODAY) == (True, False)
    assert contract_covers(contract(expired=True), TODAY) == (False, False)
    assert contract_covers(contract(start_date="2026-03-02"), TODAY) == (False, False)
    assert contract_covers(contract(active=False), TODAY) == (False, False)


def test_past_its_end_only_the_grace_days_decide():
    ended = contract(end_date="2026-02-20", expired=True)
    assert contract_covers(ended, TODAY) == (False, False)
    assert contract_covers(ended, TODAY, grace_days=9) == (True, True)
    assert contract_covers(ended, TODAY, grace_days=8) == (False, False)


def test_an_invoice_runs_inside_its_dates_and_schedule():
    assert invoice_live(RecurringInvoice(id=1, client_id=1), TODAY)
    assert not invoice_live(RecurringInvoice(id=1, client_id=1, disabled=True), TODAY)
    paused = RecurringInvoice.model_validate(
        {"id": 1, "client_id": 1, "schedule": {"disabled": True}}
    )
    assert not invoice_live(paused, TODAY)
    ended = RecurringInvoice.model_validate({"id": 1, "client_id": 1, "enddate": "2026-02-01"})
    assert not invoice_live(ended, TODAY)


def test_a_line_bills_with_a_quantity_or_a_calculated_one():
    assert line_bills(RecurringInvoiceLine(id=1, qty_order=2), TODAY)
    assert not line_bills(RecurringInvoiceLine(id=1, qty_order=0), TODAY)
    assert line_bills(
        RecurringInvoiceLine(id=1, qty_order=0, recurring_invoice_quantity_type=2), TODAY
    )
    assert not line_bills(RecurringInvoiceLine(id=1, qty_order=2, isinactive=True), TODAY)


def test_the_matcher_tries_id_then_codes_then_names():
    rule = Rule(
        software="Office",
        items=[ItemMatch(id=5), ItemMatch(code="M365-BP"), ItemMatch(name="Microsoft 365")],
    )
    matcher = ItemMatcher.of(rule)
    assert matcher.match(RecurringInvoiceLine(id=1, item_id=5), None) == "id 5"
    by_item_code = Item(id=9, name="Other", internalreference="m365-bp")
    assert matcher.match(RecurringInvoiceLine(id=1, item_id=9), by_item_code) is not None
    by_text = RecurringInvoiceLine(id=1, item_shortdescription="microsoft 365")
    assert matcher.match(by_text, None) is not None
    assert matcher.match(RecurringInvoiceLine(id=1, item_id=9), Item(id=9, name="Other")) is None
