"""What bills on a day: contracts in date (or in a rule's grace), live recurring invoices and
their billing lines, and which of a rule's item matches a line hits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.core.rules import Rule, normalise
from shared.records.halo import Contract, Item, RecurringInvoice, RecurringInvoiceLine, as_date


def contract_covers(contract: Contract, today: date, grace_days: int = 0) -> tuple[bool, bool]:
    """(covers, in_grace) for a contract on `today`."""
    start, end = as_date(contract.start_date), as_date(contract.end_date)
    if not contract.active or (start is not None and start > today):
        return False, False
    if end is None or today <= end:
        # HaloPSA's own verdict stands while the contract is in date: an admin may expire it early.
        return not contract.expired, False
    # Past its end: `expired` is what HaloPSA sets now, so only the grace window decides.
    in_grace = today <= end + timedelta(days=grace_days)
    return in_grace, in_grace


def _inside(today: date, start: datetime | None, end: datetime | None) -> bool:
    first, last = as_date(start), as_date(end)
    return (first is None or first <= today) and (last is None or today <= last)


def invoice_live(invoice: RecurringInvoice, today: date) -> bool:
    """Whether a recurring invoice runs on `today`: not disabled, inside its schedule and dates."""
    schedule = invoice.schedule
    if invoice.disabled or not _inside(today, invoice.startdate, invoice.enddate):
        return False
    return schedule is None or (
        not schedule.disabled and _inside(today, schedule.startdate, schedule.end_date)
    )


def line_bills(line: RecurringInvoiceLine, today: date) -> bool:
    """Whether a line of a live invoice bills on `today`: active, in date, and a quantity that
    bills (above 0, or calculated by HaloPSA at invoice time)."""
    return (
        not line.isinactive
        and (line.qty_order > 0 or line.calculated)
        and _inside(today, line.startdate, line.enddate)
    )


def line_covers(invoice: RecurringInvoice, line: RecurringInvoiceLine, today: date) -> bool:
    """Whether a recurring invoice line bills its client on `today`."""
    return invoice_live(invoice, today) and line_bills(line, today)


@dataclass(frozen=True, slots=True)
class ItemMatcher:
    """A rule's item matches, indexed: which (if any) a line hits, and how it is described."""

    ids: frozenset[int]
    codes: Mapping[str, str]
    names: Mapping[str, str]

    @classmethod
    def of(cls, rule: Rule) -> ItemMatcher:
        """The matcher of a rule's `items`."""
        return cls(
            ids=frozenset(m.id for m in rule.items if m.id is not None),
            codes={normalise(m.code): m.describe() for m in rule.items if m.code},
            names={normalise(m.name): m.describe() for m in rule.items if m.name},
        )

    def match(self, line: RecurringInvoiceLine, item: Item | None) -> str | None:
        """How the line hits the rule (by id, code or name), or None."""
        if line.item_id is not None and line.item_id in self.ids:
            return f"id {line.item_id}"
        codes = [line.item_code, line.item_internal_reference, line.item_external_reference]
        if item is not None:
            codes += [item.supplier_part_code, item.internalreference, item.externalreference]
        for code in codes:
            hit = self.codes.get(normalise(code)) if code else None
            if hit:
                return hit
        for name in (item.name if item else "", line.item_shortdescription):
            hit = self.names.get(normalise(name)) if name else None
            if hit:
                return hit
        return None
