"""HaloPSA's SQL report API for the sandbox: `POST /api/Report` runs one SELECT against SQLite.

The sandbox's data set (records in HaloPSA's REST JSON shapes) is loaded into an in-memory SQLite
database under HaloPSA's own table and column names (AREA, AreaAzureTenant, SITE, CONTRACTHEADER,
LOOKUP, INVOICEHEADER, STDREQUEST, INVOICEDETAIL, ITEM), per `halo-openapi/halo-sql-columns.json` (the
HaloPSA material DESIGN.md section 8 points to), so the app's report SQL meets a real instance's
names. The loader is tolerant: a key a record
does not carry leaves its column NULL (or HaloPSA's column default).

Where the REST field has no column of its own the loader writes it where HaloPSA keeps it:
- a contract's `contracttype_name` is the LOOKUP text (fid 28) of its billing description
  (`chbillingdescription`; the code is the record's `billingdescription`, else its `contracttype`);
- a recurring invoice's header `disabled` is its schedule's `stddisabled` (no INVOICEHEADER column);
  a schedule row exists when the record has a `schedule` object or is disabled.

Answers look like HaloPSA's (report-api.notes.md): HTTP 200 with `report.rows`, every value a
string (NULL as null), and SQL errors as HTTP 200 with `report.loaded` false and `report.load_error`.
What HaloPSA refuses is refused the same way: several statements, a trailing semicolon, `--`
comments, DECLARE, anything but one SELECT. Standard library only.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# HaloPSA's tables as the loader creates them: (table, ((column, SQLite type), ...)).
# Column names and their REST fields: halo-openapi/halo-sql-columns.json (DESIGN.md section 8).
SCHEMA: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "AREA",
        (
            ("Aarea", "INTEGER PRIMARY KEY"),
            ("aareadesc", "TEXT"),
            ("AIsInactive", "INTEGER NOT NULL DEFAULT 0"),
            ("Astopped", "INTEGER DEFAULT 0"),
            ("Atreeid", "INTEGER DEFAULT 0"),
            ("acustomertype", "INTEGER DEFAULT 0"),
            ("Aarearef", "TEXT"),
        ),
    ),
    (
        # A client's Microsoft Entra tenants (REST: the client's `azure_tenants`), several each.
        "AreaAzureTenant",
        (
            ("AATid", "INTEGER PRIMARY KEY"),
            ("AATAreaId", "INTEGER NOT NULL"),
            ("AATAzureTenantId", "TEXT NOT NULL"),
            ("AATAzureTenantName", "TEXT"),
            ("aatazuretenantdomain", "TEXT DEFAULT ''"),
            ("AATDetailsId", "INTEGER NOT NULL DEFAULT 0"),
        ),
    ),
    (
        "SITE",
        (
            ("Ssitenum", "INTEGER PRIMARY KEY"),
            ("sdesc", "TEXT"),
            ("Sarea", "REAL"),
            ("SIsInactive", "INTEGER NOT NULL DEFAULT 0"),
            ("SIsInvoiceSite", "INTEGER NOT NULL DEFAULT 0"),
            ("SRef", "TEXT"),
        ),
    ),
    (
        "CONTRACTHEADER",
        (
            ("CHid", "INTEGER PRIMARY KEY"),
            ("CHarea", "INTEGER DEFAULT 0"),
            ("CHSite", "INTEGER DEFAULT -1"),
            ("CHcontractRef", "TEXT"),
            ("CHstartdate", "TEXT"),
            ("CHenddate", "TEXT"),
            ("chactive", "INTEGER DEFAULT 1"),
            ("chtype", "INTEGER DEFAULT 0"),
            ("chbillingdescription", "INTEGER DEFAULT -1"),
            ("CHstatus", "INTEGER DEFAULT 0"),
        ),
    ),
    (
        "LOOKUP",
        (
            ("fid", "INTEGER NOT NULL"),
            ("fcode", "INTEGER NOT NULL"),
            ("fvalue", "TEXT"),
        ),
    ),
    (
        "INVOICEHEADER",
        (
            ("IHid", "INTEGER PRIMARY KEY"),
            ("IHaarea", "INTEGER DEFAULT 0"),
            ("IHsitenumber", "INTEGER DEFAULT 0"),
            ("IHchid", "INTEGER DEFAULT 0"),
            ("IHisRecurringInvoice", "INTEGER DEFAULT 0"),
            ("IHReference", "TEXT"),
        ),
    ),
    (
        "STDREQUEST",
        (
            ("stdid", "INTEGER PRIMARY KEY"),
            ("StdInvoiceId", "INTEGER DEFAULT 0"),
            ("stddisabled", "INTEGER NOT NULL DEFAULT 0"),
            ("stdstartdate", "TEXT"),
            ("stdenddate", "TEXT"),
            ("STDNextCreationDate", "TEXT"),
            ("stdlastcreated", "TEXT"),
            ("StdPeriod", "INTEGER DEFAULT 0"),
            ("stdtype", "INTEGER"),
            ("StdName", "TEXT DEFAULT ''"),
        ),
    ),
    (
        "INVOICEDETAIL",
        (
            ("IDid", "INTEGER PRIMARY KEY"),
            ("IdIHid", "INTEGER DEFAULT 0"),
            ("ID_ItemID", "INTEGER DEFAULT 0"),
            ("IDItem_Code", "TEXT"),
            ("IDItem_ShortDescription", "TEXT"),
            ("IDQty_Order", "REAL DEFAULT 0"),
            ("IDUnit_Price", "REAL DEFAULT 0"),
            ("IDNet_Amount", "REAL DEFAULT 0"),
            ("idisInactive", "INTEGER DEFAULT 0"),
            ("IDStartDate", "TEXT"),
            ("IDEndDate", "TEXT"),
            ("IDRecurringInvoiceQuantityType", "INTEGER DEFAULT 0"),
            ("IDCHID", "INTEGER DEFAULT -1"),
            ("IDSite", "INTEGER DEFAULT -1"),
            ("idsequenceid", "INTEGER DEFAULT 10"),
        ),
    ),
    (
        "ITEM",
        (
            ("Iid", "INTEGER PRIMARY KEY"),
            ("idesc", "TEXT"),
            ("IInternalReference", "TEXT"),
            ("IExternalReference", "TEXT"),
            ("idefaultsupplierpartcode", "TEXT"),
            ("Ibaseprice", "REAL"),
            ("IRecurringPrice", "REAL DEFAULT 0"),
            ("IIsRecurringItem", "INTEGER DEFAULT 0"),
        ),
    ),
)

# LOOKUP.fid of contract billing descriptions, whose text public Halo reports show as the
# contract type (halo-sql-columns.json, lookups "LOOKUP.fid").
CONTRACT_TYPE_LOOKUP = 28


@dataclass(frozen=True)
class ReportFaults:
    """Ways the sandbox's SQL tables (or its report API) disagree with its REST answers, so tests
    see that the app notices. `contract_type_offset` shifts every contract's `chtype` (a report
    naming another contract type); `disabled_from` "schedule" leaves a header's own `disabled` out
    of `stddisabled` (default "both" merges them, as the app assumes); `drop_line_codes` writes no
    `IDItem_Code`; `drop_entra_tenants` writes no AreaAzureTenant row (HaloPSA keeping a client's
    Entra tenants somewhere the report does not look); `lose_rows` drops that many rows from
    every range answer of records of a table (by its record kind: clients, entra_tenants, sites,
    contracts, invoices, invoice_lines, items; an ids-only answer keeps them, as a truncated large
    answer would); `deadline_rows` answers 504 for any range SELECT that would return more rows
    than that."""

    contract_type_offset: int = 0
    disabled_from: str = "both"
    drop_line_codes: bool = False
    drop_entra_tenants: bool = False
    lose_rows: Mapping[str, int] = field(default_factory=dict)
    deadline_rows: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.contract_type_offset, int) or isinstance(
            self.contract_type_offset, bool
        ):
            raise ValueError("report.contract_type_offset must be an integer")
        if self.disabled_from not in ("both", "schedule"):
            raise ValueError('report.disabled_from must be "both" or "schedule"')
        if not isinstance(self.drop_line_codes, bool):
            raise ValueError("report.drop_line_codes must be true or false")
        if not isinstance(self.drop_entra_tenants, bool):
            raise ValueError("report.drop_entra_tenants must be true or false")
        if not isinstance(self.lose_rows, Mapping) or not all(
            kind in _KIND_TABLES and isinstance(n, int) and n >= 0
            for kind, n in self.lose_rows.items()
        ):
            raise ValueError(f"report.lose_rows maps one of {sorted(_KIND_TABLES)} to a count")
        if self.deadline_rows is not None and (
            not isinstance(self.deadline_rows, int) or self.deadline_rows < 0
        ):
            raise ValueError("report.deadline_rows must be an integer >= 0 or null")

    @property
    def load_key(self) -> tuple[int, str, bool, bool]:
        """What changes the tables themselves (a database is built per key)."""
        return (
            self.contract_type_offset,
            self.disabled_from,
            self.drop_line_codes,
            self.drop_entra_tenants,
        )


# The table each record kind's range SELECT reads FROM.
_KIND_TABLES = {
    "clients": "AREA",
    "entra_tenants": "AreaAzureTenant",
    "sites": "SITE",
    "contracts": "CONTRACTHEADER",
    "invoices": "INVOICEHEADER",
    "invoice_lines": "INVOICEDETAIL",
    "items": "ITEM",
}
_FROM = re.compile(r"\bFROM\s+([A-Za-z_]+)", re.IGNORECASE)
_RANGE = re.compile(r"\bBETWEEN\b", re.IGNORECASE)


# Nothing but one SELECT: HaloPSA refuses the rest (report-api.notes.md, "SQL rules reported").
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"])*\"")
_DECLARE = re.compile(r"\bdeclare\b", re.IGNORECASE)
_SELECT = re.compile(r"\s*(?:/\*.*?\*/\s*)*select\b", re.IGNORECASE | re.DOTALL)


class ReportRefused(ValueError):
    """SQL HaloPSA would not run; the message is what `report.load_error` says."""


def check_sql(sql: str) -> None:
    """Raise ReportRefused for what HaloPSA refuses: several statements, a trailing semicolon,
    `--` comments, DECLARE, or anything that is not a SELECT."""
    if not isinstance(sql, str) or not sql.strip():
        raise ReportRefused("No SQL was supplied")
    # Literals may hold ';' or '--' harmlessly: look at the SQL with them blanked out.
    code = _LITERALS.sub("''", sql)
    if ";" in code:
        raise ReportRefused("Incorrect syntax near ';'.")
    if "--" in code:
        raise ReportRefused("Comments starting with -- are not allowed; use /* */.")
    if _DECLARE.search(code):
        raise ReportRefused("Variables (DECLARE) are not allowed in a report.")
    if _SELECT.match(code) is None:
        raise ReportRefused("Only a SELECT statement can be run as a report.")


def _whole(value: Any) -> Any:
    # Ids arrive as ints, whole floats or digit strings; store ints so joins compare equal.
    if type(value) is int or value is None:  # the common case first: this runs per field
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.0*)?\s*", value):
        return int(value.strip().split(".", 1)[0])
    return value


def _flag(value: Any) -> Any:
    if type(value) is bool:
        return int(value)
    if value is None or isinstance(value, bool | int):
        return None if value is None else int(bool(value))
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return int(value.strip().lower() in ("true", "1"))
    return value


def _plain(value: Any) -> Any:
    # SQLite stores scalars; anything else (a nested object) is kept as its JSON text.
    kind = type(value)
    if kind is str or kind is int or kind is float or isinstance(value, int | float | str):
        return value
    return json.dumps(value)


class _Rows:
    """Rows for one table, built from records with a tolerant field -> column mapping."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in SCHEMA}

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        # Absent keys are left out, so the column's default applies as it would in HaloPSA.
        plain = _plain
        self.tables[table].append({k: plain(v) for k, v in row.items() if v is not None})


