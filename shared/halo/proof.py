"""Prove a report read against REST on the same instance, every run.

The SQL behind a report read rests on column guesses (shared.halo.report says which). So each run
that reads through reports also reads a bounded REST sample: one page each of clients and sites,
every contract when they fit in a few pages (else one random page), every item likewise, and a
random handful of recurring invoices by id with their lines; then compares, record by record,
what decides coverage (DESIGN.md section 4) and what targets' reasons show, as the coverage code
sees it. Each disagreement is a Finding with ids and both values. Contract type names, which no
table holds, are taken from REST here: each `contracttype` the report found is named by a REST
contract of that type.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from shared.halo.client import HaloClient, Listing
from shared.halo.errors import HaloNotFound
from shared.halo.report import ReportListings
from shared.records.halo import (
    Client,
    Contract,
    Item,
    RecurringInvoice,
    RecurringInvoiceLine,
    Site,
    as_date,
    parse_records,
)

M = TypeVar("M", bound=BaseModel)

# Read a whole list when it fits in this many pages; else SAMPLE_PAGES pages drawn at random of
# contracts and recurring invoices (the records whose fields no column holds), one of the rest.
WHOLE_LIST_PAGES = 3
SAMPLE_PAGES = 2
# Contract types not seen in the sample are named by reading one contract of each by id, up to this.
TYPE_READS = 8
# A run record keeps this many findings in full (and the count of all).
FINDINGS_KEPT = 20
_VALUE_CHARS = 80


@dataclass(frozen=True, slots=True)
class Finding:
    """One field on which the report read and REST disagree (or that REST could not confirm)."""

    kind: str
    record_id: str
    field: str
    report: str
    rest: str

    def text(self) -> str:
        """One line for the run record: ids and both values."""
        return f"{self.kind} {self.record_id} {self.field}: report {self.report}, REST {self.rest}"


@dataclass(frozen=True, slots=True)
class Proof:
    """What the REST sample showed: findings, records compared per type, requests it cost."""

    findings: tuple[Finding, ...] = ()
    compared: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0

    def record(self) -> dict[str, Any]:
        """The proof as a run record stores it (bounded)."""
        return {
            "compared": dict(self.compared),
            "requests": self.requests,
            "findings": len(self.findings),
            "samples": [f.text() for f in self.findings[:FINDINGS_KEPT]],
        }


def _shown(value: Any) -> str:
    text = "none" if value is None else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def _differences(
    kind: str, record_id: Any, report: Mapping[str, Any], rest: Mapping[str, Any]
) -> list[Finding]:
    return [
        Finding(kind, str(record_id), name, _shown(report.get(name)), _shown(rest.get(name)))
        for name in sorted(set(report) | set(rest))
        if report.get(name) != rest.get(name)
    ]


# -- what coverage sees of each record (DESIGN.md section 4) -------------------------------


def _ref(value: int | None) -> int | None:
    # "Not set" in a reference is -1, 0 or -2.
    return value if value is not None and value > 0 else None


def _text(value: str) -> str:
    # Exact but for runs of whitespace: targets' reasons show these texts as they are, so a
    # difference in case is a difference too (matching alone would not care).
    return " ".join(value.split())


def client_view(client: Client) -> dict[str, Any]:
    """A client's coverage fields: its name (mapping by name) and whether it is inactive."""
    return {"name": _text(client.name), "inactive": client.inactive}


def site_view(site: Site) -> dict[str, Any]:
    """A site's fields: the client it belongs to (site scopes), its name, whether inactive."""
    return {"client_id": site.client_id, "name": _text(site.name), "inactive": site.inactive}


def contract_view(contract: Contract, today: date) -> dict[str, Any]:
    """A contract's coverage fields, and those its reasons show; `expired` only while in date
    (past its end only the dates and the grace window decide)."""
    end = as_date(contract.end_date)
    view: dict[str, Any] = {
        "client_id": contract.client_id,
        "ref": _text(contract.ref),
        "site_id": _ref(contract.site_id),
        "active": contract.active,
        "contracttype": contract.contracttype,
        "contracttype_name": _text(contract.contracttype_name),
        "start_date": as_date(contract.start_date),
        "end_date": end,
    }
    if end is None or today <= end:
        view["expired"] = contract.expired
    return view


