"""Billed, targeted and installed per client for one rule: what the customer pays for, what the
rule reaches, and where the software really is (`shared.core.reconcile` says what each number
means, and the sign of each difference).

Rows are sorted by money at stake (`installed_minus_quantity` x the billed unit price, either
sign) where the item has a price, then by the size of that gap. Fixed quantities (typed on the
line) and calculated ones (HaloPSA counts licences, users, devices or subscriptions at invoice
time) are kept apart: a calculated line HaloPSA has not calculated yet leaves `quantity` null with
`quantity_status` "calculated_unknown", never 0 billed.

Everything comes from the current generation: the targets, the computers ImmyBot listed and the
software its inventory search found on them during the sync. Answering never calls ImmyBot.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.current import current_pointer, rule_in
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.installed import InventoryState
from shared.core.reconcile import ReconciliationRow, ReconciliationTotals, reconciliation_rows
from shared.store.generations import read_computers, read_manifest, read_targets
from shared.store.repository import Store


class ReconciliationResponse(BaseModel):
    """`GET /api/reconciliation?software=NAME`."""

    model_config = ConfigDict(frozen=True)

    software: str
    generation: str
    synced_at: datetime
    resolved_on: date
    immybot_configured: bool
    detect: list[str] = Field(description="The rule's detect patterns (installed needs one).")
    stale_days: int = Field(description="IMMY_STALE_DAYS: seen within this many days of the sync.")
    inventory: InventoryState | None = Field(
        description="What the sync read of ImmyBot's inventory; null: not read."
    )
    totals: ReconciliationTotals
    rows: list[ReconciliationRow]


def reconcile(store: Store, software: str, stale_days: int = 30) -> ReconciliationResponse:
    """Quantity, targeted and installed for every target of a rule, as of the current sync."""
    pointer = current_pointer(store)
    manifest, _ = read_manifest(store, pointer.generation)
    entry = rule_in(manifest, software)
    targets = read_targets(store, pointer.generation, entry.partition)
    immybot = manifest.immybot
    computers = read_computers(store, pointer.generation) if immybot.configured else None
    rows, totals = reconciliation_rows(
        targets,
        computers,
        manifest.synced_at,
        stale_days,
        detect=entry.rule.detect_patterns,
        inventory=immybot.inventory,
    )
    return ReconciliationResponse(
        software=entry.software,
        generation=pointer.generation,
        synced_at=pointer.synced_at,
        resolved_on=entry.resolved_on,
        immybot_configured=immybot.configured,
        detect=entry.rule.detect_patterns,
        stale_days=stale_days,
        inventory=immybot.inventory,
        totals=totals,
        rows=rows,
    )


# One column, one meaning: numbers only in the number columns (an empty cell is "not known",
# and the status or reason column beside it says why).
CSV_COLUMNS = (
    "client_id", "client_name", "immy_tenant_id", "mapping", "quantity", "quantity_status",
    "quantity_fixed", "quantity_calculated", "calculated_unknown", "targeted", "installed",
    "installed_unknown", "stale", "not_deployable", "installed_minus_quantity",
    "targeted_minus_installed", "targeted_minus_quantity", "unit_price", "at_stake",
)  # fmt: skip


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting like a formula: neutralise customer-controlled text.
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text
    )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_csv(answer: ReconciliationResponse) -> str:
    """The rows as CSV (RFC 4180), safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in answer.rows:
        values = row.model_dump(mode="json")
        writer.writerow([_cell(values[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def reconciliation_query(params: Mapping[str, str]) -> tuple[str, Literal["json", "csv"]]:
    """`?software=NAME[&format=csv]`: the software and the output format, or a 400."""
    software = lookup_value("software", params.get("software", ""))
    output = params.get("format", "json")
    if output not in ("json", "csv"):
        raise ApiError(problem(400, "bad-query", "format may be json or csv"))
    return software, "csv" if output == "csv" else "json"


def reconciliation_reply(report: ReconciliationResponse, output: Literal["json", "csv"]) -> Reply:
    """The report as JSON, or as a CSV attachment."""
    if output == "json":
        return json_reply(report)
    # A header value must be ASCII: "Ü".isalnum() is true, and the host refuses it.
    name = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in report.software)
    return Reply(
        200,
        as_csv(report).encode(),
        "text/csv",
        {"Content-Disposition": f'attachment; filename="reconciliation-{name}.csv"'},
    )
