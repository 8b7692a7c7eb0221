"""What ends next: per rule and client, the first day a target stops being one if nothing changes.

The calendar is the target resolution (`shared.core.targets.resolve`, DESIGN.md section 4) run
forward in time over the client's own records, so it keeps every rule of coverage exactly: grace
days after a contract's end, open ends (2099 and later) and dates before 1902 that are no date (as
the record models read them), invoice schedules and header dates, and a client covered twice ends
only when its last cover does. Coverage can change only on a record's boundary days (a start, the
day after an end, the day after an end plus grace), so those days are the only ones resolved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.rules import Rule, normalise
from shared.core.targets import ContractReason, InvoiceLineReason, Snapshot, resolve
from shared.records.halo import Contract, RecurringInvoice, as_date

DAY = timedelta(days=1)
EndKind = Literal["contract_end", "line_end", "invoice_end", "schedule_end"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Ending(_Model):
    """One cover the client still has on its last day, and the date that ends it."""

    ends_by: EndKind = Field(
        description="contract_end: the contract's end date plus the rule's grace days; line_end, "
        "invoice_end, schedule_end: the invoice line's end date, the recurring invoice's own "
        "end date, or its schedule's end date, whichever comes first."
    )
    contract_id: int | None = None
    contract_ref: str | None = None
    invoice_id: int | None = None
    line_id: int | None = None
    item: str | None = None
    end_date: date = Field(description="The record's end date.")
    grace_days: int = Field(description="The rule's grace days after a contract's end; else 0.")
    last_day: date = Field(description="The last day this cover counts: end_date + grace_days.")

    def describe(self) -> str:
        """The cover and its end, for people (CSV, the tab)."""
        if self.ends_by == "contract_end":
            grace = f" + {self.grace_days} grace days" if self.grace_days else ""
            return f"contract {self.contract_ref or self.contract_id} ends {self.end_date}{grace}"
        what = {
            "line_end": f"line {self.line_id} of invoice {self.invoice_id}",
            "invoice_end": f"invoice {self.invoice_id}",
            "schedule_end": f"the schedule of invoice {self.invoice_id}",
        }[self.ends_by]
        return f"{self.item}: {what} ends {self.end_date}"


class CoverageEnd(_Model):
    """A target whose coverage ends inside the window, if nothing changes in HaloPSA."""

    software: str
    client_id: int
    client_name: str
    ends_on: date = Field(description="The first day the client is no longer a target.")
    last_day: date = Field(description="The last day it is a target (ends_on - 1).")
    days: int = Field(description="Days from today to ends_on.")
    resumes_on: date | None = Field(
        description="A later day inside the window on which it is a target again (a cover that "
        "starts after a gap), else null."
    )
    why: list[Ending] = Field(description="Every cover it has on its last day, and its end.")


@dataclass(frozen=True, slots=True)
class _ClientRecords:
    contracts: list[Contract]
    invoices: list[RecurringInvoice]


@dataclass(frozen=True, slots=True)
class Boundaries:
    """The days on which a client's coverage may change: every start, and the day after every
    end; a contract's end also moves by a rule's grace days, so those ends are kept apart."""

    days: frozenset[date]
    contract_ends: tuple[date, ...]

    @classmethod
    def of(cls, snapshot: Snapshot) -> Boundaries:
        """The boundaries of every record in `snapshot` (one client's, usually)."""
        starts: list[datetime | None] = []
        ends: list[datetime | None] = []
        for contract in snapshot.contracts:
            starts.append(contract.start_date)
        for invoice in snapshot.invoices:
            starts.append(invoice.startdate)
            ends.append(invoice.enddate)
            if invoice.schedule is not None:
                starts.append(invoice.schedule.startdate)
                ends.append(invoice.schedule.end_date)
            for line in invoice.lines:
                starts.append(line.startdate)
                ends.append(line.enddate)
        contract_ends = tuple(
            day for day in (as_date(c.end_date) for c in snapshot.contracts) if day is not None
        )
        days = {day for day in map(as_date, starts) if day is not None}
        days.update(day + DAY for day in map(as_date, ends) if day is not None)
        days.update(day + DAY for day in contract_ends)
        return cls(frozenset(days), contract_ends)

    def inside(self, grace_days: int, today: date, until: date) -> list[date]:
        """The boundary days after `today` up to `until`, for a rule with `grace_days`, sorted."""
        days = set(self.days)
        if grace_days:
            days.update(end + DAY * (grace_days + 1) for end in self.contract_ends)
        return sorted(d for d in days if today < d <= until)


def coverage_ends(
    snapshot: Snapshot, rules: Iterable[Rule], today: date, until: date
) -> list[CoverageEnd]:
    """Every target of `rules` on `today` whose coverage ends on a day up to `until`, soonest
    first (then by software and client name)."""
    by_client: dict[int, _ClientRecords] = defaultdict(lambda: _ClientRecords([], []))
    for contract in snapshot.contracts:
        by_client[contract.client_id].contracts.append(contract)
    for invoice in snapshot.invoices:
        by_client[invoice.client_id].invoices.append(invoice)
    found: list[CoverageEnd] = []
    chosen = list(rules)
    for client_id, records in by_client.items():
        if client_id not in snapshot.clients:
            continue  # records of a client the read rejected cover nobody
        # Resolving one client's records is resolving the snapshot for that client; and a
        # client with no boundary day in the window is skipped before any resolving at all.
        alone = client_view(snapshot, client_id, records.contracts, records.invoices)
        bounds = Boundaries.of(alone)
        for rule in chosen:
            end = coverage_end(alone, rule, client_id, today, until, bounds)
            if end is not None:
                found.append(end)
    found.sort(
        key=lambda e: (e.ends_on, normalise(e.software), normalise(e.client_name), e.client_id)
    )
    return found


def client_view(
    snapshot: Snapshot,
    client_id: int,
    contracts: Iterable[Contract],
    invoices: Iterable[RecurringInvoice],
) -> Snapshot:
    """One client's part of a snapshot (its records, all items): resolving it is resolving the
    whole snapshot for that client, at a fraction of the cost."""
    return Snapshot(
        clients={client_id: snapshot.clients[client_id]},
        sites={s.id: s for s in snapshot.sites_by_client.get(client_id, ())},
        contracts=tuple(contracts),
        invoices=tuple(invoices),
        items=snapshot.items,
        sites_by_client={client_id: snapshot.sites_by_client.get(client_id, ())},
    )


def coverage_end(
    alone: Snapshot,
    rule: Rule,
    client_id: int,
    today: date,
    until: date,
    bounds: Boundaries | None = None,
) -> CoverageEnd | None:
    """When `client_id`, a target of `rule` on `today`, stops being one on a day up to `until`,
    and why; None when it is not a target today or stays one through `until`.

    `alone` holds the client's records (a `client_view`, or any snapshot that has them), and
    `bounds` their boundaries when the caller has them already.
    """

    def covered(day: date) -> bool:
        return any(t.client_id == client_id for t in resolve(alone, rule, day))

    days = (bounds or Boundaries.of(alone)).inside(rule.grace_days, today, until)
    # No boundary in the window: coverage cannot change, so it cannot end (the common case).
    if not days or not covered(today):
        return None
    ends_on = next((d for d in days if not covered(d)), None)
    if ends_on is None:
        return None
    last_day = ends_on - DAY
    [target] = [t for t in resolve(alone, rule, last_day) if t.client_id == client_id]
    invoices = {i.id: i for i in alone.invoices}
    return CoverageEnd(
        software=rule.software,
        client_id=client_id,
        client_name=target.client_name,
        ends_on=ends_on,
        last_day=last_day,
        days=(ends_on - today).days,
        resumes_on=next((d for d in days if d > ends_on and covered(d)), None),
        why=[_ending(r, rule.grace_days, invoices, last_day) for r in target.reasons],
    )


def _ending(
    reason: ContractReason | InvoiceLineReason,
    grace_days: int,
    invoices: Mapping[int, RecurringInvoice],
    last_day: date,
) -> Ending:
    """What ends a cover the client has on `last_day` (its last day as a target)."""
    if isinstance(reason, ContractReason):
        end = reason.end_date or last_day  # an open contract cannot end; kept total regardless
        return Ending(
            ends_by="contract_end",
            contract_id=reason.contract_id,
            contract_ref=reason.ref or None,
            end_date=end,
            grace_days=grace_days,
            last_day=end + DAY * grace_days,
        )
    invoice = invoices[reason.invoice_id]
    schedule_end = invoice.schedule.end_date if invoice.schedule is not None else None
    # The line's own end first, then the header's, then the schedule's: on a tie the narrowest.
    candidates: tuple[tuple[date | None, EndKind], ...] = (
        (reason.end_date, "line_end"),
        (as_date(invoice.enddate), "invoice_end"),
        (as_date(schedule_end), "schedule_end"),
    )
    ends = [(day, kind) for day, kind in candidates if day is not None]
    end, kind = min(ends, key=lambda pair: pair[0]) if ends else (last_day, "line_end")
    return Ending(
        ends_by=kind,
        invoice_id=reason.invoice_id,
        line_id=reason.line_id,
        item=reason.item,
        end_date=end,
        grace_days=0,
        last_day=end,
    )