def _window(starts: Iterable[datetime | None], ends: Iterable[datetime | None]) -> str:
    first = max((d for d in map(as_date, starts) if d is not None), default=None)
    last = min((d for d in map(as_date, ends) if d is not None), default=None)
    return f"{first or 'open'}..{last or 'open'}"


def invoice_view(invoice: RecurringInvoice) -> dict[str, Any]:
    """A recurring invoice's coverage fields: client, site, whether it is switched off (header or
    schedule) and the dates it runs between (header and schedule together)."""
    schedule = invoice.schedule
    return {
        "client_id": invoice.client_id,
        "sitenumber": _ref(invoice.sitenumber),
        "switched_off": invoice.disabled or bool(schedule and schedule.disabled),
        "runs": _window(
            (invoice.startdate, schedule.startdate if schedule else None),
            (invoice.enddate, schedule.end_date if schedule else None),
        ),
        "lines": sorted(line.id for line in invoice.lines),
    }


def line_view(line: RecurringInvoiceLine) -> dict[str, Any]:
    """A line's coverage fields: what it links to, its own codes and text, whether it bills, and
    the quantity and price its reason shows."""
    return {
        "_itemid": _ref(line.item_id),
        "item_code": _text(line.item_code),
        "item_internal_reference": _text(line.item_internal_reference),
        "item_external_reference": _text(line.item_external_reference),
        "item_shortdescription": _text(line.item_shortdescription),
        "isinactive": line.isinactive,
        "qty_order": round(line.qty_order, 6),
        "unit_price": round(line.unit_price, 6),
        "recurring_invoice_quantity_type": line.recurring_invoice_quantity_type,
        "site": _ref(line.site),
        "runs": _window((line.startdate,), (line.enddate,)),
    }


def item_view(item: Item) -> dict[str, Any]:
    """An item's coverage fields: the name and codes a rule matches on."""
    return {
        "name": _text(item.name),
        "supplier_part_code": _text(item.supplier_part_code),
        "internalreference": _text(item.internalreference),
        "externalreference": _text(item.externalreference),
    }


# -- comparison ------------------------------------------------------------------------------


def compare_records(
    kind: str,
    report: Iterable[Any],
    rest: Iterable[Any],
    view: Any,
    *,
    whole: bool = False,
) -> tuple[list[Finding], int]:
    """Findings for every REST record whose view differs from the report's record of that id, or
    that the report does not have; with `whole` (REST listed them all) also for every report
    record REST does not list (reports see past the agent's teams); and how many were compared."""
    by_id = {record.id: record for record in report}
    findings: list[Finding] = []
    compared = 0
    listed = set()
    for record in rest:
        compared += 1
        listed.add(record.id)
        mine = by_id.get(record.id)
        if mine is None:
            findings.append(Finding(kind, str(record.id), "record", "missing", "present"))
            continue
        findings += _differences(kind, record.id, view(mine), view(record))
    if whole:
        findings += [
            Finding(kind, str(key), "record", "present", "missing")
            for key in sorted(set(by_id) - listed, key=str)
        ]
    return findings, compared


def compare_invoices(
    report: Iterable[RecurringInvoice], rest: Iterable[RecurringInvoice]
) -> tuple[list[Finding], int]:
    """Invoice headers, then each line both sides hold, compared as coverage sees them."""
    findings, compared = compare_records("invoice", report, rest, invoice_view)
    by_id = {invoice.id: invoice for invoice in report}
    for invoice in rest:
        mine = by_id.get(invoice.id)
        if mine is not None:
            lines, _ = compare_records("invoice_line", mine.lines, invoice.lines, line_view)
            findings += [f for f in lines if f.field != "record"]  # the header names those
    return findings, compared


