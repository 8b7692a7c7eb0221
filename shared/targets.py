"""Pure target resolution: (snapshot, rule, today) -> the clients entitled to a software, and why.

The semantics are DESIGN.md section 4:
- a contract covers its client while `active`, started (start <= today, no start = started) and not
  past its end plus the rule's grace days (no end = open). HaloPSA sets `expired` once the end date
  passes; inside the grace window that flag is expected and ignored, outside it (or with no end
  date at all) it is decisive;
- a recurring invoice line covers its client while the invoice is not `disabled` and inside its own
  start/end, the line is not `isinactive`, has `qty_order > 0`, and today is inside the line's dates;
- inactive clients and excluded clients are never targets; a site scope limits sites, contracts and
  invoices bound to a site.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.halo_models import (
    Client,
    Contract,
    Item,
    RecurringInvoice,
    RecurringInvoiceLine,
    Site,
    as_date,
)
from shared.immy_models import ImmyTenant
from shared.mapping import MatchKind, TenantMatch
from shared.rules import Rule, normalise


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


class InvoiceLineReason(_Model):
    """A recurring invoice line that entitles the client to the software."""

    kind: Literal["invoice_line"] = "invoice_line"
    invoice_id: int
    line_id: int
    item_id: int | None
    item: str
    matched_by: str = Field(description="Which of the rule's item matches hit: id, code or name.")
    quantity: float
    unit_price: float
    start_date: date | None
    end_date: date | None


Reason = Annotated[ContractReason | InvoiceLineReason, Field(discriminator="kind")]


class Target(_Model):
    """A client entitled to the software, its billed quantity, and every reason."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None = Field(description="The mapped ImmyBot tenant; null if none.")
    immy_tenant_name: str | None
    mapping: MatchKind = Field(description="How the tenant was found, or why it was not.")
    sites: list[SiteRef]
    quantity: float = Field(description="Sum of qty_order over the matching invoice lines.")
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
    quantity: float = Field(description="Billed quantity summed over every target.")
    by_contract: int = Field(description="Targets entitled by at least one contract.")
    by_invoice_line: int = Field(description="Targets entitled by at least one invoice line.")


def count_targets(targets: Iterable[Target]) -> TargetCounts:
    """Totals over `targets`."""
    found = list(targets)
    return TargetCounts(
        targets=len(found),
        quantity=sum(t.quantity for t in found),
        by_contract=sum(any(isinstance(r, ContractReason) for r in t.reasons) for t in found),
        by_invoice_line=sum(
            any(isinstance(r, InvoiceLineReason) for r in t.reasons) for t in found
        ),
    )


def contract_covers(contract: Contract, today: date, grace_days: int = 0) -> tuple[bool, bool]:
    """(covers, in_grace) for a contract on `today`."""
    start, end = as_date(contract.start_date), as_date(contract.end_date)
    if not contract.active:
        return False, False
    if start is not None and start > today:
        return False, False
    if end is None:
        return not contract.expired, False
    if today <= end:
        return True, False
    in_grace = today <= end + timedelta(days=grace_days)
    return in_grace, in_grace


def _inside(today: date, start: datetime | None, end: datetime | None) -> bool:
    first, last = as_date(start), as_date(end)
    return (first is None or first <= today) and (last is None or today <= last)


def line_covers(invoice: RecurringInvoice, line: RecurringInvoiceLine, today: date) -> bool:
    """Whether a recurring invoice line bills its client on `today`."""
    return (
        not invoice.disabled
        and _inside(today, invoice.startdate, invoice.enddate)
        and not line.isinactive
        and line.qty_order > 0
        and _inside(today, line.startdate, line.enddate)
    )


