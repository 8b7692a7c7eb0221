"""One client's coverage as the tab shows it: its active contracts, recurring items and the
software the current rules entitle it to, and why.

Each rule is resolved against this one client, with the same semantics as the targets API, so the
tab agrees with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.core.billing import contract_covers, line_covers
from shared.core.calendar import coverage_end
from shared.core.generation import ClientRecord, RuleEntry
from shared.core.targets import (
    ContractReason,
    InvoiceLineReason,
    Snapshot,
    Target,
    resolve,
)
from shared.records.halo import Item, QuantityType, as_date

EXPIRING_DAYS = 30


@dataclass(frozen=True, slots=True)
class ContractRow:
    """An active contract of the client."""

    ref: str
    contract_type: str
    start: date | None
    end: date | None
    expiring: bool
    in_grace: bool = False


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A recurring item billed to the client today."""

    item: str
    quantity: str  # "14", or "14 (users)" / "calculated (users)" for a calculated quantity
    invoice_id: int
    end: date | None
    expiring: bool


@dataclass(frozen=True, slots=True)
class SoftwareRow:
    """A software the client is entitled to under the current rules, and why."""

    software: str
    reasons: list[str]
    expiring: bool
    # When the entitlement itself ends within EXPIRING_DAYS (shared.core.calendar: grace days
    # counted, and a second cover that outlasts the first keeps it): the first day without it,
    # days until then, and what ends it.
    ends: date | None = None
    ends_in: int | None = None
    ends_why: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A software the client is entitled to, the display names that mean it is installed (none:
    installed is not known), the client as the rule's target (its billed quantity, its in-scope
    sites), and whether the rule is site-scoped (it reaches only computers at those sites)."""

    software: str
    patterns: tuple[str, ...]
    target: Target
    site_scoped: bool = False


@dataclass(frozen=True, slots=True)
class Coverage:
    """A client's rows, sorted for display, and the software to look for on its computers."""

    contracts: list[ContractRow]
    items: list[ItemRow]
    software: list[SoftwareRow]
    wanted: list[Wanted]


def quantity_text(quantity: float | None, quantity_type: str, *, calculated: bool) -> str:
    """A line's quantity for people: a calculated one says so, and is never shown as 0."""
    if not calculated:
        return f"{quantity or 0:g}"
    return (
        f"{quantity:g} ({quantity_type})"
        if quantity is not None
        else f"calculated ({quantity_type})"
    )


def coverage(
    record: ClientRecord, items: Mapping[int, Item], rules: Iterable[RuleEntry], today: date
) -> Coverage:
    """The client's coverage on `today` under `rules`, with its catalogue `items`."""
    soon = today + timedelta(days=EXPIRING_DAYS)
    software, wanted, in_grace = _software(record, items, rules, today, soon)
    contracts = _contract_rows(record, today, soon, in_grace)
    item_rows = _item_rows(record, items, today, soon)
    contracts.sort(key=lambda r: (r.end or date.max, r.ref))
    item_rows.sort(key=lambda r: r.item.casefold())
    return Coverage(contracts, item_rows, software, wanted)


def _software(
    record: ClientRecord,
    items: Mapping[int, Item],
    rules: Iterable[RuleEntry],
    today: date,
    soon: date,
) -> tuple[list[SoftwareRow], list[Wanted], set[int]]:
    """The software rows and what to look for, and the contracts a rule's grace days still count."""
    mini = Snapshot.build(
        [record.client], record.sites, record.contracts, record.invoices, items.values()
    )
    rows: list[SoftwareRow] = []
    wanted: list[Wanted] = []
    in_grace: set[int] = set()
    for entry in sorted(rules, key=lambda e: e.software.casefold()):
        found = resolve(mini, entry.rule, today)
        if not found:
            continue
        reasons = [_reason_text(reason) for reason in found[0].reasons]
        in_grace.update(
            r.contract_id for r in found[0].reasons if isinstance(r, ContractReason) and r.in_grace
        )
        end = coverage_end(mini, entry.rule, record.client.id, today, soon)
        rows.append(
            SoftwareRow(entry.software, reasons, False)
            if end is None
            else SoftwareRow(
                entry.software,
                reasons,
                True,
                end.ends_on,
                end.days,
                [e.describe() for e in end.why],
            )
        )
        wanted.append(
            Wanted(
                entry.software,
                tuple(entry.rule.detect_patterns),
                found[0],
                entry.rule.site_ids is not None,
            )
        )
    return rows, wanted, in_grace


def _reason_text(reason: ContractReason | InvoiceLineReason) -> str:
    if isinstance(reason, ContractReason):
        note = " in grace" if reason.in_grace else ""
        return f"contract {reason.ref or reason.contract_id} ({reason.contract_type}){note}"
    quantity = quantity_text(
        reason.quantity, reason.quantity_type, calculated=reason.quantity_kind == "calculated"
    )
    return f"{reason.item}, qty {quantity} (invoice {reason.invoice_id})"


def _contract_rows(
    record: ClientRecord, today: date, soon: date, in_grace: set[int]
) -> list[ContractRow]:
    sites = {s.id: s.name for s in record.sites}
    rows: list[ContractRow] = []
    for contract in record.contracts:
        covers, _ = contract_covers(contract, today)
        grace = not covers and contract.id in in_grace
        if not (covers or grace):
            continue
        end = as_date(contract.end_date)
        rows.append(
            ContractRow(
                ref=contract.ref,
                contract_type=contract.contracttype_name
                + (f" ({sites[contract.site_id]})" if contract.site_id in sites else ""),
                start=as_date(contract.start_date),
                end=end,
                expiring=end is not None and end <= soon,
                in_grace=grace,
            )
        )
    return rows


def _item_rows(
    record: ClientRecord, items: Mapping[int, Item], today: date, soon: date
) -> list[ItemRow]:
    rows: list[ItemRow] = []
    for invoice in record.invoices:
        for line in invoice.lines:
            if not line_covers(invoice, line, today):
                continue
            item = items.get(line.item_id) if line.item_id is not None else None
            schedule_end = as_date(invoice.schedule.end_date) if invoice.schedule else None
            end = as_date(line.enddate) or as_date(invoice.enddate) or schedule_end
            rows.append(
                ItemRow(
                    item=line.item_shortdescription.strip() or (item.name if item else "?"),
                    quantity=quantity_text(
                        line.known_quantity,
                        QuantityType.name_of(line.recurring_invoice_quantity_type),
                        calculated=line.calculated,
                    ),
                    invoice_id=invoice.id,
                    end=end,
                    expiring=end is not None and end <= soon,
                )
            )
    return rows