def name_contract_types(
    contracts: Sequence[Contract], named_by_rest: Iterable[Contract]
) -> tuple[list[Contract], list[Finding]]:
    """The report's contracts with `contracttype_name` from REST contracts of the same type;
    a type REST names two ways, or not at all, is a finding."""
    names: dict[int | None, str] = {}
    findings = []
    for contract in named_by_rest:
        known = names.setdefault(contract.contracttype, contract.contracttype_name)
        if known != contract.contracttype_name:
            findings.append(
                Finding(
                    "contract_type",
                    str(contract.contracttype),
                    "contracttype_name",
                    _shown(known),
                    _shown(contract.contracttype_name),
                )
            )
    unnamed = sorted({str(c.contracttype) for c in contracts if c.contracttype not in names})
    findings += [
        Finding("contract_type", t, "contracttype_name", "none", "not read") for t in unnamed
    ]
    named = [
        c.model_copy(update={"contracttype_name": names.get(c.contracttype, "")}) for c in contracts
    ]
    return named, findings


# -- the sample ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Listed(Generic[M]):
    """A REST sample of one list: its records, whether they are the whole list, and the list's
    `record_count` as HaloPSA gave it (None when it gave none)."""

    records: list[M]
    whole: bool
    count: int | None


@dataclass(slots=True)
class _Sampler:
    halo: HaloClient
    rng: random.Random
    sent: int = 0

    def pages(self, known: int, whole: int, draw: int) -> tuple[list[int], bool]:
        """Which pages to read: all when `known` records fit in `whole` pages, else `draw`
        distinct pages at random; and whether that is all of them."""
        pages = max(1, math.ceil(known / max(1, self.halo.page_size)))
        if pages <= whole:
            return list(range(1, pages + 1)), True
        return sorted(self.rng.sample(range(1, pages + 1), min(draw, pages))), False

    async def listing(
        self, resource: str, key: str, model: type[M], known: int, *, whole: int, draw: int
    ) -> _Listed[M]:
        """A sample of `GET /api/{resource}` (inactive records included)."""
        numbers, every = self.pages(known, whole, draw)
        self.sent += len(numbers)
        params = {"includeinactive": "true"}
        answers = await asyncio.gather(
            *(self.halo.list_page(resource, key, model, n, params) for n in numbers)
        )
        return _listed(answers, every)

    async def invoices(self, known: int) -> _Listed[RecurringInvoice]:
        """A sample of the recurring invoices with their lines."""
        numbers, every = self.pages(known, WHOLE_LIST_PAGES, SAMPLE_PAGES)
        answers = await asyncio.gather(*(self.halo.invoice_page(n) for n in numbers))
        self.sent += len(numbers) + sum(listing.lines_fetched_by_id for listing, _ in answers)
        return _listed(answers, every)

    async def contracts_by_id(self, ids: Sequence[int]) -> list[Contract]:
        self.sent += len(ids)
        found = await asyncio.gather(*(self._contract(n) for n in ids))
        return [contract for contract in found if contract is not None]

    async def _contract(self, contract_id: int) -> Contract | None:
        path = f"/api/ClientContract/{int(contract_id)}"
        try:
            body = await self.halo.get_json(path, {}, resource="ClientContract")
        except HaloNotFound:
            return None  # deleted since the report read
        parsed = parse_records(Contract, [body], kind="ClientContract")
        return parsed.records[0] if parsed.records else None


def _listed(answers: Sequence[tuple[Listing[M], int | None]], every: bool) -> _Listed[M]:
    records = [record for listing, _ in answers for record in listing.records]
    counts = [count for _, count in answers if count is not None]
    return _Listed(records, every, max(counts) if counts else None)


def sample_rng() -> random.Random:
    """A fresh generator for one run's sample (tests replace this to fix the sample)."""
    return random.Random()  # noqa: S311 - which records to compare, not a secret