@dataclass(frozen=True, slots=True)
class _ItemMatcher:
    ids: frozenset[int]
    codes: Mapping[str, str]
    names: Mapping[str, str]

    @classmethod
    def of(cls, rule: Rule) -> _ItemMatcher:
        return cls(
            ids=frozenset(m.id for m in rule.items if m.id is not None),
            codes={normalise(m.code): m.describe() for m in rule.items if m.code},
            names={normalise(m.name): m.describe() for m in rule.items if m.name},
        )

    def match(self, line: RecurringInvoiceLine, item: Item | None) -> str | None:
        if line.item_id is not None and line.item_id in self.ids:
            return f"id {line.item_id}"
        codes = [line.item_code]
        if item is not None:
            codes += [item.internalreference, item.externalreference, item.supplier_part_code]
        for code in codes:
            hit = self.codes.get(normalise(code)) if code else None
            if hit:
                return hit
        for name in (line.item_shortdescription, item.name if item else ""):
            hit = self.names.get(normalise(name)) if name else None
            if hit:
                return hit
        return None


def _site_ok(site_id: int | None, scope: frozenset[int] | None) -> bool:
    return scope is None or site_id is None or site_id in scope


def resolve(snapshot: Snapshot, rule: Rule, today: date) -> list[Target]:
    """The targets of `rule` in `snapshot` on `today`, sorted by client name then id."""
    types = {normalise(t) for t in rule.contract_types}
    matcher = _ItemMatcher.of(rule)
    excluded = set(rule.exclude_clients)
    scope = frozenset(rule.site_ids) if rule.site_ids is not None else None
    reasons: dict[int, list[ContractReason | InvoiceLineReason]] = defaultdict(list)
    quantity: dict[int, float] = defaultdict(float)

    def eligible(client_id: int) -> bool:
        client = snapshot.clients.get(client_id)
        return client is not None and not client.inactive and client_id not in excluded

    if types:
        for contract in snapshot.contracts:
            if normalise(contract.contracttype_name) not in types:
                continue
            if not eligible(contract.client_id) or not _site_ok(contract.site_id, scope):
                continue
            covers, in_grace = contract_covers(contract, today, rule.grace_days)
            if covers:
                reasons[contract.client_id].append(
                    ContractReason(
                        contract_id=contract.id,
                        ref=contract.ref,
                        contract_type=contract.contracttype_name,
                        start_date=as_date(contract.start_date),
                        end_date=as_date(contract.end_date),
                        in_grace=in_grace,
                    )
                )
    if rule.items:
        for invoice in snapshot.invoices:
            if not eligible(invoice.client_id) or not _site_ok(invoice.sitenumber, scope):
                continue
            for line in invoice.lines:
                if not line_covers(invoice, line, today):
                    continue
                item = snapshot.items.get(line.item_id) if line.item_id is not None else None
                matched_by = matcher.match(line, item)
                if matched_by is None:
                    continue
                quantity[invoice.client_id] += line.qty_order
                reasons[invoice.client_id].append(
                    InvoiceLineReason(
                        invoice_id=invoice.id,
                        line_id=line.id,
                        item_id=line.item_id,
                        item=line.item_shortdescription or (item.name if item else ""),
                        matched_by=matched_by,
                        quantity=line.qty_order,
                        unit_price=line.unit_price,
                        start_date=as_date(line.startdate),
                        end_date=as_date(line.enddate),
                    )
                )
    targets = []
    for client_id, why in reasons.items():
        client = snapshot.clients[client_id]
        match = snapshot.matches.get(client_id)
        kind = (
            match.kind
            if match
            else (MatchKind.UNMAPPED if snapshot.immybot else MatchKind.NOT_CONFIGURED)
        )
        sites = [
            SiteRef(id=s.id, name=s.name)
            for s in snapshot.sites_by_client.get(client_id, ())
            if not s.inactive and (scope is None or s.id in scope)
        ]
        targets.append(
            Target(
                client_id=client_id,
                client_name=client.name,
                immy_tenant_id=match.tenant_id if match else None,
                immy_tenant_name=match.tenant_name if match else None,
                mapping=kind,
                sites=sites,
                quantity=quantity.get(client_id, 0.0),
                reasons=why,
            )
        )
    targets.sort(key=lambda t: (normalise(t.client_name), t.client_id))
    return targets
