"""The reconciliation's CSV: one column per row field, numbers only in number columns."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from shared.api.reconciliation import (
    CSV_COLUMNS,
    ReconciliationResponse,
    as_csv,
    reconciliation_reply,
)
from shared.core.installed import Installed, InventoryState, TenantComputers
from shared.core.reconcile import ReconciliationRow, reconciliation_row, reconciliation_rows
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot, resolve
from shared.records.halo import Client, RecurringInvoice

RULE = Rule(software="SentinelOne", items=[ItemMatch(id=7)])


def target_with(*lines: dict, name: str = "Contoso"):
    invoice = RecurringInvoice.model_validate(
        {"id": -3, "client_id": 1, "lines": [{"_itemid": 7, "unit_price": 6.0, **x} for x in lines]}
    )
    snapshot = Snapshot.build([Client(id=1, name=name)], [], [], [invoice], [])
    (target,) = resolve(snapshot, RULE, date(2026, 12, 2))
    return target.model_copy(update={"immy_tenant_id": 2})


def answer(*rows: ReconciliationRow) -> ReconciliationResponse:
    _, totals = reconciliation_rows([], [], datetime(2026, 12, 2, tzinfo=UTC), 30)
    return ReconciliationResponse(
        software="SentinelOne",
        generation="g1",
        synced_at=datetime(2026, 12, 2, tzinfo=UTC),
        resolved_on=date(2026, 12, 2),
        immybot_configured=True,
        detect=["Sentinel Agent"],
        stale_days=30,
        inventory=InventoryState(searched=["Sentinel Agent"]),
        totals=totals,
        rows=list(rows),
    )


def cells(report: ReconciliationResponse) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(as_csv(report))))


def test_every_row_field_is_a_column_and_nothing_else():
    assert set(CSV_COLUMNS) == set(ReconciliationRow.model_fields)
    assert "deployed" not in CSV_COLUMNS and "billed" not in CSV_COLUMNS  # renamed: see the docs


def test_csv_carries_the_three_numbers_the_differences_and_the_signed_money():
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 25.0}), TenantComputers(targeted=5), Installed(2)
    )
    (line,) = cells(answer(row))
    assert (line["quantity"], line["targeted"], line["installed"]) == ("25.0", "5", "2")
    assert (line["installed_minus_quantity"], line["targeted_minus_installed"]) == ("-23.0", "3")
    assert (line["unit_price"], line["at_stake"]) == ("6.0", "-138.0")  # a number, not a formula
    assert line["quantity_status"] == "fixed" and line["installed_unknown"] == ""


def test_an_unknown_quantity_or_install_is_an_empty_number_cell_and_a_reason_beside_it():
    lines = (
        {"id": 1, "qty_order": 2.0},
        {"id": 2, "qty_order": 0.0, "recurring_invoice_quantity_type": 2},
    )
    row = reconciliation_row(
        target_with(*lines), TenantComputers(targeted=9), Installed(None, "no detect")
    )
    (line,) = cells(answer(row))
    assert (line["quantity"], line["quantity_status"]) == ("", "calculated_unknown")  # never 0
    assert (line["quantity_fixed"], line["calculated_unknown"]) == ("2.0", "1")
    assert (line["installed"], line["installed_unknown"]) == ("", "no detect")
    assert line["at_stake"] == "" and line["targeted"] == "9"


def test_customer_text_cannot_become_a_spreadsheet_formula():
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 1.0}, name="=HYPERLINK(1)"),
        TenantComputers(targeted=1),
        Installed(1),
    )
    (line,) = cells(answer(row))
    assert line["client_name"] == "'=HYPERLINK(1)"


def test_csv_answers_are_attachments_named_in_ascii():
    row = reconciliation_row(
        target_with({"id": 1, "qty_order": 3.0}), TenantComputers(targeted=1), Installed(1)
    )
    report = answer(row).model_copy(update={"software": "Sentinel Ünë"})
    reply = reconciliation_reply(report, "csv")
    assert (reply.status, reply.mimetype) == (200, "text/csv")
    disposition = reply.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="reconciliation-Sentinel--n-.csv"'
    (line,) = list(csv.DictReader(io.StringIO(reply.body.decode())))
    assert line["installed_minus_quantity"] == "-2.0"  # a negative number stays a number