def _count(listing: Listing[Any]) -> int:
    # Records read, valid or not (a rejected line is counted with its invoice, not as a record).
    return len(listing.records) + sum(r.kind != "invoice_lines" for r in listing.rejects)


async def prove(
    halo: HaloClient, found: ReportListings, *, today: date, rng: random.Random | None = None
) -> tuple[ReportListings, Proof]:
    """`found` with its contract types named from REST, and the proof of it against a REST
    sample of the same instance: record by record, and each list's size against its count."""
    sampler = _Sampler(halo, rng or sample_rng())
    clients, sites, contracts, items, invoices = await asyncio.gather(
        sampler.listing("Client", "clients", Client, _count(found.clients), whole=1, draw=1),
        sampler.listing("Site", "sites", Site, _count(found.sites), whole=1, draw=1),
        sampler.listing(
            "ClientContract",
            "contracts",
            Contract,
            _count(found.contracts),
            whole=WHOLE_LIST_PAGES,
            draw=SAMPLE_PAGES,
        ),
        sampler.listing("Item", "items", Item, _count(found.items), whole=WHOLE_LIST_PAGES, draw=1),
        sampler.invoices(_count(found.invoices)),
    )
    seen = {c.contracttype for c in contracts.records}
    first_of_type: dict[int | None, int] = {}
    for contract in found.contracts.records:
        if contract.contracttype not in seen:
            first_of_type.setdefault(contract.contracttype, contract.id)
    extra = await sampler.contracts_by_id(list(first_of_type.values())[:TYPE_READS])
    named, findings = name_contract_types(found.contracts.records, [*contracts.records, *extra])
    found = replace(found, contracts=replace(found.contracts, records=named))
    compared: dict[str, int] = {}
    for kind, result in _comparisons(
        found, clients, sites, contracts, extra, items, invoices, today
    ):
        findings += result[0]
        compared[kind] = result[1]
    return found, Proof(tuple(findings), compared, sampler.sent)


def _comparisons(
    found: ReportListings,
    clients: _Listed[Client],
    sites: _Listed[Site],
    contracts: _Listed[Contract],
    extra: list[Contract],
    items: _Listed[Item],
    invoices: _Listed[RecurringInvoice],
    today: date,
) -> list[tuple[str, tuple[list[Finding], int]]]:
    def contract(c: Contract) -> dict[str, Any]:
        return contract_view(c, today)

    return [
        ("clients", _compared("client", found.clients, clients, client_view)),
        ("sites", _compared("site", found.sites, sites, site_view)),
        ("contracts", _compared("contract", found.contracts, contracts, contract, extra)),
        ("items", _compared("item", found.items, items, item_view)),
        ("invoices", _compared_invoices(found.invoices, invoices)),
    ]


def _compared(
    kind: str, report: Listing[Any], rest: _Listed[Any], view: Any, extra: Sequence[Any] = ()
) -> tuple[list[Finding], int]:
    findings, compared = compare_records(
        kind, report.records, [*rest.records, *extra], view, whole=rest.whole
    )
    return _counted(kind, report, rest) + findings, compared


def _compared_invoices(
    report: Listing[RecurringInvoice], rest: _Listed[RecurringInvoice]
) -> tuple[list[Finding], int]:
    findings, compared = compare_invoices(report.records, rest.records)
    if rest.whole:
        listed = {invoice.id for invoice in rest.records}
        findings += [
            Finding("invoice", str(i.id), "record", "present", "missing")
            for i in report.records
            if i.id not in listed
        ]
    return _counted("invoice", report, rest) + findings, compared


def _counted(kind: str, report: Listing[Any], rest: _Listed[Any]) -> list[Finding]:
    """A finding when HaloPSA's REST count of a list is not the number the report read: records
    one side has and the other has not (the agent's teams, a filter, a lost row)."""
    mine = _count(report)
    if rest.count is None or rest.count == mine:
        return []
    return [Finding(kind, "*", "record_count", str(mine), str(rest.count))]