def _shifted(code: Any, faults: ReportFaults) -> Any:
    return code + faults.contract_type_offset if isinstance(code, int) else code


def _records(items: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    return (item for item in items if isinstance(item, Mapping))


def _add_entra_tenants(rows: _Rows, client: Mapping[str, Any]) -> None:
    """A client's `azure_tenants` as AreaAzureTenant rows (several per client)."""
    tenants = client.get("azure_tenants")
    for tenant in _records(tenants if isinstance(tenants, list) else []):
        rows.add(
            "AreaAzureTenant",
            {
                "AATid": _whole(tenant.get("id")),
                "AATAreaId": _whole(client.get("id")),
                # NOT NULL in HaloPSA: a link without a tenant id holds "".
                "AATAzureTenantId": tenant.get("azure_tenant_id") or "",
                "AATAzureTenantName": tenant.get("azure_tenant_name"),
                "aatazuretenantdomain": tenant.get("azure_tenant_domain"),
                "AATDetailsId": _whole(tenant.get("details_id")),
            },
        )


def _rows_of(data: Any, faults: ReportFaults | None = None) -> _Rows:
    faults = faults or ReportFaults()
    rows = _Rows()
    for client in _records(getattr(data, "clients", [])):
        rows.add(
            "AREA",
            {
                "Aarea": _whole(client.get("id")),
                "aareadesc": client.get("name"),
                "AIsInactive": _flag(client.get("inactive")) or 0,
                "Atreeid": _whole(client.get("toplevel_id")),
                "acustomertype": _whole(client.get("customertype")),
                "Aarearef": client.get("ref"),
            },
        )
        if not faults.drop_entra_tenants:
            _add_entra_tenants(rows, client)
    for site in _records(getattr(data, "sites", [])):
        rows.add(
            "SITE",
            {
                "Ssitenum": _whole(site.get("id")),
                "sdesc": site.get("name"),
                "Sarea": _whole(site.get("client_id")),
                "SIsInactive": _flag(site.get("inactive")) or 0,
                "SIsInvoiceSite": _flag(site.get("isinvoicesite")) or 0,
                "SRef": site.get("ref"),
            },
        )
    lookups: dict[int, str] = {}
    next_code = 1_000_000  # codes for type names that arrive without any code
    for contract in _records(getattr(data, "contracts", [])):
        code = _whole(contract.get("billingdescription"))
        if not isinstance(code, int) or code < 0:
            code = _whole(contract.get("contracttype"))
        name = contract.get("contracttype_name")
        if isinstance(name, str) and name:
            if not isinstance(code, int) or lookups.get(code, name) != name:
                code = next((c for c, n in lookups.items() if n == name), None)
                if code is None:
                    code, next_code = next_code, next_code + 1
            lookups[code] = name
        rows.add(
            "CONTRACTHEADER",
            {
                "CHid": _whole(contract.get("id")),
                "CHarea": _whole(contract.get("client_id")),
                "CHSite": _whole(contract.get("site_id")),
                "CHcontractRef": contract.get("ref"),
                "CHstartdate": contract.get("start_date"),
                "CHenddate": contract.get("end_date"),
                "chactive": _flag(contract.get("active")),
                "chtype": _shifted(_whole(contract.get("contracttype")), faults),
                "chbillingdescription": code if isinstance(code, int) else None,
                "CHstatus": _whole(contract.get("status")),
            },
        )
    for code, name in lookups.items():
        rows.add("LOOKUP", {"fid": CONTRACT_TYPE_LOOKUP, "fcode": code, "fvalue": name})
    schedule_ids: set[Any] = set()
    for invoice in _records(getattr(data, "invoices", [])):
        invoice_id = _whole(invoice.get("id"))
        rows.add(
            "INVOICEHEADER",
            {
                "IHid": invoice_id,
                "IHaarea": _whole(invoice.get("client_id")),
                "IHsitenumber": _whole(invoice.get("sitenumber")),
                "IHchid": _whole(invoice.get("contract_id")),
                "IHisRecurringInvoice": 1,
                "IHReference": invoice.get("reference"),
            },
        )
        schedule = invoice.get("schedule")
        disabled = (_flag(invoice.get("disabled")) or 0) if faults.disabled_from == "both" else 0
        if isinstance(schedule, Mapping) or disabled:
            schedule = schedule if isinstance(schedule, Mapping) else {}
            stdid = _whole(schedule.get("id", invoice.get("schedule_id")))
            if not isinstance(stdid, int) or stdid in schedule_ids:
                stdid = None  # let SQLite number it
            schedule_ids.add(stdid)
            rows.add(
                "STDREQUEST",
                {
                    "stdid": stdid,
                    "StdInvoiceId": invoice_id,
                    "stddisabled": int(bool(disabled or _flag(schedule.get("disabled")))),
                    "stdstartdate": schedule.get("startdate"),
                    "stdenddate": schedule.get("end_date"),
                    "STDNextCreationDate": schedule.get(
                        "nextcreationdate", invoice.get("nextcreationdate")
                    ),
                    "stdlastcreated": schedule.get("lastcreated"),
                    "StdPeriod": _whole(schedule.get("period")),
                    "stdtype": _whole(schedule.get("type")),
                    "StdName": schedule.get("name"),
                },
            )
        lines = invoice.get("lines")
        for line in _records(lines if isinstance(lines, list) else []):
            item_id = line.get("_itemid", line.get("item_id"))
            rows.add(
                "INVOICEDETAIL",
                {
                    "IDid": _whole(line.get("id")),
                    "IdIHid": _whole(line.get("ihid", invoice_id)),
                    "ID_ItemID": _whole(item_id),
                    "IDItem_Code": None if faults.drop_line_codes else line.get("item_code"),
                    "IDItem_ShortDescription": line.get("item_shortdescription"),
                    "IDQty_Order": line.get("qty_order"),
                    "IDUnit_Price": line.get("unit_price"),
                    "IDNet_Amount": line.get("net_amount"),
                    "idisInactive": _flag(line.get("isinactive")),
                    "IDStartDate": line.get("startdate"),
                    "IDEndDate": line.get("enddate"),
                    "IDRecurringInvoiceQuantityType": _whole(
                        line.get("recurring_invoice_quantity_type")
                    ),
                    "IDCHID": _whole(line.get("contract_id")),
                    "IDSite": _whole(line.get("site")),
                    "idsequenceid": _whole(line.get("sequenceid")),
                },
            )
    for item in _records(getattr(data, "items", [])):
        rows.add(
            "ITEM",
            {
                "Iid": _whole(item.get("id")),
                "idesc": item.get("name"),
                "IInternalReference": item.get("internalreference"),
                "IExternalReference": item.get("externalreference"),
                "idefaultsupplierpartcode": item.get("supplier_part_code"),
                "Ibaseprice": item.get("baseprice"),
                "IRecurringPrice": item.get("recurringprice"),
                "IIsRecurringItem": _flag(item.get("isrecurringitem")),
            },
        )
    return rows


def as_tables_hold_it(data: Any) -> Any:
    """A copy of `data` reduced to what HaloPSA's tables can hold, so a REST read and a report
    read of it must agree; a no-op on the fields a data set already gives that way.

    REST fields with no column of their own are set the way the report read takes them: a line's
    own `item_internal_reference`/`item_external_reference` are "" (INVOICEDETAIL has no column for
    them; the real payload has ""), a recurring invoice's header `disabled` and its schedule's are
    one flag (INVOICEHEADER has none), and a header keeps no `startdate`/`enddate` of its own (no
    column; the schedule holds the dates) and an item no `description` (its column is not known).
    A data set written before recurring invoices had negative ids gets them, with a schedule made
    of the header's dates.
    """
    shaped = data.copy()
    for item in shaped.items:
        if isinstance(item, dict):
            item.pop("description", None)
    for number, invoice in enumerate(shaped.invoices):
        if not isinstance(invoice, dict):
            continue
        legacy = isinstance(invoice.get("id"), int) and invoice["id"] > 0
        if legacy:
            invoice["id"] = -invoice["id"]
            invoice.setdefault(
                "schedule",
                {
                    "id": 100 + number,
                    "startdate": invoice.get("startdate"),
                    "end_date": invoice.get("enddate") or "2099-12-31T00:00:00",
                    "nextcreationdate": invoice.get("nextcreationdate"),
                },
            )
        invoice.pop("startdate", None)
        invoice.pop("enddate", None)
        schedule = invoice.get("schedule")
        if isinstance(schedule, dict):
            disabled = bool(_flag(invoice.get("disabled")) or _flag(schedule.get("disabled")))
            invoice["disabled"] = schedule["disabled"] = disabled
            invoice.setdefault("schedule_id", schedule.get("id"))
        lines = invoice.get("lines")
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, dict):
                continue
            if legacy:
                line["ihid"] = invoice["id"]
            line["item_internal_reference"] = line["item_external_reference"] = ""
    return shaped


