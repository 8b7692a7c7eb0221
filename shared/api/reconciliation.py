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

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.current import current_pointer, rule_in
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.mapping import MatchKind
from shared.core.rules import normalise
from shared.core.targets import InvoiceLineReason, Target
from shared.records.immybot import ImmyComputer
from shared.store.generations import read_computers, read_manifest, read_targets
from shared.store.repository import Store


class ReconciliationRow(BaseModel):
    """One client: what it is billed for, what is deployed, and the gap."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    mapping: MatchKind
    billed: float | None = Field(
        description="Billed quantity (fixed + calculated) on the matching recurring invoice lines;"
        " null when a calculated line has no value yet or only contracts match."
    )
    billed_fixed: float = Field(description="Quantity typed on fixed-quantity lines.")
    billed_calculated: float = Field(description="Last calculated quantity of calculated lines.")
    calculated_unknown: int = Field(
        description="Calculated lines HaloPSA has not calculated yet (billed is then null)."
    )
    deployed: int | None = Field(
        description="Active computers in the mapped tenant (deployable, seen within the stale "
        "window); null if unmapped."
    )
    stale: int | None = Field(
        default=None, description="Deployable computers not seen for IMMY_STALE_DAYS or more."
    )
    not_deployable: int | None = Field(
        default=None, description="Sandbox, dev-lab and excluded-from-maintenance computers."
    )
    difference: float | None = Field(description="deployed - billed; positive: unbilled devices.")
    unit_price: float | None = Field(description="Billed price per unit, where the lines have one.")
    at_stake: float | None = Field(description="|difference| x unit_price.")


class ReconciliationTotals(BaseModel):
    """Sums over the rows."""

    model_config = ConfigDict(frozen=True)

    billed_fixed: float
    billed_calculated: float
    calculated_unknown: int
    deployed: int
    stale: int = 0
    not_deployable: int = 0
    at_stake: float
    unmapped_clients: int


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


def _unit_price(target: Target) -> float | None:
    priced = [
        (r.unit_price, r.quantity)
        for r in target.reasons
        if isinstance(r, InvoiceLineReason) and r.unit_price > 0
    ]
    weighted = [(price, quantity) for price, quantity in priced if quantity]
    if weighted:
        total = sum(quantity for _, quantity in weighted)
        return round(sum(price * quantity for price, quantity in weighted) / total, 4)
    # Only uncalculated lines: their price is still the price of one unit.
    return round(sum(p for p, _ in priced) / len(priced), 4) if priced else None


def _billed(target: Target) -> float | None:
    split = target.quantities
    has_lines = any(isinstance(r, InvoiceLineReason) for r in target.reasons)
    if not has_lines or split.calculated_unknown:
        return None
    return split.fixed + split.calculated


def reconciliation_row(
    target: Target,
    deployed: int | None,
    *,
    stale: int | None = None,
    not_deployable: int | None = None,
) -> ReconciliationRow:
    """One target's billed quantities (fixed and calculated apart) against its active computers;
    stale and not-deployable computers are counted apart."""
    billed = _billed(target)
    difference = None if deployed is None or billed is None else deployed - billed
    price = _unit_price(target)
    at_stake = None if difference is None or price is None else round(abs(difference) * price, 2)
    return ReconciliationRow(
        client_id=target.client_id,
        client_name=target.client_name,
        immy_tenant_id=target.immy_tenant_id,
        mapping=target.mapping,
        billed=billed,
        billed_fixed=target.quantities.fixed,
        billed_calculated=target.quantities.calculated,
        calculated_unknown=target.quantities.calculated_unknown,
        deployed=deployed,
        stale=stale,
        not_deployable=not_deployable,
        difference=difference,
        unit_price=price,
        at_stake=at_stake,
    )


def count_computers(
    computers: Iterable[ImmyComputer], as_of: datetime, stale_days: int
) -> dict[str, Counter[int]]:
    """Per tenant: `active`, `stale` and `not_deployable` computers as of `as_of`."""
    since = as_of - timedelta(days=stale_days)
    counts: dict[str, Counter[int]] = {k: Counter() for k in ("active", "stale", "not_deployable")}
    for computer in computers:
        if not computer.deployable:
            kind = "not_deployable"
        elif computer.last_seen is None or _utc(computer.last_seen) < since:
            kind = "stale"
        else:
            kind = "active"
        counts[kind][computer.tenant_id] += 1
    return counts


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def reconcile(store: Store, software: str, stale_days: int = 30) -> ReconciliationResponse:
    """Billed quantity against active computers for every target of a rule."""
    pointer = current_pointer(store)
    manifest, _ = read_manifest(store, pointer.generation)
    entry = rule_in(manifest, software)
    targets = read_targets(store, pointer.generation, entry.partition)
    counts = count_computers(
        read_computers(store, pointer.generation) if manifest.immybot.configured else [],
        manifest.synced_at,
        stale_days,
    )
    per_tenant = counts["active"]
    rows = [
        reconciliation_row(
            target,
            per_tenant.get(target.immy_tenant_id, 0) if target.immy_tenant_id else None,
            stale=counts["stale"].get(target.immy_tenant_id, 0) if target.immy_tenant_id else None,
            not_deployable=(
                counts["not_deployable"].get(target.immy_tenant_id, 0)
                if target.immy_tenant_id
                else None
            ),
        )
        for target in targets
    ]
    rows.sort(
        key=lambda r: (
            -(r.at_stake or 0.0),
            -(abs(r.difference) if r.difference is not None else -1.0),
            normalise(r.client_name),
        )
    )
    totals = ReconciliationTotals(
        billed_fixed=sum(r.billed_fixed for r in rows),
        billed_calculated=sum(r.billed_calculated for r in rows),
        calculated_unknown=sum(r.calculated_unknown for r in rows),
        deployed=sum(r.deployed or 0 for r in rows),
        stale=sum(r.stale or 0 for r in rows),
        not_deployable=sum(r.not_deployable or 0 for r in rows),
        at_stake=round(sum(r.at_stake or 0.0 for r in rows), 2),
        unmapped_clients=sum(r.deployed is None for r in rows),
    )
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
        if row.billed is None and row.calculated_unknown:
            values["billed"] = "calculated"  # not yet known: an empty cell would read as 0
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
