"""Read a sync's HaloPSA records with a handful of SQL reports instead of hundreds of REST pages.

HaloPSA runs one SELECT per `POST /api/Report` (`HaloClient.report`) and answers every value as a
string. This module holds the SQL and turns the rows back into the JSON shapes the REST API sends
(`GET /api/Client`, `Site`, `ClientContract`, `RecurringInvoice?includelines=true`, `Item`), so they
go through the same pydantic models and the same coverage code: a sync decides coverage the same
way whichever way it read.

A read is: one SELECT of row counts and id bounds, then one SELECT per table per id range, each range
sized to about `max_rows` rows (HaloPSA documents no row cap and pages nothing, so a big table is
split by key range, never by TOP/OFFSET). The SQL is in the dialect both SQL Server and SQLite (the
sandbox) accept: no TOP, ISNULL, square brackets, `--`, semicolons, DECLARE, ORDER BY or CTEs;
aliases are lower_snake and rows are read case-insensitively.

Columns relied on (table.column -> REST field), with the basis halo-openapi/halo-sql-columns.json
(the HaloPSA material DESIGN.md section 8 points to) gives: "sql" = public Halo report SQL,
"name" = the API field is the column name minus its prefix, "inferred" = unverified judgement.
- AREA.Aarea -> Client.id (sql); aareadesc -> name (sql); AIsInactive -> inactive (sql+inferred);
  Atreeid -> toplevel_id (inferred).
- SITE.Ssitenum -> Site.id (sql); sdesc -> name (sql); Sarea (a FLOAT) -> client_id (sql);
  SIsInactive -> inactive (sql+inferred).
- CONTRACTHEADER.CHid -> id (name); CHarea -> client_id (sql); CHSite -> site_id (inferred, -1 = none);
  CHcontractRef -> ref (sql+inferred); CHstartdate/CHenddate -> start_date/end_date (sql+inferred);
  chactive -> active (name, default 1); chtype -> contracttype (inferred). `client_name` is the
  joined AREA.aareadesc. `expired` has no column (the API computes it): here, a real end date
  before today.
- Contract type name: LOOKUP.fvalue where fid = 28 and fcode = CONTRACTHEADER.chbillingdescription
  -> contracttype_name. Public Halo reports show that text as [Contract Type]; the table behind the
  API's contracttype_name (chtype's names) was not found in either schema dump. INFERRED: check on a
  tenant that the names match before relying on report mode for contract-type rules.
- INVOICEHEADER.IHid -> RecurringInvoice.id (name; recurring templates are IHid < 0, sql);
  IHaarea -> client_id (sql); IHsitenumber -> sitenumber (name); IHchid -> contract_id (sql).
  `client_name` is the joined AREA.aareadesc.
- STDREQUEST (the schedule, joined on StdInvoiceId = IHid, sql): stdid -> schedule.id and
  schedule_id (name); stddisabled -> schedule.disabled (name) and the header's `disabled`
  (inferred: INVOICEHEADER has no such column); stdstartdate -> schedule.startdate (name);
  stdenddate -> schedule.end_date (inferred); STDNextCreationDate -> schedule.nextcreationdate and
  the header's nextcreationdate (name); stdlastcreated, StdPeriod, stdtype, StdName (name).
- INVOICEDETAIL (lines of IdIHid < 0): IDid -> id, IdIHid -> ihid, ID_ItemID -> _itemid,
  IDItem_Code -> item_code, IDItem_ShortDescription -> item_shortdescription, IDQty_Order ->
  qty_order, IDUnit_Price -> unit_price, IDNet_Amount -> net_amount, idisInactive -> isinactive,
  IDStartDate/IDEndDate -> startdate/enddate, IDSite -> site, idsequenceid -> sequenceid (all name);
  IDRecurringInvoiceQuantityType -> recurring_invoice_quantity_type, IDCHID -> contract_id
  (inferred). item_internal_reference / item_external_reference have no INVOICEDETAIL column: they
  are the line's item's ITEM.IInternalReference / IExternalReference (inferred).
- ITEM.Iid -> id (name); idesc -> name (sql+inferred); IInternalReference / IExternalReference ->
  internalreference / externalreference (name); idefaultsupplierpartcode -> supplier_part_code
  (inferred); Ibaseprice / IRecurringPrice -> baseprice / recurringprice (name); IIsRecurringItem ->
  isrecurringitem (name).

Not read in report mode, for want of a column: an item's `description` (which ITEM column backs it
is not known) and a recurring invoice header's own `startdate`/`enddate` (INVOICEHEADER has none;
the real header sample carries neither, its schedule holds the dates). Derived because no column of
their own exists: a line's item codes (from its ITEM row) and the header's `disabled` (the
schedule's). sandbox.halo_report.as_tables_hold_it reduces a sandbox data set to the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.halo_client import (
    HaloAuthError,
    HaloClient,
    HaloNotFound,
    HaloProtocolError,
    HaloRequestError,
    Listing,
)
from shared.halo_models import Client, Contract, Item, RecurringInvoice, Site, parse_records

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("halo_immy.halo_report")


class ReadMode(StrEnum):
    """How a sync reads HaloPSA (setting HALO_READ_MODE)."""

    AUTO = "auto"  # report when the probe succeeds, else REST
    REPORT = "report"
    REST = "rest"


# RDX-MCP's capability probe (report-api.notes.md): valid SQL that returns nothing.
PROBE_SQL = "SELECT 1 WHERE 1=0"
# Rows asked of one answer. HaloPSA documents no cap; at about 300 bytes a row this keeps an answer
# near 3 MB, and a 20,000-client sync near 30 requests.
MAX_ROWS_PER_ANSWER = 10_000
# Reports run on HaloPSA's database: a few at a time, not a burst.
CONCURRENT_REPORTS = 3


@dataclass(frozen=True, slots=True)
class _Table:
    """One record type: its table, key column, the filter that selects it, and its SELECT."""

    kind: str
    table: str
    key: str
    where: str
    select: str


# Each SELECT ends in a WHERE clause the range condition is appended to.
_CLIENTS = _Table(
    "clients",
    "AREA",
    "Aarea",
    "",
    "SELECT Aarea AS id, aareadesc AS name, AIsInactive AS inactive, Atreeid AS toplevel_id "
    "FROM AREA WHERE",
)
_SITES = _Table(
    "sites",
    "SITE",
    "Ssitenum",
    "",
    "SELECT Ssitenum AS id, sdesc AS name, Sarea AS client_id, SIsInactive AS inactive "
    "FROM SITE WHERE",
)
_CONTRACTS = _Table(
    "contracts",
    "CONTRACTHEADER",
    "CHid",
    "",
    "SELECT CHid AS id, CHarea AS client_id, aareadesc AS client_name, CHSite AS site_id, "
    "CHcontractRef AS ref, chtype AS contracttype, fvalue AS contracttype_name, "
    "CHstartdate AS start_date, CHenddate AS end_date, chactive AS active "
    "FROM CONTRACTHEADER "
    "LEFT JOIN AREA ON Aarea = CHarea "
    "LEFT JOIN LOOKUP ON fid = 28 AND fcode = chbillingdescription "
    "WHERE",
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
)
_LINES = _Table(
    "invoice_lines",
    "INVOICEDETAIL",
    "IDid",
    "IdIHid < 0",
    "SELECT IDid AS id, IdIHid AS ihid, ID_ItemID AS item_id, IDItem_Code AS item_code, "
    "IDItem_ShortDescription AS item_shortdescription, "
    "IInternalReference AS item_internal_reference, "
    "IExternalReference AS item_external_reference, IDQty_Order AS qty_order, "
    "IDUnit_Price AS unit_price, IDNet_Amount AS net_amount, idisInactive AS isinactive, "
    "IDStartDate AS startdate, IDEndDate AS enddate, "
    "IDRecurringInvoiceQuantityType AS recurring_invoice_quantity_type, "
    "IDCHID AS contract_id, IDSite AS site, idsequenceid AS sequenceid "
    "FROM INVOICEDETAIL "
    "LEFT JOIN ITEM ON Iid = ID_ItemID "
    "WHERE IdIHid < 0 AND",
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


# -- values: HaloPSA writes every value as a string -----------------------------------------

_WHOLE = re.compile(r"-?\d+(?:\.0*)?")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
# SQL Server's own text for a datetime (CAST AS VARCHAR): "Mar 20 2025  6:50PM".
_SQLSERVER = re.compile(
    r"([A-Za-z]{3}) +(\d{1,2}) +(\d{4}) +(\d{1,2}):(\d{2})(?::(\d{2}))? *([AP]M)"
)
_MONTHS = {m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_int(value: Any) -> Any:
    """An id or code: "21", "21.0" -> 21; blank -> None; anything else unchanged (the model
    rejects it)."""
    if _blank(value):
        return None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip().split(".", 1)[0])
    return value


def as_float(value: Any, default: float = 0.0) -> Any:
    """A number: "25", "4.5" -> float; blank -> `default`."""
    if _blank(value):
        return default
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    return value


def as_bool(value: Any, default: bool = False) -> Any:
    """A bit: "1"/"True" -> True, "0"/"False" -> False; blank -> `default`."""
    if _blank(value):
        return default
    text = str(value).strip().lower()
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    return value


def as_text(value: Any) -> str:
    """Text: NULL is "" (as the REST API writes it)."""
    return "" if value is None else str(value)


def as_datetime(value: Any) -> Any:
    """A datetime as REST writes it ("2025-03-20T18:50:25.057"); blank -> None; a form not
    recognised is passed on unchanged so the model rejects the record rather than guess."""
    if _blank(value):
        return None
    text = str(value).strip()
    if _ISO.fullmatch(text):
        return text.replace(" ", "T", 1)
    found = _SQLSERVER.fullmatch(text)
    month = _MONTHS.get(found.group(1).lower()) if found else None
    if found is None or month is None:
        return text
    hour = int(found.group(4)) % 12 + (12 if found.group(7).upper() == "PM" else 0)
    moment = datetime(
        int(found.group(3)),
        month,
        int(found.group(2)),
        hour,
        int(found.group(5)),
        int(found.group(6) or 0),
    )
    return moment.isoformat()


def _lower(row: Mapping[str, Any]) -> dict[str, Any]:
    # Aliases come back as written, or not (SWB hedges on case): read them case-insensitively.
    return {str(key).lower(): value for key, value in row.items()}


def _is_real_end(value: Any, today: date) -> bool:
    """Whether `value` is a real end date before `today` (sentinels are no end)."""
    if not isinstance(value, str) or len(value) < 10:
        return False
    try:
        end = date.fromisoformat(value[:10])
    except ValueError:
        return False
    return 1902 <= end.year < 2099 and end < today


# -- rows -> REST records -------------------------------------------------------------------


def client_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /api/Client` record from an AREA row."""
    r = _lower(row)
    return {
        "id": as_int(r.get("id")),
        "name": as_text(r.get("name")),
        "inactive": as_bool(r.get("inactive")),
        "toplevel_id": as_int(r.get("toplevel_id")),
    }


