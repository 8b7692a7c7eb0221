"""Billed, targeted and installed side by side for one rule's targets: per client rows, sorted by
money at stake, and their totals (the pure part of `shared.api.reconciliation`, also used by the
tags API and the technician tab, so all three show the same numbers).

Per client:
- `quantity`: what HaloPSA bills (fixed lines' `qty_order`, calculated lines' last calculated
  value); null when it is not known: a calculated line not calculated yet, or only contracts
  entitle the client (`quantity_status` says which). Never 0 for "not known".
- `targeted`: the computers a deployment of the rule reaches in the mapped tenant: deployable
  (not sandbox, dev-lab or excluded from maintenance) and seen within the stale window; for a
  site-scoped rule only those asset population placed at the client's in-scope sites
  (`shared.core.reach`). Null with the reason when it cannot be known (no tenant; a site-scoped
  rule without computer-to-site links).
- `installed`: the computers of that same scope (the tenant's, or a site-scoped rule's at its
  sites) on which ImmyBot's inventory finds the software (a detect pattern of the rule matches),
  whatever their flags or age; null with the reason when it cannot be known (no tenant, no detect
  pattern, inventory not read, no computer-to-site links).
- `unplaced` (site-scoped rules only): the tenant's computers whose site is unknown, counted in
  neither.
- the differences, each `a_minus_b = a - b`, and `at_stake = installed_minus_quantity x
  unit_price`: positive, installs the customer is not billed for; negative, billed seats with no
  install behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.installed import (
    Installed,
    InventoryState,
    StoredComputer,
    TenantComputers,
    by_tenant,
    installed_in,
)
from shared.core.mapping import MatchKind
from shared.core.reach import SiteScope, off_site, unplaced
from shared.core.rules import normalise
from shared.core.site_links import NO_LINKS
from shared.core.targets import InvoiceLineReason, Target

QuantityStatus = Literal["fixed", "calculated", "calculated_unknown", "contract"]
NOT_CONFIGURED = "ImmyBot is not configured"
NO_TENANT = "the client has no ImmyBot tenant"


class ReconciliationRow(BaseModel):
    """One client: what it is billed for, what the rule targets, where the software is."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    mapping: MatchKind
    quantity: float | None = Field(
        description="Billed quantity: fixed lines' qty_order plus calculated lines' last "
        "calculated value. Null when not known; quantity_status says why. Never 0 for unknown."
    )
    quantity_status: QuantityStatus = Field(
        description="fixed: only fixed-quantity lines; calculated: calculated lines (with any "
        "fixed ones), all calculated; calculated_unknown: a calculated line HaloPSA has not "
        "calculated yet (quantity null); contract: only contracts entitle (quantity null)."
    )
    quantity_fixed: float = Field(description="Quantity typed on fixed-quantity lines.")
    quantity_calculated: float = Field(description="Last calculated quantity of calculated lines.")
    calculated_unknown: int = Field(description="Calculated lines HaloPSA has not calculated yet.")
    targeted: int | None = Field(
        description="Computers the rule reaches in the mapped tenant: deployable (not sandbox, "
        "dev-lab or excluded from maintenance) and seen within the stale window; for a "
        "site-scoped rule only those at the client's in-scope sites. Null when not known."
    )
    targeted_unknown: str | None = Field(
        default=None,
        description="Why targeted is null (no tenant, ImmyBot not configured, a site-scoped rule "
        "without computer-to-site links).",
    )
    installed: int | None = Field(
        description="Computers of the same scope as targeted (the mapped tenant's; a site-scoped "
        "rule's at the client's in-scope sites) whose ImmyBot inventory shows the software (a "
        "detect pattern matches), whatever their flags or age; null when not known."
    )
    installed_unknown: str | None = Field(
        default=None,
        description="Why installed is null (no tenant, no detect, inventory not read, no "
        "computer-to-site links).",
    )
    stale: int | None = Field(
        default=None, description="Deployable computers not seen within the stale window."
    )
    not_deployable: int | None = Field(
        default=None, description="Sandbox, dev-lab and excluded-from-maintenance computers."
    )
    unplaced: int | None = Field(
        default=None,
        description="Site-scoped rule: the tenant's computers whose site is unknown, counted in "
        "neither targeted nor installed. Null for a rule without a site scope.",
    )
    installed_minus_quantity: float | None = Field(
        description="installed - quantity. Positive: installs not billed; negative: billed seats "
        "with no install."
    )
    targeted_minus_installed: int | None = Field(
        description="targeted - installed. Positive: at least this many targeted computers lack "
        "the software."
    )
    targeted_minus_quantity: float | None = Field(
        description="targeted - quantity. Positive: the rule reaches more computers than are billed."
    )
    unit_price: float | None = Field(description="Billed price per unit, where the lines have one.")
    at_stake: float | None = Field(
        description="installed_minus_quantity x unit_price, signed. Positive: money not billed "
        "for installs; negative: money billed for installs that are not there."
    )


class ReconciliationTotals(BaseModel):
    """Sums over the rows (null values count as nothing)."""

    model_config = ConfigDict(frozen=True)

    quantity_fixed: float
    quantity_calculated: float
    calculated_unknown: int
    targeted: int
    installed: int
    installed_unknown_clients: int = Field(
        description="Mapped clients whose installed is not known."
    )
    stale: int = 0
    not_deployable: int = 0
    unplaced: int = 0
    at_stake: float = Field(description="Sum of at_stake: unbilled installs net of empty seats.")
    at_stake_unbilled: float = Field(description="Sum of the positive at_stake values.")
    at_stake_not_installed: float = Field(description="Sum of the negative at_stake values.")
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