def _text(value: Any) -> str | None:
    """A value the way HaloPSA's report answer writes it: a string (NULL stays null)."""
    if value is None:
        return None
    if isinstance(value, float):
        # .NET writes a whole double without a fraction ("21", not "21.0").
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class ReportDatabase:
    """An in-memory SQLite copy of a sandbox data set under HaloPSA's table and column names."""

    def __init__(self, data: Any, faults: ReportFaults | None = None) -> None:
        self.faults = faults or ReportFaults()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        # HaloPSA runs reports read-only; so does the sandbox (after loading).
        self._db.execute("PRAGMA foreign_keys = OFF")
        rows = _rows_of(data, self.faults)
        for table, columns in SCHEMA:
            spec = ", ".join(f"{name} {kind}" for name, kind in columns)
            self._db.execute(f"CREATE TABLE {table} ({spec})")
            # Rows with the same keys go in one executemany (20,000 clients load in about 1 s).
            # Duplicate keys (a malformed data set) keep the first row, as the REST side would.
            shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            for row in rows.tables[table]:
                shapes.setdefault(tuple(row), []).append(tuple(row.values()))
            for names, values in shapes.items():
                marks = ", ".join("?" for _ in names)
                self._db.executemany(
                    f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({marks})",  # noqa: S608
                    values,
                )
        self._db.commit()
        self._db.execute("PRAGMA query_only = ON")

    def run(self, sql: str) -> list[dict[str, str | None]]:
        """The rows of one SELECT, keyed by column alias, every value a string or null.

        Raises ReportRefused for SQL HaloPSA refuses and sqlite3.Error for SQL that fails."""
        check_sql(sql)
        with self._lock:
            cursor = self._db.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            found = cursor.fetchall()
        return [
            {name: _text(value) for name, value in zip(names, row, strict=True)} for row in found
        ]

    def close(self) -> None:
        """Release the database."""
        self._db.close()


