"""Read a sync's HaloPSA records with a handful of SQL reports instead of hundreds of REST pages.

HaloPSA runs one SELECT per `POST /api/Report` (`HaloClient.report`) and answers every value as a
string; shared.halo.report_rows turns the rows back into the REST API's JSON shapes, so both reads
go through the same pydantic models and the same coverage code. A report read is never trusted
alone: shared.halo.proof compares it with a REST sample of the same instance on every run.

A read is: one SELECT of row counts and key bounds, then one SELECT per table per key range, each
range sized to about `max_rows` rows (HaloPSA documents no row cap and pages nothing, so a big
table is split by key range, never by TOP/OFFSET). A range that meets HaloPSA's gateway deadline
(504 or a read timeout) is split in two, down to `MIN_ROWS_PER_ANSWER`; the rows read per table
are checked against the counts of the bounds query. Ranges filter and split on the same key. The
SQL and the columns it relies on: shared.halo.report_sql.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.halo.client import HaloClient
from shared.halo.errors import (
    HaloAuthError,
    HaloNotFound,
    HaloProtocolError,
    HaloReportTimeout,
    HaloRequestError,
)
from shared.halo.listing import Listing, parse_listing
from shared.halo.report_rows import (
    as_int,
    by_id_order,
    client_record,
    contract_record,
    entra_tenant_record,
    invoice_record,
    item_record,
    line_record,
    lower_keys,
    site_record,
    with_entra_tenants,
    with_lines,
)
from shared.halo.report_sql import (
    PROBE_SQL,
    TABLES,
    Bounds,
    ReportTable,
    bounds_sql,
    id_ranges,
    range_sql,
)
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("halo_immy.halo_report")


class ReadMode(StrEnum):
    """How a sync reads HaloPSA (setting HALO_READ_MODE)."""

    AUTO = "auto"  # report, proven against REST; REST when reports fail or disagree
    REPORT = "report"
    REST = "rest"


# Rows asked of one answer. HaloPSA documents no cap; at about 300 bytes a row this keeps an answer
# near 3 MB, and a 20,000-client sync near 30 requests.
MAX_ROWS_PER_ANSWER = 10_000
# A range that still meets the gateway deadline when it spans this many keys, or after this many
# halvings, is not split further: the report path cannot answer, and the run reads through REST
# (auto) or fails (report).
MIN_ROWS_PER_ANSWER = 250
MAX_SPLIT_DEPTH = 20
# Reports run on HaloPSA's database: a few at a time, not a burst.
CONCURRENT_REPORTS = 3


# -- the read -------------------------------------------------------------------------------


class ReportShortfall(HaloProtocolError):
    """A table answered fewer records than its count said, and no edit in between explains it."""

    def __init__(self, kind: str, expected: int, read: int) -> None:
        super().__init__(
            "POST", "/api/Report", 200, f"{kind}: {read} records read, the count said {expected}"
        )
        self.kind, self.expected, self.read = kind, expected, read


@dataclass(frozen=True, slots=True)
class ReportListings:
    """What a report read found, as the REST listings would hold it."""

    clients: Listing[Client]
    sites: Listing[Site]
    contracts: Listing[Contract]
    invoices: Listing[RecurringInvoice]
    items: Listing[Item]
    requests: int
    splits: int = 0  # ranges split after a gateway deadline
    notes: tuple[str, ...] = ()  # counts that moved during the read (tolerated)


async def report_available(halo: HaloClient) -> bool:
    """Whether HaloPSA runs SQL reports for this API application (the probe succeeds).

    No: the application lacks reporting permission (401/403), the instance refuses the probe
    (4xx or a `load_error`) or answers something else. HaloPSA being down is not a no: it raises.
    """
    try:
        await halo.report(PROBE_SQL)
    except (HaloAuthError, HaloNotFound, HaloRequestError, HaloProtocolError) as error:
        log.info("HaloPSA SQL reports unavailable, reading through REST: %s", error)
        return False
    return True


@dataclass(slots=True)
class _Reader:
    """One report read's requests: a few at a time, counted, ranges split on a deadline."""

    halo: HaloClient
    max_rows: int
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENT_REPORTS))
    sent: int = 0
    splits: int = 0

    async def run(self, sql: str) -> list[Mapping[str, Any]]:
        async with self.gate:
            self.sent += 1
            return await self.halo.report(sql)

    async def bounds(self) -> dict[str, Bounds]:
        try:
            answer = await self.run(bounds_sql())
        except HaloReportTimeout:
            # A few aggregates cannot be split; one more try before the read gives up.
            answer = await self.run(bounds_sql())
        if len(answer) != 1:
            raise HaloProtocolError("POST", "/api/Report", 200, "the bounds query answered no row")
        counts = lower_keys(answer[0])
        found = {}
        for table in TABLES:
            values = [
                as_int(counts.get(f"{table.kind}_{part}")) for part in ("rows", "low", "high")
            ]
            if not all(isinstance(v, int) or v is None for v in values):
                raise HaloProtocolError(
                    "POST", "/api/Report", 200, f"unreadable bounds: {table.kind}"
                )
            rows, low, high = (v if isinstance(v, int) else 0 for v in values)
            found[table.kind] = Bounds(rows, low, high)
        return found

    async def table(
        self, table: ReportTable, bounds: Bounds
    ) -> tuple[list[Mapping[str, Any]], int]:
        ranges = id_ranges(bounds, self.max_rows)
        answers = await asyncio.gather(*(self.range(table, low, high) for low, high in ranges))
        return [row for answer in answers for row in answer], len(ranges)

    async def range(
        self, table: ReportTable, low: int, high: int, depth: int = 0
    ) -> list[Mapping[str, Any]]:
        try:
            return await self.run(range_sql(table, low, high))
        except HaloReportTimeout as late:
            # Keys are unique per record (per invoice for lines), so a range this narrow holds
            # few rows whatever the estimate said; splitting it further would not help.
            if high - low + 1 <= MIN_ROWS_PER_ANSWER or depth >= MAX_SPLIT_DEPTH:
                raise HaloReportTimeout(
                    late.method,
                    late.path,
                    late.status,
                    f"{table.kind} keys {low}..{high} still past the gateway deadline after "
                    f"{self.splits} split(s)",
                ) from None
        self.splits += 1
        middle = (low + high) // 2
        log.warning("HaloPSA report on %s %d..%d ran out of time: split", table.kind, low, high)
        first, second = await asyncio.gather(
            self.range(table, low, middle, depth + 1),
            self.range(table, middle + 1, high, depth + 1),
        )
        return first + second