def quantity_of(target: Target) -> tuple[float | None, QuantityStatus]:
    """The billed quantity of a target, or None, and what kind of number it is."""
    lines = [r for r in target.reasons if isinstance(r, InvoiceLineReason)]
    split = target.quantities
    if not lines:
        return None, "contract"
    if split.calculated_unknown:
        return None, "calculated_unknown"
    calculated = any(r.quantity_kind == "calculated" for r in lines)
    return split.fixed + split.calculated, "calculated" if calculated else "fixed"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def reconciliation_row(
    target: Target,
    tenant: TenantComputers | None,
    installed: Installed,
    *,
    unplaced: int | None = None,
) -> ReconciliationRow:
    """One target's billed quantity (fixed and calculated apart) against the computers the rule
    reaches (`tenant`: its tenant's, a site-scoped rule's at its sites; None when not known, and
    `installed.unknown` says why) and where the software is (`installed`)."""
    quantity, status = quantity_of(target)
    targeted = tenant.targeted if tenant is not None else None
    price = _unit_price(target)
    gap = _minus(installed.count, quantity)
    # `+ 0.0` turns a rounded -0.0 into 0.0: "-0.0" at stake would read as a loss.
    at_stake = None if gap is None or price is None else round(gap * price, 2) + 0.0
    missing = _minus(targeted, installed.count)
    return ReconciliationRow(
        client_id=target.client_id,
        client_name=target.client_name,
        immy_tenant_id=target.immy_tenant_id,
        mapping=target.mapping,
        quantity=quantity,
        quantity_status=status,
        quantity_fixed=target.quantities.fixed,
        quantity_calculated=target.quantities.calculated,
        calculated_unknown=target.quantities.calculated_unknown,
        targeted=targeted,
        targeted_unknown=None if tenant is not None else installed.unknown or NO_TENANT,
        installed=installed.count,
        installed_unknown=installed.unknown,
        stale=tenant.stale if tenant is not None else None,
        not_deployable=tenant.not_deployable if tenant is not None else None,
        unplaced=unplaced,
        installed_minus_quantity=gap,
        targeted_minus_installed=None if missing is None else int(missing),
        targeted_minus_quantity=_minus(targeted, quantity),
        unit_price=price,
        at_stake=at_stake,
    )


def client_row(
    target: Target,
    tenant_id: int | None,
    tenants: Mapping[int, TenantComputers] | None,
    detect: Sequence[str],
    inventory: InventoryState | None,
    scope: SiteScope | None = None,
) -> ReconciliationRow:
    """A target's row given its tenant (`tenant_id`), every tenant's computers (`tenants`, None
    when ImmyBot is not configured) and, for a site-scoped rule, where computers are (`scope`)."""
    if tenants is None:
        return reconciliation_row(target, None, Installed(None, NOT_CONFIGURED))
    if tenant_id is None:
        return reconciliation_row(target, None, Installed(None, NO_TENANT))
    tenant = tenants.get(tenant_id, TenantComputers())
    if scope is None:
        return reconciliation_row(target, tenant, installed_in(tenant.computers, detect, inventory))
    where = {c.id: off_site(c.id, target, scope) for c in tenant.computers}
    lost = sum(unplaced(why) for why in where.values())
    if scope.links is None:
        return reconciliation_row(target, None, Installed(None, NO_LINKS), unplaced=lost)
    at_sites = tenant.within(lambda c: where[c.id] is None)
    found = installed_in(at_sites.computers, detect, inventory)
    return reconciliation_row(target, at_sites, found, unplaced=lost)


def reconciliation_rows(
    targets: Iterable[Target],
    computers: Iterable[StoredComputer] | None,
    as_of: datetime,
    stale_days: int,
    *,
    detect: Sequence[str] = (),
    inventory: InventoryState | None = None,
    scope: SiteScope | None = None,
) -> tuple[list[ReconciliationRow], ReconciliationTotals]:
    """Every target against its tenant's computers as of `as_of` (`computers` None: ImmyBot is
    not configured; `scope`: a site-scoped rule's links), most money at stake first (either
    sign), then the largest gap between installed and billed, then by name; and the totals."""
    tenants = None if computers is None else by_tenant(computers, as_of, stale_days)
    rows = [client_row(t, t.immy_tenant_id, tenants, detect, inventory, scope) for t in targets]
    rows.sort(
        key=lambda r: (
            -abs(r.at_stake or 0.0),
            -(abs(r.installed_minus_quantity) if r.installed_minus_quantity is not None else -1),
            normalise(r.client_name),
        )
    )
    return rows, _totals(rows)


def _totals(rows: Sequence[ReconciliationRow]) -> ReconciliationTotals:
    stakes = [r.at_stake for r in rows if r.at_stake is not None]
    return ReconciliationTotals(
        quantity_fixed=sum(r.quantity_fixed for r in rows),
        quantity_calculated=sum(r.quantity_calculated for r in rows),
        calculated_unknown=sum(r.calculated_unknown for r in rows),
        targeted=sum(r.targeted or 0 for r in rows),
        installed=sum(r.installed or 0 for r in rows),
        installed_unknown_clients=sum(
            r.installed is None and r.immy_tenant_id is not None for r in rows
        ),
        stale=sum(r.stale or 0 for r in rows),
        not_deployable=sum(r.not_deployable or 0 for r in rows),
        unplaced=sum(r.unplaced or 0 for r in rows),
        at_stake=round(sum(stakes), 2) + 0.0,
        at_stake_unbilled=round(sum(s for s in stakes if s > 0), 2) + 0.0,
        at_stake_not_installed=round(sum(s for s in stakes if s < 0), 2) + 0.0,
        unmapped_clients=sum(r.immy_tenant_id is None for r in rows),
    )