def site_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /api/Site` record from a SITE row."""
    r = _lower(row)
    return {
        "id": as_int(r.get("id")),
        "name": as_text(r.get("name")),
        "client_id": as_int(r.get("client_id")),
        "inactive": as_bool(r.get("inactive")),
    }


def contract_record(row: Mapping[str, Any], today: date) -> dict[str, Any]:
    """A `GET /api/ClientContract` record from a CONTRACTHEADER row; `expired` as of `today`."""
    r = _lower(row)
    end = as_datetime(r.get("end_date"))
    return {
        "id": as_int(r.get("id")),
        "client_id": as_int(r.get("client_id")),
        "client_name": as_text(r.get("client_name")),
        "site_id": as_int(r.get("site_id")),
        "ref": as_text(r.get("ref")),
        "contracttype": as_int(r.get("contracttype")),
        "contracttype_name": as_text(r.get("contracttype_name")),
        "start_date": as_datetime(r.get("start_date")),
        "end_date": end,
        "active": as_bool(r.get("active"), default=True),  # the column defaults to 1
        "expired": _is_real_end(end, today),
    }


def line_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One `lines` entry of a recurring invoice from an INVOICEDETAIL row."""
    r = _lower(row)
    record = {
        "id": as_int(r.get("id")),
        "ihid": as_int(r.get("ihid")),
        "_itemid": as_int(r.get("item_id")) or 0,
        "item_code": as_text(r.get("item_code")),
        "item_shortdescription": as_text(r.get("item_shortdescription")),
        "item_internal_reference": as_text(r.get("item_internal_reference")),
        "item_external_reference": as_text(r.get("item_external_reference")),
        "qty_order": as_float(r.get("qty_order")),
        "unit_price": as_float(r.get("unit_price")),
        "net_amount": as_float(r.get("net_amount")),
        "isinactive": as_bool(r.get("isinactive")),
        "recurring_invoice_quantity_type": as_int(r.get("recurring_invoice_quantity_type")) or 0,
        "contract_id": as_int(r.get("contract_id")),
        "site": as_int(r.get("site")),
        "sequenceid": as_int(r.get("sequenceid")),
    }
    # The API leaves an unset line date out (its column holds 1900-01-01).
    for key in ("startdate", "enddate"):
        value = as_datetime(r.get(key))
        if value is not None:
            record[key] = value
    return record


def invoice_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /api/RecurringInvoice` header (no lines yet) from an INVOICEHEADER row joined to its
    STDREQUEST schedule."""
    r = _lower(row)
    record: dict[str, Any] = {
        "id": as_int(r.get("id")),
        "client_id": as_int(r.get("client_id")),
        "client_name": as_text(r.get("client_name")),
        "sitenumber": as_int(r.get("sitenumber")),
        "contract_id": as_int(r.get("contract_id")),
        "disabled": as_bool(r.get("disabled")),
        "nextcreationdate": as_datetime(r.get("nextcreationdate")),
        "lines": [],
    }
    schedule_id = as_int(r.get("schedule_id"))
    if schedule_id is not None:
        record["schedule_id"] = schedule_id
        record["schedule"] = {
            "id": schedule_id,
            "name": as_text(r.get("schedule_name")),
            "type": as_int(r.get("schedule_type")),
            "disabled": as_bool(r.get("disabled")),
            "startdate": as_datetime(r.get("schedule_startdate")),
            "end_date": as_datetime(r.get("schedule_end_date")),
            "lastcreated": as_datetime(r.get("schedule_lastcreated")),
            "nextcreationdate": as_datetime(r.get("nextcreationdate")),
            "period": as_int(r.get("schedule_period")),
        }
    return record


def item_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /api/Item` record from an ITEM row."""
    r = _lower(row)
    return {
        "id": as_int(r.get("id")),
        "name": as_text(r.get("name")),
        "internalreference": as_text(r.get("internalreference")),
        "externalreference": as_text(r.get("externalreference")),
        "supplier_part_code": as_text(r.get("supplier_part_code")),
        "baseprice": as_float(r.get("baseprice")),
        "recurringprice": as_float(r.get("recurringprice")),
        "isrecurringitem": as_bool(r.get("isrecurringitem")),
    }


