"""Pydantic models of the HaloPSA records the app reads.

Built from HaloPSA's real payloads (../shared/halo-openapi/: an anonymised real
`GET /api/RecurringInvoice/{id}` response and HaloPSA's own OpenAPI document), not from assumptions:
- record ids have any sign (recurring invoice ids are negative, e.g. -94) and arrive as ints,
  doubles (`21.0`) or strings; a reference that is "not set" is -1, 0 or -2;
- dates before 1902 (`0001-01-01`, `1899-12-30`, `1900-01-01`) are no date, end dates of 2099 or
  later are open; naive, `Z` (7 fractional digits) and `+00:00` datetimes keep their wall time, so
  calendar dates compare by their `YYYY-MM-DD` as DESIGN.md section 4 says;
- strings are "" rather than null and optional keys are often absent.
Lenient where HaloPSA is loose (unknown fields ignored) and strict where the app depends on a field:
a contract or a recurring invoice without a client cannot entitle anyone to anything. A bad
recurring invoice line rejects that line, not its invoice. Each model's docstring lists the fields
the app relies on; everything else HaloPSA sends is dropped at this boundary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from shared.records.ids import entra_tenant_id, whole_number

# One vocabulary of record types for reads, rejects, run records and the sync status.
RECORD_TYPES = ("clients", "sites", "contracts", "invoices", "invoice_lines", "items")

# HaloPSA writes "no date" as 0001-01-01, 1899-12-30 (the OLE epoch) or 1900-01-01, and "no end" as
# 2099-12-31 (a recurring invoice schedule's open end). Any year before 1902 / from 2099 counts.
_FIRST_REAL_YEAR = 1902
_OPEN_END_YEAR = 2099
# Naive ("2025-03-20T18:50:25.057"), Z with 7 fractional digits, or +00:00: HaloPSA mixes all three.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
# "Not set" in a HaloPSA reference (contract_id -1, sitenumber 0, salesorder_id -2).
_UNSET_REFERENCES = frozenset({-2, -1, 0})


def _wall_time(text: str) -> datetime:
    """The wall-clock time written in `text`, without its zone: dates compare by their prefix."""
    found = _DATETIME.fullmatch(text)
    if found is None:
        raise ValueError("not a HaloPSA date or datetime")
    year, month, day, hour, minute, second, fraction, _zone = found.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micros
    )


def _halo_datetime(value: Any, *, open_end: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=None)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        moment = _wall_time(text)
    else:
        return value  # let pydantic name the wrong type
    if moment.year < _FIRST_REAL_YEAR or (open_end and moment.year >= _OPEN_END_YEAR):
        return None
    return moment


def _start_or_date(value: Any) -> Any:
    return _halo_datetime(value, open_end=False)


def _end_date(value: Any) -> Any:
    return _halo_datetime(value, open_end=True)


def _int_id(value: Any) -> Any:
    # HaloPSA sends ids as ints, as doubles (site_id: 12.0) or as strings ("21", "21.0").
    if type(value) is int:
        return value  # the common case, first: this runs for every id of every record
    if isinstance(value, bool):
        raise ValueError("an id must be a number, not a boolean")
    if isinstance(value, str | float):
        number = whole_number(value)
        if number is None:
            raise ValueError("an id must be a whole number")
        return number
    return value


def _optional_reference(value: Any) -> Any:
    value = _int_id(value)
    if value is None or value == "" or value in _UNSET_REFERENCES:
        return None
    return value


def _required_reference(value: Any) -> Any:
    value = _int_id(value)
    if isinstance(value, int) and value in _UNSET_REFERENCES:
        raise ValueError("is not set")
    return value


def _number(value: Any) -> Any:
    if value is None or value == "":
        return 0.0
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# Dates a start or a plain timestamp: before 1902 means no date.
HaloDateTime = Annotated[datetime | None, BeforeValidator(_start_or_date)]
# An end date: also 2099 or later means open-ended.
HaloEndDate = Annotated[datetime | None, BeforeValidator(_end_date)]
# A record's own id: any sign (recurring invoices are negative).
RecordId = Annotated[int, BeforeValidator(_int_id)]
# A link to another record that must be set (a contract's client).
Reference = Annotated[int, BeforeValidator(_required_reference)]
# A link that may be "not set" (-1, 0, -2): None.
OptionalId = Annotated[int | None, BeforeValidator(_optional_reference)]
Number = Annotated[float, BeforeValidator(_number)]
QuantityCode = Annotated[int, BeforeValidator(lambda v: 0 if v is None or v == "" else v)]


def _text(value: Any) -> Any:
    return "" if value is None else value


Text = Annotated[str, BeforeValidator(_text)]


class HaloRecord(BaseModel):
    """Base of every HaloPSA record model: unknown fields are ignored, models are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # The record type rejects and counts are filed under (one of RECORD_TYPES, or the model name).
    record_type: ClassVar[str] = ""
    # Lists of child records validated one by one, so a bad child costs only itself:
    # field name -> (child model, the child's record type).
    children: ClassVar[Mapping[str, tuple[type[BaseModel], str]]] = {}

    id: RecordId