def _ids(rows: list[Mapping[str, Any]]) -> set[Any]:
    return {lower_keys(row).get("id") for row in rows}


async def _checked_counts(
    reader: _Reader, bounds: dict[str, Bounds], read: dict[str, list[Mapping[str, Any]]]
) -> list[str]:
    """Raise ReportShortfall when a table's answers lack a record it holds. Where the records read
    are not the count, its ids are asked again: one that is there but was not read (lost, or added
    meanwhile) is a shortfall; records gone since (deleted during the read) are noted. The REST
    sample's counts (shared.halo.proof) check the rest."""
    notes = []
    for table in TABLES:
        got = _ids(read[table.kind])
        if len(got) == bounds[table.kind].rows:
            continue
        ranges = id_ranges(bounds[table.kind], reader.max_rows) or [(0, -1)]
        answers = await asyncio.gather(*(reader.run(table.ids_sql(lo, hi)) for lo, hi in ranges))
        there = {row for answer in answers for row in _ids(answer)}
        if there - got:
            raise ReportShortfall(table.kind, len(there), len(got & there))
        notes.append(
            f"{table.kind}: {bounds[table.kind].rows} counted, {len(got)} read, "
            f"{len(there)} there after the read"
        )
        log.warning("HaloPSA changed during the report read: %s", notes[-1])
    return notes


async def read_via_report(
    halo: HaloClient, *, today: date | None = None, max_rows: int | None = None
) -> ReportListings:
    """Every client (with its Entra tenants), site, contract, recurring invoice (schedule and
    lines) and item, read with SQL reports and validated by the same models as a REST read.
    Contracts come without their type names (shared.halo.proof names them from REST)."""
    today = today or datetime.now(UTC).date()
    reader = _Reader(halo, max_rows or MAX_ROWS_PER_ANSWER)
    bounds = await reader.bounds()
    answers = await asyncio.gather(*(reader.table(t, bounds[t.kind]) for t in TABLES))
    read = {table.kind: answer for table, answer in zip(TABLES, answers, strict=True)}
    notes = await _checked_counts(reader, bounds, {kind: rows for kind, (rows, _) in read.items()})
    converters: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
        "clients": client_record,
        "entra_tenants": entra_tenant_record,
        "sites": site_record,
        "contracts": lambda row: contract_record(row, today),
        "invoices": invoice_record,
        "invoice_lines": line_record,
        "items": item_record,
    }
    raw = {kind: [converters[kind](row) for row in rows] for kind, (rows, _) in read.items()}
    invoices = with_lines(raw["invoices"], raw["invoice_lines"])
    clients = with_entra_tenants(raw["clients"], raw["entra_tenants"])

    def listing(model: type[M], kind: str, resource: str, records: list[Any]) -> Listing[M]:
        unique, duplicates = _dedupe(sorted(records, key=by_id_order))
        return parse_listing(model, unique, resource, pages=read[kind][1], duplicates=duplicates)

    return ReportListings(
        clients=listing(Client, "clients", "Client", clients),
        sites=listing(Site, "sites", "Site", raw["sites"]),
        contracts=listing(Contract, "contracts", "ClientContract", raw["contracts"]),
        invoices=listing(RecurringInvoice, "invoices", "RecurringInvoice", invoices),
        items=listing(Item, "items", "Item", raw["items"]),
        requests=reader.sent,
        splits=reader.splits,
        notes=tuple(notes),
    )


def _dedupe(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    # A key range never overlaps another, but a join can repeat a row (two schedules for one
    # invoice): keep the first, as a REST read keeps the first of a repeated record.
    seen: set[Any] = set()
    unique = []
    for record in records:
        key = record.get("id")
        if key is not None and key in seen:
            continue
        seen.add(key)
        unique.append(record)
    return unique, len(records) - len(unique)
