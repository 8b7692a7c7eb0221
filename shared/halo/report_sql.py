"""The SQL of a report read: one SELECT per record type, split into key ranges, and the bounds.

The SQL is in the dialect both SQL Server and SQLite (the sandbox) accept: no TOP, ISNULL, square
brackets, `--`, semicolons, DECLARE, ORDER BY or CTEs; aliases are lower_snake.

Columns relied on (table.column -> REST field). Basis, from halo-openapi/halo-sql-columns.json
(DESIGN.md section 8): "sql" = public Halo report SQL, "name" = the API field is the column name
minus its prefix, "inferred" = unverified judgement. "Absent" = checked against both public
schema dumps (ProvisionData.HaloPSA.ApiClient docs/schema.sql, 2026-01; redanthrax/halopsa-mcp
schema/catalog.json, 2026-05: INVOICEHEADER 157, INVOICEDETAIL 123, CONTRACTHEADER 115 columns).
- AREA.Aarea -> Client.id (sql); aareadesc -> name (sql); AIsInactive -> inactive (sql+inferred);
  Atreeid -> toplevel_id (inferred).
- AreaAzureTenant (a client's Microsoft Entra tenants, REST `azure_tenants[]`, several per client;
  split on AATAreaId like lines on their header): AATid -> id, AATAreaId -> client_id,
  AATAzureTenantId (nvarchar(100) NOT NULL) -> azure_tenant_id (all inferred: no public report SQL
  reads the table; halo-sql-columns.json notes that its columns line up with the API schema
  AreaAzureTenant one for one, prefix AAT stripped). So the proof's REST sample of clients is
  listed with `includeazuretenants=true` and each client's Entra tenants are compared: a column
  that means something else shows as findings on the sampled clients, and the run reads REST.
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

import math
from dataclasses import dataclass

# RDX-MCP's capability probe (report-api.notes.md): valid SQL that returns nothing.
PROBE_SQL = "SELECT 1 WHERE 1=0"


@dataclass(frozen=True, slots=True)
class ReportTable:
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
_CLIENTS = ReportTable(
    "clients",
    "AREA",
    "Aarea",
    "",
    "SELECT Aarea AS id, aareadesc AS name, AIsInactive AS inactive, Atreeid AS toplevel_id "
    "FROM AREA WHERE",
    "Aarea",
)
_ENTRA_TENANTS = ReportTable(
    "entra_tenants",
    "AreaAzureTenant",
    "AATAreaId",
    "",
    "SELECT AATid AS id, AATAreaId AS client_id, AATAzureTenantId AS azure_tenant_id "
    "FROM AreaAzureTenant WHERE",
    "AATid",
)
_SITES = ReportTable(
    "sites",
    "SITE",
    "Ssitenum",
    "",
    "SELECT Ssitenum AS id, sdesc AS name, Sarea AS client_id, SIsInactive AS inactive "
    "FROM SITE WHERE",
    "Ssitenum",
)
_CONTRACTS = ReportTable(
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
_INVOICES = ReportTable(
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
_LINES = ReportTable(
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
_ITEMS = ReportTable(
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
TABLES: tuple[ReportTable, ...] = (
    _CLIENTS,
    _ENTRA_TENANTS,
    _SITES,
    _CONTRACTS,
    _INVOICES,
    _LINES,
    _ITEMS,
)


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


def range_sql(table: ReportTable, low: int, high: int) -> str:
    """`table`'s SELECT for keys low..high."""
    # The bounds are ints (formatted as such), the rest constants: nothing else reaches the SQL.
    return f"{table.select} {table.key} BETWEEN {int(low)} AND {int(high)}"