def _entra_tenants(value: Any) -> Any:
    """The Entra tenant ids of a client's `azure_tenants` (or of the stored form, a list of ids),
    canonical, unique and sorted. Lenient: an entry that is not an object with a GUID (or a GUID),
    and the all-zero GUID, are left out, never a reason to reject the client."""
    if not isinstance(value, list | tuple):
        return ()
    found = set()
    for entry in value:
        raw = entry.get("azure_tenant_id") if isinstance(entry, Mapping) else entry
        tenant = entra_tenant_id(raw)
        if tenant is not None:
            found.add(tenant)
    return tuple(sorted(found))


class Client(HaloRecord):
    """`GET /api/Client` -> `clients`. Relied on: id, name, inactive, and the Microsoft Entra
    tenants linked to the client (an exact key for mapping it to an ImmyBot tenant).

    Where the Entra tenants are (../shared/halo-openapi/): HaloPSA's OpenAPI document
    (`halo-api-v2.swagger.json.gz`) gives the client schema `Area` a member `azure_tenants`, an
    array of `AreaAzureTenant` objects (`id`, `client_id`, `azure_tenant_id` string,
    `azure_tenant_name`, `azure_tenant_domain`, `details_id`, ...); `GET /api/Client` adds them
    only with `includeazuretenants=true` ("Include azure tenants in the response",
    `halo-api-subset.json`). Behind them is the table AreaAzureTenant (`halo-sql-columns.json`:
    AATAreaId -> client_id, AATAzureTenantId nvarchar(100) NOT NULL -> azure_tenant_id; several
    per client). The newer spec's single `Area_List.azure_tenant_id` (column AAzureTenantId) is not
    read: that list is where HaloPSA keeps a client's linked tenants.
    """

    record_type: ClassVar[str] = "clients"

    name: Text
    inactive: bool = False
    toplevel_id: OptionalId = None
    entra_tenant_ids: Annotated[tuple[str, ...], BeforeValidator(_entra_tenants)] = Field(
        default=(), validation_alias=AliasChoices("azure_tenants", "entra_tenant_ids")
    )


class Site(HaloRecord):
    """`GET /api/Site` -> `sites`. Relied on: id, name, client_id, inactive."""

    record_type: ClassVar[str] = "sites"

    name: Text
    client_id: Reference
    inactive: bool = False


class Contract(HaloRecord):
    """`GET /api/ClientContract` -> `contracts`.

    Relied on: id, client_id (required), ref, contracttype_name (the type a rule names), start_date,
    end_date, active, expired. site_id scopes a contract to one site when set.
    """

    record_type: ClassVar[str] = "contracts"

    client_id: Reference
    client_name: Text = ""
    site_id: OptionalId = None
    ref: Text = ""
    contracttype: OptionalId = None
    contracttype_name: Text = ""
    start_date: HaloDateTime = None
    end_date: HaloEndDate = None
    active: bool = True
    expired: bool = False


class QuantityType:
    """`recurring_invoice_quantity_type` of a recurring invoice line (HaloPSA's codes).

    0 is a quantity typed by hand (`qty_order`); every other code is calculated by HaloPSA at invoice
    time from what it counts, so `qty_order` holds the last calculated value, often 0.
    """

    FIXED: ClassVar[int] = 0
    NAMES: ClassVar[Mapping[int, str]] = {
        0: "fixed",
        1: "licences",
        2: "users",
        3: "devices",
        4: "subscriptions",
    }

    @classmethod
    def name_of(cls, code: int) -> str:
        """HaloPSA's name for a quantity type code ("type 7" for codes it has not documented)."""
        return cls.NAMES.get(code, f"type {code}")


