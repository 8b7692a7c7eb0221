"""Pydantic models of the HaloPSA records the app reads.

Lenient where HaloPSA is loose (unknown fields ignored, null/empty/sentinel dates become None, ids
given as floats or strings become int) and strict where the app depends on a field: a contract or a
recurring invoice without a client id is rejected, because it cannot entitle anyone to anything.

Field names were checked against public material generated from HaloPSA's own OpenAPI schema
(Angelic-Software/angelic models, covenanttechnologysolutions/halopsa-rest) and against the
homotechsual/HaloAPI PowerShell module and n8n's HaloPSA node. Each model's docstring lists the
fields the app relies on; everything else HaloPSA sends is dropped at this boundary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

# HaloPSA writes "no date" in several ways; all mean None to us.
_NULL_DATE_PREFIXES = ("0001-01-01", "1900-01-01")


def _none_if_null_date(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text.startswith(_NULL_DATE_PREFIXES):
            return None
        # HaloPSA dates carry no zone and are UTC; keep the naive wall time.
        return text.removesuffix("Z")
    return value


def _int_id(value: Any) -> Any:
    # The schema types several ids as doubles (site_id: 12.0): accept whole floats, digit strings.
    if isinstance(value, bool):
        raise ValueError("an id must be a number, not a boolean")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("an id must be a whole number")
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


def _none_if_zero_id(value: Any) -> Any:
    # HaloPSA uses 0 (or -1) for "no link" in optional foreign keys.
    value = _int_id(value)
    if value in (None, "", 0, -1):
        return None
    return value


def _positive(value: Any) -> Any:
    value = _int_id(value)
    if isinstance(value, int) and value <= 0:
        raise ValueError("must be a positive id")
    return value


HaloDateTime = Annotated[datetime | None, BeforeValidator(_none_if_null_date)]
RecordId = Annotated[int, BeforeValidator(_positive)]
OptionalId = Annotated[int | None, BeforeValidator(_none_if_zero_id)]


def _text(value: Any) -> Any:
    return "" if value is None else value


Text = Annotated[str, BeforeValidator(_text)]


class HaloRecord(BaseModel):
    """Base of every HaloPSA record model: unknown fields are ignored, models are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: RecordId


class Client(HaloRecord):
    """`GET /api/Client` -> `clients`. Relied on: id, name, inactive."""

    name: Text
    inactive: bool = False
    toplevel_id: OptionalId = None


class Site(HaloRecord):
    """`GET /api/Site` -> `sites`. Relied on: id, name, client_id, inactive."""

    name: Text
    client_id: RecordId
    inactive: bool = False


class Contract(HaloRecord):
    """`GET /api/ClientContract` -> `contracts`.

    Relied on: id, client_id (required), ref, contracttype_name (the type a rule names), start_date,
    end_date, active, expired. site_id scopes a contract to one site when set.
    """

    client_id: RecordId
    client_name: Text = ""
    site_id: OptionalId = None
    ref: Text = ""
    contracttype: OptionalId = None
    contracttype_name: Text = ""
    start_date: HaloDateTime = None
    end_date: HaloDateTime = None
    active: bool = True
    expired: bool = False


class RecurringInvoiceLine(BaseModel):
    """One entry of a recurring invoice's `lines` (with `includelines=true`).

    Relied on: id, item id (`_itemid`, or `item_id` where an instance sends that), item_code,
    item_shortdescription, qty_order, unit_price, startdate, enddate, isinactive.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: RecordId
    item_id: OptionalId = Field(default=None, validation_alias=AliasChoices("_itemid", "item_id"))
    item_code: Text = ""
    item_shortdescription: Text = ""
    qty_order: float = 0.0
    unit_price: float = 0.0
    startdate: HaloDateTime = None
    enddate: HaloDateTime = None
    isinactive: bool = False


class RecurringInvoice(HaloRecord):
    """`GET /api/RecurringInvoice?includelines=true` -> `invoices`.

    Relied on: id, client_id (required), sitenumber (the site, HaloPSA's name for it), disabled
    (HaloPSA's inactive flag for recurring invoices), startdate, enddate, lines.
    """

    client_id: RecordId
    client_name: Text = ""
    sitenumber: OptionalId = None
    contract_id: OptionalId = None
    disabled: bool = False
    startdate: HaloDateTime = None
    enddate: HaloDateTime = None
    nextcreationdate: HaloDateTime = None
    lines: list[RecurringInvoiceLine] = Field(default_factory=list)


class Item(HaloRecord):
    """`GET /api/Item` -> `items`.

    Relied on: id, name, and the codes an MSP may match on: internalreference, externalreference,
    supplier_part_code. baseprice/recurringprice price the reconciliation report.
    """

    name: Text
    description: Text = ""
    internalreference: Text = ""
    externalreference: Text = ""
    supplier_part_code: Text = ""
    baseprice: float = 0.0
    recurringprice: float = 0.0
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


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Reject:
    """A record HaloPSA sent that the app cannot use, and why (no field values: they may be PII)."""

    kind: str
    record_id: str
    reason: str


@dataclass(slots=True)
class Parsed(Generic[M]):
    """Valid records plus rejects with reasons; a bad record never costs the good ones."""

    records: list[M] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def describe_error(error: ValidationError) -> str:
    """A one-line reason from a validation error, naming fields but never echoing their values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in item.get("loc", ())) or "record"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse_records(model: type[M], raw: Iterable[Any], kind: str | None = None) -> Parsed[M]:
    """Validate raw HaloPSA JSON objects into `model`, collecting rejects instead of raising."""
    kind = kind or model.__name__
    result: Parsed[M] = Parsed()
    for position, item in enumerate(raw):
        record_id = _raw_id(item, position)
        if not isinstance(item, Mapping):
            result.rejects.append(Reject(kind, record_id, "record is not a JSON object"))
            continue
        try:
            result.records.append(model.model_validate(item))
        except ValidationError as error:
            result.rejects.append(Reject(kind, record_id, describe_error(error)))
    return result


def _raw_id(item: Any, position: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("id"), int | float | str):
        return str(item["id"])[:32]
    return f"#{position}"


def as_date(value: datetime | None) -> date | None:
    """The calendar date of a HaloPSA timestamp (None stays None)."""
    return None if value is None else value.date()
