"""Billed versus deployed for one rule's targets: per client rows, sorted by money at stake, and
their totals (the pure part of `shared.api.reconciliation`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.core.mapping import MatchKind
from shared.core.rules import normalise
from shared.core.targets import InvoiceLineReason, Target
from shared.records.immybot import ImmyComputer


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


def reconciliation_rows(
    targets: Iterable[Target], computers: Iterable[ImmyComputer], as_of: datetime, stale_days: int
) -> tuple[list[ReconciliationRow], ReconciliationTotals]:
    """Every target against its tenant's computers as of `as_of`, most money at stake first
    (then the largest difference, then by name), and the totals."""
    counts = count_computers(computers, as_of, stale_days)
    rows = [_row_of(target, counts) for target in targets]
    rows.sort(
        key=lambda r: (
            -(r.at_stake or 0.0),
            -(abs(r.difference) if r.difference is not None else -1.0),
            normalise(r.client_name),
        )
    )
    return rows, _totals(rows)


def _row_of(target: Target, counts: dict[str, Counter[int]]) -> ReconciliationRow:
    tenant = target.immy_tenant_id
    if not tenant:
        return reconciliation_row(target, None)
    return reconciliation_row(
        target,
        counts["active"].get(tenant, 0),
        stale=counts["stale"].get(tenant, 0),
        not_deployable=counts["not_deployable"].get(tenant, 0),
    )


def _totals(rows: Sequence[ReconciliationRow]) -> ReconciliationTotals:
    return ReconciliationTotals(
        billed_fixed=sum(r.billed_fixed for r in rows),
        billed_calculated=sum(r.billed_calculated for r in rows),
        calculated_unknown=sum(r.calculated_unknown for r in rows),
        deployed=sum(r.deployed or 0 for r in rows),
        stale=sum(r.stale or 0 for r in rows),
        not_deployable=sum(r.not_deployable or 0 for r in rows),
        at_stake=round(sum(r.at_stake or 0.0 for r in rows), 2),
        unmapped_clients=sum(r.deployed is None for r in rows),
    )