def report_answer(sql: str, rows: Sequence[Mapping[str, Any]] | None, error: str = "") -> Any:
    """The body HaloPSA answers `POST /api/Report` with (`_loadreportonly`): the request's profile
    echoed back, rows at `report.rows`; an error is `loaded: false` with `load_error`."""
    return {
        "id": 0,
        "name": "",
        "sql": sql,
        "columns": [],
        "filters": [],
        "available_columns": [
            {"id": n, "name": name, "data_type": "string"}
            for n, name in enumerate(rows[0] if rows else (), start=1)
        ],
        "report": {
            "loaded": not error,
            "load_error": error,
            "rows": list(rows or []),
            "chart_labels": [],
            "chart_dataset": [],
        },
    }


def parse_request(body: bytes) -> str:
    """The SQL of a `POST /api/Report` body (`[{"sql": ..., "_loadreportonly": true}]` or one
    object); raises ValueError when there is none."""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, Mapping):
        raise ValueError("the body must be an array of one report profile")
    sql = payload.get("sql")
    if not isinstance(sql, str):
        raise ValueError("the report profile has no sql")
    return sql


def answer(
    database: ReportDatabase, body: bytes, faults: ReportFaults | None = None
) -> tuple[int, Any]:
    """(status, body) for one `POST /api/Report`: HaloPSA answers SQL errors with HTTP 200, and
    a report past its gateway deadline with 504 (`faults.deadline_rows`)."""
    faults = faults or database.faults
    try:
        sql = parse_request(body)
    except ValueError as error:
        return 400, {"error": "invalid_request", "error_description": str(error)}
    try:
        rows = database.run(sql)
    except ReportRefused as error:
        return 200, report_answer(sql, None, str(error))
    except sqlite3.Error as error:
        return 200, report_answer(sql, None, f"SQL error: {error}")
    ranged = _RANGE.search(sql) is not None
    if ranged and faults.deadline_rows is not None and len(rows) > faults.deadline_rows:
        return 504, {"error": "gateway_timeout", "error_description": "the report ran too long"}
    table = _FROM.search(sql)
    records = bool(rows) and len(rows[0]) > 1  # not an ids-only SELECT
    for kind, lost in faults.lose_rows.items():
        if (
            ranged
            and records
            and table is not None
            and table.group(1).upper() == _KIND_TABLES[kind]
        ):
            rows = rows[: max(0, len(rows) - lost)]
    return 200, report_answer(sql, rows)


__all__ = [
    "CONTRACT_TYPE_LOOKUP",
    "SCHEMA",
    "ReportDatabase",
    "ReportFaults",
    "ReportRefused",
    "answer",
    "as_tables_hold_it",
    "check_sql",
    "parse_request",
    "report_answer",
]
