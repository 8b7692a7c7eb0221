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

from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.csv_out import csv_reply, csv_text
from shared.api.current import current_pointer, rule_in
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.installed import InventoryState
from shared.core.reach import SiteScope
from shared.core.reconcile import ReconciliationRow, ReconciliationTotals, reconciliation_rows
from shared.store.generations import read_computers, read_manifest, read_targets
from shared.store.repository import Store
from shared.store.site_links import read_site_links


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
    site_ids: list[int] | None = Field(
        default=None,
        description="The rule's site scope (null: every site). A site-scoped rule counts only "
        "the computers asset population placed at each client's in-scope sites.",
    )
    site_links_run: str | None = Field(
        default=None,
        description="Site-scoped rule: the asset run whose computer-to-site links placed the "
        "computers; null without a site scope or without links (targeted is then null).",
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
    site_ids = entry.rule.site_ids
    links = read_site_links(store, pointer.generation) if site_ids is not None else None
    scope = None if site_ids is None else SiteScope(links[1] if links is not None else None)
    rows, totals = reconciliation_rows(
        targets,
        computers,
        manifest.synced_at,
        stale_days,
        detect=entry.rule.detect_patterns,
        inventory=immybot.inventory,
        scope=scope,
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
        site_ids=site_ids,
        site_links_run=links[0].run_id if links is not None else None,
        totals=totals,
        rows=rows,
    )


# One column, one meaning: numbers only in the number columns (an empty cell is "not known",
# and the status or reason column beside it says why).
CSV_COLUMNS = (
    "client_id", "client_name", "immy_tenant_id", "mapping", "quantity", "quantity_status",
    "quantity_fixed", "quantity_calculated", "calculated_unknown", "targeted", "targeted_unknown",
    "installed", "installed_unknown", "stale", "not_deployable", "unplaced",
    "installed_minus_quantity", "targeted_minus_installed", "targeted_minus_quantity",
    "unit_price", "at_stake",
)  # fmt: skip


def as_csv(answer: ReconciliationResponse) -> str:
    """The rows as CSV (RFC 4180), safe to open in a spreadsheet."""
    return csv_text(CSV_COLUMNS, (row.model_dump(mode="json") for row in answer.rows))


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
