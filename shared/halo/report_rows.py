"""HaloPSA report rows back into the JSON shapes its REST API sends.

`POST /api/Report` answers every value as a string, under the SELECT's lower_snake aliases (or not:
rows are read case-insensitively). These functions turn one row into the record `GET /api/Client`,
`Site`, `ClientContract`, `RecurringInvoice` or `Item` would carry, so both reads go through the
same pydantic models. A value not recognised is passed on unchanged, so the model rejects the
record rather than guess. Which column backs which field, and why: shared.halo.report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from shared.records.ids import whole_number

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
    number = whole_number(value) if isinstance(value, str) else None
    return value if number is None else number


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


def lower_keys(row: Mapping[str, Any]) -> dict[str, Any]:
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
    r = lower_keys(row)
    return {
        "id": as_int(r.get("id")),
        "name": as_text(r.get("name")),
        "inactive": as_bool(r.get("inactive")),
        "toplevel_id": as_int(r.get("toplevel_id")),
    }


def entra_tenant_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One `azure_tenants` entry of a `GET /api/Client` record from an AreaAzureTenant row."""
    r = lower_keys(row)
    return {
        "id": as_int(r.get("id")),
        "client_id": as_int(r.get("client_id")),
        "azure_tenant_id": as_text(r.get("azure_tenant_id")),
    }


def with_entra_tenants(
    clients: Sequence[dict[str, Any]], tenants: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`clients`, each with its Entra tenants under `azure_tenants` (as REST lists them with
    `includeazuretenants=true`: a client with none has an empty list)."""
    by_id = {client["id"]: client for client in clients if isinstance(client["id"], int)}
    for client in by_id.values():
        client["azure_tenants"] = []
    for tenant in sorted(tenants, key=by_id_order):
        owner = by_id.get(tenant["client_id"])
        if owner is not None:
            owner["azure_tenants"].append(tenant)
    return list(clients)


def site_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /api/Site` record from a SITE row."""
    r = lower_keys(row)
    return {
        "id": as_int(r.get("id")),
        "name": as_text(r.get("name")),
        "client_id": as_int(r.get("client_id")),
        "inactive": as_bool(r.get("inactive")),
    }


def contract_record(row: Mapping[str, Any], today: date) -> dict[str, Any]:
    """A `GET /api/ClientContract` record from a CONTRACTHEADER row; `expired` as of `today` (no
    column holds it: the proof sample checks it), `contracttype_name` left for REST to name."""
    r = lower_keys(row)
    end = as_datetime(r.get("end_date"))
    return {
        "id": as_int(r.get("id")),
        "client_id": as_int(r.get("client_id")),
        "client_name": as_text(r.get("client_name")),
        "site_id": as_int(r.get("site_id")),
        "ref": as_text(r.get("ref")),
        "contracttype": as_int(r.get("contracttype")),
        # No table holds the API's type name (halo_report): named from REST by the proof.
        "contracttype_name": "",
        "start_date": as_datetime(r.get("start_date")),
        "end_date": end,
        "active": as_bool(r.get("active"), default=True),  # the column defaults to 1
        "expired": _is_real_end(end, today),
    }


def line_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One `lines` entry of a recurring invoice from an INVOICEDETAIL row."""
    r = lower_keys(row)
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
    r = lower_keys(row)
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
    r = lower_keys(row)
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


def by_id_order(record: Mapping[str, Any]) -> tuple[int, int, str]:
    key = record.get("id")
    return (0, key, "") if isinstance(key, int) else (1, 0, str(key))