def with_lines(
    invoices: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`invoices` with each line under its header's `lines`, in sequence then id order; lines of
    an invoice not read are dropped (the REST API would not list them either)."""
    by_id = {invoice["id"]: invoice for invoice in invoices if isinstance(invoice["id"], int)}
    for line in sorted(lines, key=_line_order):
        invoice = by_id.get(line["ihid"])
        if invoice is not None:
            invoice["lines"].append(line)
    return list(invoices)


def _line_order(line: Mapping[str, Any]) -> tuple[int, int]:
    sequence, line_id = line.get("sequenceid"), line.get("id")
    return (
        sequence if isinstance(sequence, int) else 0,
        line_id if isinstance(line_id, int) else 0,
    )


def _by_id(record: Mapping[str, Any]) -> tuple[int, int, str]:
    key = record.get("id")
    return (0, key, "") if isinstance(key, int) else (1, 0, str(key))


# -- the read -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportListings:
    """What a report read found, as the REST listings would hold it."""

    clients: Listing[Client]
    sites: Listing[Site]
    contracts: Listing[Contract]
    invoices: Listing[RecurringInvoice]
    items: Listing[Item]
    requests: int


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


async def choose_mode(halo: HaloClient, mode: ReadMode | str) -> ReadMode:
    """REPORT or REST: `auto` probes HaloPSA once."""
    mode = ReadMode(mode)
    if mode is ReadMode.AUTO:
        return ReadMode.REPORT if await report_available(halo) else ReadMode.REST
    return mode


async def read_by_report(halo: HaloClient, mode: ReadMode | str) -> ReportListings | None:
    """The sync's records read through SQL reports, or None when `mode` says to read through REST
    (`rest`, or `auto` when HaloPSA refuses the probe or a report: a SQL error on this instance
    costs the run its speed, not its data). `report` mode raises what HaloPSA raises."""
    mode = ReadMode(mode)
    if await choose_mode(halo, mode) is ReadMode.REST:
        return None
    try:
        return await read_via_report(halo)
    except HaloRequestError as error:
        if mode is not ReadMode.AUTO:
            raise
        log.warning("HaloPSA SQL report read failed, reading through REST: %s", error)
        return None


async def read_via_report(
    halo: HaloClient, *, today: date | None = None, max_rows: int | None = None
) -> ReportListings:
    """Every client, site, contract, recurring invoice (schedule and lines) and item, read with
    SQL reports and validated by the same models as a REST read."""
    today = today or datetime.now(UTC).date()
    max_rows = max_rows or MAX_ROWS_PER_ANSWER
    sent = 0
    gate = asyncio.Semaphore(CONCURRENT_REPORTS)

    async def run(sql: str) -> list[Mapping[str, Any]]:
        nonlocal sent
        async with gate:
            sent += 1
            return await halo.report(sql)

    first = await run(bounds_sql())
    if len(first) != 1:
        raise HaloProtocolError("POST", "/api/Report", 200, "the bounds query answered no row")
    counts = _lower(first[0])

    def bounds(kind: str) -> Bounds:
        values = [as_int(counts.get(f"{kind}_{part}")) for part in ("rows", "low", "high")]
        if not all(isinstance(v, int) or v is None for v in values):
            raise HaloProtocolError("POST", "/api/Report", 200, f"unreadable bounds for {kind}")
        rows, low, high = (v if isinstance(v, int) else 0 for v in values)
        return Bounds(rows, low, high)

    async def table_rows(table: _Table) -> tuple[list[Mapping[str, Any]], int]:
        ranges = id_ranges(bounds(table.kind), max_rows)
        answers = await asyncio.gather(*(run(range_sql(table, lo, hi)) for lo, hi in ranges))
        return [row for answer in answers for row in answer], len(ranges)

    answers = await asyncio.gather(*(table_rows(table) for table in TABLES))
    read = {table.kind: answer for table, answer in zip(TABLES, answers, strict=True)}
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
        unique, duplicates = _dedupe(sorted(records, key=_by_id))
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
        requests=sent,
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


__all__ = [
    "MAX_ROWS_PER_ANSWER",
    "PROBE_SQL",
    "TABLES",
    "Bounds",
    "ReadMode",
    "ReportListings",
    "as_bool",
    "as_datetime",
    "as_float",
    "as_int",
    "as_text",
    "bounds_sql",
    "choose_mode",
    "client_record",
    "contract_record",
    "id_ranges",
    "invoice_record",
    "item_record",
    "line_record",
    "range_sql",
    "read_by_report",
    "read_via_report",
    "report_available",
    "site_record",
    "with_lines",
]
