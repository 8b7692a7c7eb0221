"""Billed versus deployed: per client, the quantity HaloPSA bills against the computers ImmyBot has.

The number an MSP owner asks for first. Rows are sorted by money at stake (difference times the
billed unit price) where the item has a price, then by the size of the difference. Fixed quantities
(typed on the line) and calculated ones (HaloPSA counts licences, users, devices or subscriptions
at invoice time) are kept apart: a calculated line HaloPSA has not calculated yet is reported as
"calculated", never as 0 billed.

"Deployed" counts only computers ImmyBot would deploy to and that were seen lately: sandbox,
dev-lab and excluded-from-maintenance computers are left out, and computers not seen for
`IMMY_STALE_DAYS` (default 30) are counted apart as stale, so a long-dead laptop neither hides
an unbilled seat nor makes one up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.api.csv_out import csv_reply, csv_text
from shared.api.current import current_pointer, rule_in
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
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
    totals: ReconciliationTotals
    rows: list[ReconciliationRow]


def reconcile(store: Store, software: str, stale_days: int = 30) -> ReconciliationResponse:
    """Billed quantity against active computers for every target of a rule."""
    pointer = current_pointer(store)
    manifest, _ = read_manifest(store, pointer.generation)
    entry = rule_in(manifest, software)
    targets = read_targets(store, pointer.generation, entry.partition)
    computers = read_computers(store, pointer.generation) if manifest.immybot.configured else []
    rows, totals = reconciliation_rows(targets, computers, manifest.synced_at, stale_days)
    return ReconciliationResponse(
        software=entry.software,
        generation=pointer.generation,
        synced_at=pointer.synced_at,
        resolved_on=entry.resolved_on,
        immybot_configured=manifest.immybot.configured,
        totals=totals,
        rows=rows,
    )


CSV_COLUMNS = (
    "client_id", "client_name", "immy_tenant_id", "mapping", "billed", "billed_fixed",
    "billed_calculated", "calculated_unknown", "deployed", "stale", "not_deployable", "difference",
    "unit_price", "at_stake",
)  # fmt: skip


def as_csv(answer: ReconciliationResponse) -> str:
    """The rows as CSV (RFC 4180), safe to open in a spreadsheet."""
    rows = []
    for row in answer.rows:
        values = row.model_dump(mode="json")
        if row.billed is None and row.calculated_unknown:
            values["billed"] = "calculated"  # not yet known: an empty cell would read as 0
        rows.append(values)
    return csv_text(CSV_COLUMNS, rows)


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
    return csv_reply(as_csv(report), f"reconciliation-{report.software}")
