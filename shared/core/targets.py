"""Pure target resolution: (snapshot, rule, today) -> the clients entitled to a software, and why.

The semantics are DESIGN.md section 4, written from HaloPSA's real payloads:
- a contract covers its client while `active` is not false, `expired` is not true (inside the rule's
  grace days after a real end date HaloPSA sets `expired` and it is ignored), it has started (no
  start = started) and today <= end + grace days (no end = open);
- a recurring invoice is live while its header is not `disabled`, its `schedule` (when present) is
  not disabled and today is inside the schedule's startdate/end_date, and inside the header's own
  startdate/enddate where present;
- a line of a live invoice covers its client while it is not `isinactive`, today is inside its own
  dates, and it bills: `qty_order > 0`, or a calculated quantity type (HaloPSA computes the quantity
  at invoice time, so `qty_order` is often 0 on a billed line). A fixed line with 0 bills nothing;
- a line matches a rule's item by id (`_itemid`), by code (the item's codes or the line's own) or by
  name (the item's or the line's short description), case-insensitive, whitespace collapsed;
- inactive and excluded clients are never targets; a site scope limits sites, contracts, invoices
  and lines bound to a site.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.billing import ItemMatcher, contract_covers, invoice_live, line_bills
from shared.core.mapping import MatchKind, TenantMatch
from shared.core.rules import Rule, normalise
from shared.records.halo import (
    Client,
    Contract,
    Item,
    QuantityType,
    RecurringInvoice,
    RecurringInvoiceLine,
    Site,
    as_date,
)
from shared.records.immybot import ImmyTenant


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The HaloPSA records one sync read, indexed for resolution."""

    clients: Mapping[int, Client]
    sites: Mapping[int, Site]
    contracts: tuple[Contract, ...]
    invoices: tuple[RecurringInvoice, ...]
    items: Mapping[int, Item]
    sites_by_client: Mapping[int, tuple[Site, ...]] = field(default_factory=dict)
    tenants: Mapping[int, ImmyTenant] = field(default_factory=dict)
    matches: Mapping[int, TenantMatch] = field(default_factory=dict)
    immybot: bool = False

    @property
    def mapping_digest(self) -> str:
        """A digest of the client -> tenant mapping: resolved targets depend on it."""
        if not self.immybot:
            return "none"
        canonical = json.dumps(
            sorted((m.client_id, m.kind, m.tenant_id) for m in self.matches.values())
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def with_immybot(
        self, tenants: Iterable[ImmyTenant], matches: Mapping[int, TenantMatch]
    ) -> Snapshot:
        """The same records with ImmyBot's tenants and the client mapping."""
        return replace(
            self, tenants={t.id: t for t in tenants}, matches=dict(matches), immybot=True
        )

    @classmethod
    def build(
        cls,
        clients: Iterable[Client],
        sites: Iterable[Site],
        contracts: Iterable[Contract],
        invoices: Iterable[RecurringInvoice],
        items: Iterable[Item],
    ) -> Snapshot:
        """Index the records by id (and sites by client)."""
        site_map = {s.id: s for s in sites}
        by_client: dict[int, list[Site]] = defaultdict(list)
        for site in site_map.values():
            by_client[site.client_id].append(site)
        return cls(
            clients={c.id: c for c in clients},
            sites=site_map,
            contracts=tuple(contracts),
            invoices=tuple(invoices),
            items={i.id: i for i in items},
            sites_by_client={k: tuple(sorted(v, key=lambda s: s.id)) for k, v in by_client.items()},
        )


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SiteRef(_Model):
    """A site of a target client that is in the rule's scope."""

    id: int
    name: str


class ContractReason(_Model):
    """A contract that entitles the client to the software."""

    kind: Literal["contract"] = "contract"
    contract_id: int
    ref: str
    contract_type: str
    start_date: date | None
    end_date: date | None
    in_grace: bool = Field(description="Past its end date but inside the rule's grace days.")


QuantityKind = Literal["fixed", "calculated"]


class InvoiceLineReason(_Model):
    """A recurring invoice line that entitles the client to the software."""

    kind: Literal["invoice_line"] = "invoice_line"
    invoice_id: int
    line_id: int
    item_id: int | None
    item: str
    matched_by: str = Field(description="Which of the rule's item matches hit: id, code or name.")
    quantity_kind: QuantityKind = Field(
        description="fixed: typed on the line (qty_order); calculated: HaloPSA counts it at "
        "invoice time (licences, users, devices, subscriptions)."
    )
    quantity_type: str = Field(
        description="HaloPSA's quantity type: fixed, licences, users, devices or subscriptions."
    )
    quantity: float | None = Field(
        description="The billed quantity: qty_order for a fixed line, the last calculated value "
        "for a calculated line; null while HaloPSA has not calculated it yet (never 0 for that)."
    )
    unit_price: float
    start_date: date | None
    end_date: date | None


Reason = Annotated[ContractReason | InvoiceLineReason, Field(discriminator="kind")]


class Quantities(_Model):
    """Billed quantity of a target's matching lines, fixed and calculated kept apart."""

    fixed: float = Field(description="Sum of qty_order over fixed-quantity lines.")
    calculated: float = Field(description="Sum of the last calculated values of calculated lines.")
    calculated_unknown: int = Field(
        description="Calculated lines whose quantity HaloPSA has not calculated yet."
    )


def quantities_of(
    reasons: Iterable[ContractReason | InvoiceLineReason],
) -> tuple[Quantities, float | None]:
    """Fixed and calculated quantities over the invoice-line reasons, and their known total
    (None when no line's quantity is known: that is "calculated" or "contract", never 0)."""
    fixed = calculated = 0.0
    unknown = known = 0
    for reason in reasons:
        if not isinstance(reason, InvoiceLineReason):
            continue
        if reason.quantity is None:
            unknown += 1
            continue
        known += 1
        if reason.quantity_kind == "fixed":
            fixed += reason.quantity
        else:
            calculated += reason.quantity
    split = Quantities(fixed=fixed, calculated=calculated, calculated_unknown=unknown)
    return split, (fixed + calculated if known else None)


class Target(_Model):
    """A client entitled to the software, its billed quantity, and every reason."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None = Field(description="The mapped ImmyBot tenant; null if none.")
    immy_tenant_name: str | None
    mapping: MatchKind = Field(description="How the tenant was found, or why it was not.")
    sites: list[SiteRef]
    quantity: float | None = Field(
        description="Billed quantity over the matching invoice lines whose quantity is known "
        "(fixed + calculated); null when none is known (contract only, or calculated lines "
        "HaloPSA has not invoiced yet). See quantities for the split."
    )
    quantities: Quantities
    reasons: list[Reason]


class UnmappedClient(_Model):
    """A covered client with no ImmyBot tenant: the gap an ImmyBot admin must close."""

    client_id: int
    client_name: str
    mapping: MatchKind
    detail: str
    candidates: list[int] = Field(description="Tenants an ambiguous name matched.")


def unmapped_of(targets: Iterable[Target], snapshot: Snapshot) -> list[UnmappedClient]:
    """The targets ImmyBot cannot be told about (none when ImmyBot is not configured)."""
    if not snapshot.immybot:
        return []
    gaps = []
    for target in targets:
        if target.immy_tenant_id is None:
            match = snapshot.matches.get(target.client_id)
            gaps.append(
                UnmappedClient(
                    client_id=target.client_id,
                    client_name=target.client_name,
                    mapping=target.mapping,
                    detail=match.detail if match else "no ImmyBot tenant has this name",
                    candidates=list(match.candidates) if match else [],
                )
            )
    return gaps


class TargetCounts(_Model):
    """Totals over a rule's targets, for a quick check against billing."""

    targets: int
    quantity_fixed: float = Field(description="Fixed-quantity lines' qty_order, summed.")
    quantity_calculated: float = Field(
        description="Calculated lines' last calculated values, summed (known ones only)."
    )
    calculated_unknown: int = Field(
        description="Calculated lines whose quantity HaloPSA has not calculated yet."
    )
    by_contract: int = Field(description="Targets entitled by at least one contract.")
    by_invoice_line: int = Field(description="Targets entitled by at least one invoice line.")


def count_targets(targets: Iterable[Target]) -> TargetCounts:
    """Totals over `targets`."""
    found = list(targets)
    return TargetCounts(
        targets=len(found),
        quantity_fixed=sum(t.quantities.fixed for t in found),
        quantity_calculated=sum(t.quantities.calculated for t in found),
        calculated_unknown=sum(t.quantities.calculated_unknown for t in found),
        by_contract=sum(any(isinstance(r, ContractReason) for r in t.reasons) for t in found),
        by_invoice_line=sum(
            any(isinstance(r, InvoiceLineReason) for r in t.reasons) for t in found
        ),
    )


def line_reason(
    invoice: RecurringInvoice, line: RecurringInvoiceLine, item: Item | None, matched_by: str
) -> InvoiceLineReason:
    """The reason a line gives: which line, which item, and its fixed or calculated quantity."""
    return InvoiceLineReason(
        invoice_id=invoice.id,
        line_id=line.id,
        item_id=line.item_id,
        item=" ".join((line.item_shortdescription or (item.name if item else "")).split()),
        matched_by=matched_by,
        quantity_kind="calculated" if line.calculated else "fixed",
        quantity_type=QuantityType.name_of(line.recurring_invoice_quantity_type),
        quantity=line.known_quantity,
        unit_price=line.unit_price,
        start_date=as_date(line.startdate),
        end_date=as_date(line.enddate),
    )


def _site_ok(site_id: int | None, scope: frozenset[int] | None) -> bool:
    return scope is None or site_id is None or site_id in scope


@dataclass(frozen=True, slots=True)
class _Scope:
    """Which records a rule looks at: eligible clients and, for a site-scoped rule, its sites."""

    snapshot: Snapshot
    excluded: frozenset[int]
    sites: frozenset[int] | None

    def eligible(self, client_id: int) -> bool:
        client = self.snapshot.clients.get(client_id)
        return client is not None and not client.inactive and client_id not in self.excluded

    def site_ok(self, site_id: int | None) -> bool:
        return _site_ok(site_id, self.sites)


def resolve(snapshot: Snapshot, rule: Rule, today: date) -> list[Target]:
    """The targets of `rule` in `snapshot` on `today`, sorted by client name then id."""
    scope = _Scope(
        snapshot,
        frozenset(rule.exclude_clients),
        frozenset(rule.site_ids) if rule.site_ids is not None else None,
    )
    reasons: dict[int, list[ContractReason | InvoiceLineReason]] = defaultdict(list)
    for client_id, reason in _contract_reasons(scope, rule, today):
        reasons[client_id].append(reason)
    for client_id, line in _line_reasons(scope, rule, today):
        reasons[client_id].append(line)
    targets = [_target(scope, client_id, why) for client_id, why in reasons.items()]
    targets.sort(key=lambda t: (normalise(t.client_name), t.client_id))
    return targets


def _contract_reasons(
    scope: _Scope, rule: Rule, today: date
) -> Iterator[tuple[int, ContractReason]]:
    types = {normalise(t) for t in rule.contract_types}
    if not types:
        return
    for contract in scope.snapshot.contracts:
        if normalise(contract.contracttype_name) not in types:
            continue
        if not scope.eligible(contract.client_id) or not scope.site_ok(contract.site_id):
            continue
        covers, in_grace = contract_covers(contract, today, rule.grace_days)
        if covers:
            yield (
                contract.client_id,
                ContractReason(
                    contract_id=contract.id,
                    ref=contract.ref,
                    contract_type=contract.contracttype_name,
                    start_date=as_date(contract.start_date),
                    end_date=as_date(contract.end_date),
                    in_grace=in_grace,
                ),
            )


def _line_reasons(
    scope: _Scope, rule: Rule, today: date
) -> Iterator[tuple[int, InvoiceLineReason]]:
    if not rule.items:
        return
    matcher = ItemMatcher.of(rule)
    for invoice in scope.snapshot.invoices:
        if not scope.eligible(invoice.client_id) or not scope.site_ok(invoice.sitenumber):
            continue
        if not invoice_live(invoice, today):
            continue
        for line in invoice.lines:
            if not line_bills(line, today) or not scope.site_ok(line.site):
                continue
            item = scope.snapshot.items.get(line.item_id) if line.item_id is not None else None
            matched_by = matcher.match(line, item)
            if matched_by is not None:
                yield invoice.client_id, line_reason(invoice, line, item, matched_by)


def _target(scope: _Scope, client_id: int, why: list[ContractReason | InvoiceLineReason]) -> Target:
    snapshot = scope.snapshot
    match = snapshot.matches.get(client_id)
    kind = (
        match.kind
        if match
        else (MatchKind.UNMAPPED if snapshot.immybot else MatchKind.NOT_CONFIGURED)
    )
    sites = [
        SiteRef(id=s.id, name=s.name)
        for s in snapshot.sites_by_client.get(client_id, ())
        if not s.inactive and (scope.sites is None or s.id in scope.sites)
    ]
    split, known = quantities_of(why)
    return Target(
        client_id=client_id,
        client_name=snapshot.clients[client_id].name,
        immy_tenant_id=match.tenant_id if match else None,
        immy_tenant_name=match.tenant_name if match else None,
        mapping=kind,
        sites=sites,
        quantity=known,
        quantities=split,
        reasons=why,
    )
