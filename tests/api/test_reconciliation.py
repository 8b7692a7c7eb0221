"""Billed against deployed with fixed and calculated quantities kept apart: never a false 0."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from shared.api.reconciliation import ReconciliationResponse, as_csv, reconciliation_reply
from shared.core.reconcile import ReconciliationTotals, reconciliation_row
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot, resolve
from shared.records.halo import Client, RecurringInvoice

RULE = Rule(software="SentinelOne", items=[ItemMatch(id=7)])


def target_with(*lines: dict):
    invoice = RecurringInvoice.model_validate(
        {"id": -3, "client_id": 1, "lines": [{"_itemid": 7, "unit_price": 6.0, **x} for x in lines]}
    )
    snapshot = Snapshot.build([Client(id=1, name="Contoso")], [], [], [invoice], [])
    (target,) = resolve(snapshot, RULE, date(2026, 12, 2))
    return target


def test_fixed_line_bills_its_quantity():
    row = reconciliation_row(target_with({"id": 1, "qty_order": 25.0}), deployed=5)
    assert (row.billed, row.billed_fixed, row.difference, row.at_stake) == (25.0, 25.0, -20, 120.0)


def test_calculated_line_with_a_value_is_billed_as_calculated():
    line = {"id": 1, "qty_order": 14.0, "recurring_invoice_quantity_type": 1}
    row = reconciliation_row(target_with(line), deployed=14)
    assert (row.billed, row.billed_fixed, row.billed_calculated) == (14.0, 0.0, 14.0)
    assert row.difference == 0


def test_uncalculated_line_is_not_claimed_as_zero_billed():
    lines = (
        {"id": 1, "qty_order": 2.0},
        {"id": 2, "qty_order": 0.0, "recurring_invoice_quantity_type": 2},
    )
    row = reconciliation_row(target_with(*lines), deployed=9)
    assert row.billed is None and row.difference is None and row.at_stake is None
    assert (row.billed_fixed, row.calculated_unknown) == (2.0, 1)
    assert row.unit_price == 6.0
    answer = ReconciliationResponse(
        software="SentinelOne",
        generation="g1",
        synced_at=datetime(2026, 12, 2, tzinfo=UTC),
        resolved_on=date(2026, 12, 2),
        immybot_configured=True,
        totals=ReconciliationTotals(
            billed_fixed=2.0,
            billed_calculated=0.0,
            calculated_unknown=1,
            deployed=9,
            at_stake=0.0,
            unmapped_clients=0,
        ),
        rows=[row],
    )
    (cells,) = list(csv.DictReader(io.StringIO(as_csv(answer))))
    assert cells["billed"] == "calculated"
    assert (cells["billed_fixed"], cells["calculated_unknown"], cells["deployed"]) == (
        "2.0",
        "1",
        "9",
    )


def test_csv_answers_are_attachments_named_in_ascii_and_safe_in_a_spreadsheet():
    row = reconciliation_row(target_with({"id": 1, "qty_order": 3.0}), deployed=1)
    row = row.model_copy(update={"client_name": "=HYPERLINK(1)"})
    answer = ReconciliationResponse(
        software="Sentinel Ünë",
        generation="g1",
        synced_at=datetime(2026, 12, 2, tzinfo=UTC),
        resolved_on=date(2026, 12, 2),
        immybot_configured=True,
        totals=ReconciliationTotals(
            billed_fixed=3.0,
            billed_calculated=0.0,
            calculated_unknown=0,
            deployed=1,
            at_stake=0.0,
            unmapped_clients=0,
        ),
        rows=[row],
    )
    reply = reconciliation_reply(answer, "csv")
    assert (reply.status, reply.mimetype) == (200, "text/csv")
    disposition = reply.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="reconciliation-Sentinel--n-.csv"'
    (cells,) = list(csv.DictReader(io.StringIO(reply.body.decode())))
    assert cells["client_name"] == "'=HYPERLINK(1)"  # not a formula
    assert cells["difference"] == "-2.0"  # a negative number stays a number
