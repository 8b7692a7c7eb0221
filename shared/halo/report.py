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
SQL is in the dialect both SQL Server and SQLite (the sandbox) accept: no TOP, ISNULL, square
brackets, `--`, semicolons, DECLARE, ORDER BY or CTEs; aliases are lower_snake.

Columns relied on (table.column -> REST field). Basis, from halo-openapi/halo-sql-columns.json
(DESIGN.md section 8): "sql" = public Halo report SQL, "name" = the API field is the column name
minus its prefix, "inferred" = unverified judgement. "Absent" = checked against both public
schema dumps (ProvisionData.HaloPSA.ApiClient docs/schema.sql, 2026-01; redanthrax/halopsa-mcp
schema/catalog.json, 2026-05: INVOICEHEADER 157, INVOICEDETAIL 123, CONTRACTHEADER 115 columns).
- AREA.Aarea -> Client.id (sql); aareadesc -> name (sql); AIsInactive -> inactive (sql+inferred);
  Atreeid -> toplevel_id (inferred).
- SITE.Ssitenum -> Site.id (sql); sdesc -> name (sql); Sarea (a FLOAT) -> client_id (sql);
  SIsInactive -> inactive (sql+inferred).
- CONTRACTHEADER.CHid -> id (name); CHarea -> client_id (sql); CHSite -> site_id (inferred);
  CHcontractRef -> ref (sql+inferred); CHstartdate/CHenddate -> start_date/end_date
  (sql+inferred); chactive -> active (name, default 1); chtype -> contracttype (inferred).
- Contract type NAME: absent. Public reports show LOOKUP fid 28 (the billing description) as
  "Contract Type", but nothing shows it is the API's contracttype_name, so it is not read here:
  shared.halo.proof names each contracttype from REST contracts of that type.
- Contract `expired`: absent (the API computes it; an admin may also expire a contract early).
  Taken here as "a real end date before today"; the proof sample compares it with REST.
- INVOICEHEADER.IHid -> RecurringInvoice.id (name; recurring templates are IHid < 0, sql);
  IHaarea -> client_id (sql); IHsitenumber -> sitenumber (name); IHchid -> contract_id (sql).
- STDREQUEST (the schedule, joined on StdInvoiceId = IHid, sql): stdid -> schedule.id (name);
  stddisabled -> schedule.disabled (name); stdstartdate -> schedule.startdate (name); stdenddate
  -> schedule.end_date (inferred); STDNextCreationDate, stdlastcreated, StdPeriod, stdtype, StdName.
- Header `disabled`, `startdate`, `enddate`: absent. `disabled` is taken from the schedule (the
  only candidate) and the header dates are left out; the proof compares the invoice's effective
  on/off and date window with REST.
- INVOICEDETAIL (lines of IdIHid < 0, split on IdIHid like their headers): IDid -> id, IdIHid ->
  ihid, ID_ItemID -> _itemid, IDItem_Code -> item_code, IDItem_ShortDescription ->
  item_shortdescription, IDQty_Order, IDUnit_Price, IDNet_Amount, idisInactive, IDStartDate,
  IDEndDate, IDSite, idsequenceid (all name); IDRecurringInvoiceQuantityType, IDCHID (inferred).