class RecurringInvoiceLine(BaseModel):
    """One entry of a recurring invoice's `lines` (with `includelines=true`, or read by id).

    Relied on: id, item id (`_itemid`, or `item_id` where an instance sends that), the line's own
    item codes (item_code, item_internal_reference, item_external_reference: usually ""),
    item_shortdescription, qty_order, recurring_invoice_quantity_type, unit_price, startdate,
    enddate, isinactive, site (a line bound to one site; -1 when not).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: RecordId
    item_id: OptionalId = Field(default=None, validation_alias=AliasChoices("_itemid", "item_id"))
    item_code: Text = ""
    item_internal_reference: Text = ""
    item_external_reference: Text = ""
    item_shortdescription: Text = ""
    qty_order: Number = 0.0
    recurring_invoice_quantity_type: QuantityCode = QuantityType.FIXED
    unit_price: Number = 0.0
    site: OptionalId = None
    startdate: HaloDateTime = None
    enddate: HaloEndDate = None
    isinactive: bool = False

    @property
    def calculated(self) -> bool:
        """Whether HaloPSA calculates this line's quantity at invoice time (any type but 0)."""
        return self.recurring_invoice_quantity_type != QuantityType.FIXED

    @property
    def known_quantity(self) -> float | None:
        """The billed quantity: qty_order for a fixed line; for a calculated line its last
        calculated value when above 0, else None (unknown until HaloPSA invoices)."""
        if self.calculated and self.qty_order <= 0:
            return None
        return self.qty_order


class Schedule(BaseModel):
    """A recurring invoice's `schedule`: when the invoice runs. Relied on: disabled, startdate,
    end_date (2099-12-31 = open)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    disabled: bool = False
    startdate: HaloDateTime = None
    end_date: HaloEndDate = None


class RecurringInvoice(HaloRecord):
    """`GET /api/RecurringInvoice?includelines=true` -> `invoices`; ids are negative (-94).

    Relied on: id, client_id (required), sitenumber (the site, HaloPSA's name for it), disabled
    (HaloPSA's inactive flag for recurring invoices), schedule, startdate, enddate, lines.
    """

    record_type: ClassVar[str] = "invoices"
    children: ClassVar[Mapping[str, tuple[type[BaseModel], str]]] = {
        "lines": (RecurringInvoiceLine, "invoice_lines")
    }

    client_id: Reference
    client_name: Text = ""
    sitenumber: OptionalId = None
    contract_id: OptionalId = None
    disabled: bool = False
    schedule: Schedule | None = None
    startdate: HaloDateTime = None
    enddate: HaloEndDate = None
    nextcreationdate: HaloDateTime = None
    lines: list[RecurringInvoiceLine] = Field(default_factory=list)


class Item(HaloRecord):
    """`GET /api/Item` -> `items`.

    Relied on: id, name, and the codes an MSP may match on: internalreference, externalreference,
    supplier_part_code. baseprice/recurringprice price the reconciliation report.
    """

    record_type: ClassVar[str] = "items"

    name: Text
    description: Text = ""
    internalreference: Text = ""
    externalreference: Text = ""
    supplier_part_code: Text = ""
    baseprice: Number = 0.0
    recurringprice: Number = 0.0
    isrecurringitem: bool = False


class Ticket(HaloRecord):
    """`GET /api/Tickets/{id}`. Relied on: id, summary, client_id, client_name, site_id,
    site_name, user_id, user_name, user_email."""

    summary: Text = ""
    client_id: OptionalId = None
    client_name: Text = ""
    site_id: OptionalId = None
    site_name: Text = ""
    user_id: OptionalId = None
    user_name: Text = ""
    user_email: Text = ""


class Asset(HaloRecord):
    """`GET /api/Asset?client_id=` -> `assets`. Relied on: id, inventory_number, key_field
    (commonly the device name), client_id, site_id, assettype_name, inactive."""

    inventory_number: Text = ""
    key_field: Text = ""
    client_id: OptionalId = None
    site_id: OptionalId = None
    site_name: Text = ""
    assettype_name: Text = ""
    inactive: bool = False


class User(HaloRecord):
    """`GET /api/Users?client_id=` -> `users`. Relied on: id, name, emailaddress, client_id,
    site_id, inactive."""

    name: Text = ""
    emailaddress: Text = ""
    client_id: OptionalId = None
    site_id: OptionalId = None
    inactive: bool = False


def as_date(value: datetime | None) -> date | None:
    """The calendar date of a HaloPSA timestamp (None stays None)."""
    return None if value is None else value.date()
