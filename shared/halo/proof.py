"""Prove a report read against REST on the same instance, every run.

The SQL behind a report read rests on column guesses (shared.halo.report_sql says which). So each run
that reads through reports also reads a bounded REST sample: one page each of clients and sites,
every contract when they fit in a few pages (else one random page), every item likewise, and a
random handful of recurring invoices by id with their lines; then compares, record by record,
what decides coverage (DESIGN.md section 4) and what targets' reasons show, as the coverage code
sees it. Each disagreement is a Finding with ids and both values. Contract type names, which no
table holds, are taken from REST here: each `contracttype` the report found is named by a REST
contract of that type. The views and comparisons are pure: shared.core.record_comparison.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from shared.core.record_comparison import (
    Finding,
    Proof,
    client_view,
    compare_invoices,
    compare_records,
    contract_view,
    item_view,
    name_contract_types,
    site_view,
)
from shared.halo.client import CLIENT_LIST_PARAMS, HaloClient
from shared.halo.errors import HaloNotFound
from shared.halo.listing import Listing
from shared.halo.report import ReportListings
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site
from shared.records.parsing import parse_records

M = TypeVar("M", bound=BaseModel)

# Read a whole list when it fits in this many pages; else SAMPLE_PAGES pages drawn at random of
# contracts and recurring invoices (the records whose fields no column holds), one of the rest.
WHOLE_LIST_PAGES = 3
SAMPLE_PAGES = 2
# Contract types not seen in the sample are named by reading one contract of each by id, up to this.
TYPE_READS = 8
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
        """A sample of `GET /api/{resource}` (inactive records included; clients with their
        Entra tenants, as a sync lists them)."""
        numbers, every = self.pages(known, whole, draw)
        self.sent += len(numbers)
        params = CLIENT_LIST_PARAMS if resource == "Client" else {"includeinactive": "true"}
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