- A line's own item_internal_reference / item_external_reference: absent. Not copied from the
  line's item either: the one real `GET /api/RecurringInvoice/{id}` payload
  (halo-openapi/recurring-invoice-by-id.sample.json) has "" on all 8 lines although each links an
  item. Read as "" (rules still match the item's own codes through `_itemid`); a line whose REST
  answer carries a code is a finding of the proof, and the run reads through REST.
- ITEM.Iid -> id (name); idesc -> name (sql+inferred); IInternalReference / IExternalReference
  (name); idefaultsupplierpartcode -> supplier_part_code (inferred); Ibaseprice, IRecurringPrice,
  IIsRecurringItem (name). An item's `description` is not read (which column backs it is unknown).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.halo.client import HaloClient, Listing
from shared.halo.errors import (
    HaloAuthError,
    HaloNotFound,
    HaloProtocolError,
    HaloReportTimeout,
    HaloRequestError,
)
from shared.halo.report_rows import (
    as_int,
    by_id_order,
    client_record,
    contract_record,
    invoice_record,
    item_record,
    line_record,
    lower_keys,
    site_record,
    with_lines,
)
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site, parse_records

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("halo_immy.halo_report")


class ReadMode(StrEnum):
    """How a sync reads HaloPSA (setting HALO_READ_MODE)."""

    AUTO = "auto"  # report, proven against REST; REST when reports fail or disagree
    REPORT = "report"
    REST = "rest"


# RDX-MCP's capability probe (report-api.notes.md): valid SQL that returns nothing.
PROBE_SQL = "SELECT 1 WHERE 1=0"
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


@dataclass(frozen=True, slots=True)
class _Table:
    """One record type: its table, the key it is filtered and split on, and its SELECT."""

    kind: str
    table: str
    key: str
    where: str
    select: str
    record_id: str  # the column a record's id is (a join may repeat a row)

    def ids_sql(self, low: int, high: int) -> str:
        """The record ids alone for keys low..high (to see which records a short answer lost)."""
        where = f"{self.where} AND " if self.where else ""
        return (
            f"SELECT {self.record_id} AS id FROM {self.table} "  # noqa: S608 - constants and ints
            f"WHERE {where}{self.key} BETWEEN {int(low)} AND {int(high)}"
        )


# Each SELECT ends in a WHERE clause the range condition is appended to.
_CLIENTS = _Table(
    "clients",
    "AREA",
    "Aarea",
    "",
    "SELECT Aarea AS id, aareadesc AS name, AIsInactive AS inactive, Atreeid AS toplevel_id "
    "FROM AREA WHERE",
    "Aarea",
)
_SITES = _Table(
    "sites",
    "SITE",
    "Ssitenum",
    "",
    "SELECT Ssitenum AS id, sdesc AS name, Sarea AS client_id, SIsInactive AS inactive "
    "FROM SITE WHERE",
    "Ssitenum",
)
_CONTRACTS = _Table(
    "contracts",
    "CONTRACTHEADER",
    "CHid",
    "",
    "SELECT CHid AS id, CHarea AS client_id, aareadesc AS client_name, CHSite AS site_id, "
    "CHcontractRef AS ref, chtype AS contracttype, "
    "CHstartdate AS start_date, CHenddate AS end_date, chactive AS active "
    "FROM CONTRACTHEADER "
    "LEFT JOIN AREA ON Aarea = CHarea "
    "WHERE",
    "CHid",
)
_INVOICES = _Table(
    "invoices",
    "INVOICEHEADER",
    "IHid",
    "IHid < 0",
    "SELECT IHid AS id, IHaarea AS client_id, aareadesc AS client_name, "
    "IHsitenumber AS sitenumber, IHchid AS contract_id, stdid AS schedule_id, "
    "stddisabled AS disabled, stdstartdate AS schedule_startdate, stdenddate AS schedule_end_date, "
    "STDNextCreationDate AS nextcreationdate, stdlastcreated AS schedule_lastcreated, "
    "StdPeriod AS schedule_period, stdtype AS schedule_type, StdName AS schedule_name "
    "FROM INVOICEHEADER "
    "LEFT JOIN AREA ON Aarea = IHaarea "
    "LEFT JOIN STDREQUEST ON StdInvoiceId = IHid "
    "WHERE IHid < 0 AND",
    "IHid",
)
_LINES = _Table(
    "invoice_lines",
    "INVOICEDETAIL",
    "IdIHid",
    "IdIHid < 0",
    "SELECT IDid AS id, IdIHid AS ihid, ID_ItemID AS item_id, IDItem_Code AS item_code, "
    "IDItem_ShortDescription AS item_shortdescription, IDQty_Order AS qty_order, "
    "IDUnit_Price AS unit_price, IDNet_Amount AS net_amount, idisInactive AS isinactive, "
    "IDStartDate AS startdate, IDEndDate AS enddate, "
    "IDRecurringInvoiceQuantityType AS recurring_invoice_quantity_type, "
    "IDCHID AS contract_id, IDSite AS site, idsequenceid AS sequenceid "
    "FROM INVOICEDETAIL "
    "WHERE IdIHid < 0 AND",
    "IDid",
)
_ITEMS = _Table(
    "items",
    "ITEM",
    "Iid",
    "",
    "SELECT Iid AS id, idesc AS name, IInternalReference AS internalreference, "
    "IExternalReference AS externalreference, idefaultsupplierpartcode AS supplier_part_code, "
    "Ibaseprice AS baseprice, IRecurringPrice AS recurringprice, "
    "IIsRecurringItem AS isrecurringitem "
    "FROM ITEM WHERE",
    "Iid",
)
TABLES: tuple[_Table, ...] = (_CLIENTS, _SITES, _CONTRACTS, _INVOICES, _LINES, _ITEMS)


def bounds_sql() -> str:
    """One SELECT answering, per table, its row count and lowest and highest key."""
    # Built from the constants above only: no value from outside reaches the SQL.
    parts = []
    for table in TABLES:
        where = f" WHERE {table.where}" if table.where else ""
        for function, suffix in (("COUNT(*)", "rows"), ("MIN", "low"), ("MAX", "high")):
            call = function if suffix == "rows" else f"{function}({table.key})"
            parts.append(f"(SELECT {call} FROM {table.table}{where}) AS {table.kind}_{suffix}")  # noqa: S608
    return "SELECT " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Bounds:
    """A table's row count and key range."""

    rows: int
    low: int
    high: int


def id_ranges(bounds: Bounds, max_rows: int) -> list[tuple[int, int]]:
    """Key ranges covering [low, high] that each hold about `max_rows` rows (keys assumed spread
    evenly); none for an empty table."""
    if bounds.rows <= 0 or bounds.high < bounds.low:
        return []
    parts = max(1, math.ceil(bounds.rows / max(1, max_rows)))
    width = math.ceil((bounds.high - bounds.low + 1) / parts)
    return [
        (start, min(bounds.high, start + width - 1))
        for start in range(bounds.low, bounds.high + 1, width)
    ]


def range_sql(table: _Table, low: int, high: int) -> str:
    """`table`'s SELECT for keys low..high."""
    # The bounds are ints (formatted as such), the rest constants: nothing else reaches the SQL.
    return f"{table.select} {table.key} BETWEEN {int(low)} AND {int(high)}"


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

    async def table(self, table: _Table, bounds: Bounds) -> tuple[list[Mapping[str, Any]], int]:
        ranges = id_ranges(bounds, self.max_rows)
        answers = await asyncio.gather(*(self.range(table, low, high) for low, high in ranges))
        return [row for answer in answers for row in answer], len(ranges)

    async def range(
        self, table: _Table, low: int, high: int, depth: int = 0
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
    """Every client, site, contract, recurring invoice (schedule and lines) and item, read with
    SQL reports and validated by the same models as a REST read. Contracts come without their
    type names (shared.halo.proof names them from REST)."""
    today = today or datetime.now(UTC).date()
    reader = _Reader(halo, max_rows or MAX_ROWS_PER_ANSWER)
    bounds = await reader.bounds()
    answers = await asyncio.gather(*(reader.table(t, bounds[t.kind]) for t in TABLES))
    read = {table.kind: answer for table, answer in zip(TABLES, answers, strict=True)}
    notes = await _checked_counts(reader, bounds, {kind: rows for kind, (rows, _) in read.items()})
    converters: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
        "clients": client_record,
        "sites": site_record,
        "contracts": lambda row: contract_record(row, today),
        "invoices": invoice_record,
        "invoice_lines": line_record,
        "items": item_record,
    }
    raw = {kind: [converters[kind](row) for row in rows] for kind, (rows, _) in read.items()}
    invoices = with_lines(raw["invoices"], raw["invoice_lines"])

    def listing(model: type[M], kind: str, resource: str, records: list[Any]) -> Listing[M]:
        unique, duplicates = _dedupe(sorted(records, key=by_id_order))
        parsed = parse_records(model, unique, kind=resource)
        return Listing(
            records=parsed.records,
            rejects=parsed.rejects,
            pages=read[kind][1],
            duplicates=duplicates,
        )

    return ReportListings(
        clients=listing(Client, "clients", "Client", raw["clients"]),
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
