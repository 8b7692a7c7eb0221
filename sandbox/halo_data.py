"""Data sets for the HaloPSA sandbox: a hand-written demo set, a seeded generator, bad records.

Records are plain dicts in the shapes HaloPSA really sends (DESIGN.md section 8, built from the real
`GET /api/RecurringInvoice/{id}` sample and the OpenAPI subset in ../shared/halo-openapi/), not the
shapes the app would like: recurring invoice ids are negative (-1, -2, ...); invoices carry a
`schedule` (disabled, startdate, end_date; "2099-12-31T00:00:00" = open); lines link their item by
`_itemid` with `item_code` "", carry `recurring_invoice_quantity_type` (0 fixed, 1 licences, 2 users,
3 devices, 4 subscriptions) and, when calculated, usually `qty_order` 0.0; "no date" is any of
"0001-01-01T00:00:00", "1899-12-30T00:00:00", "1900-01-01T00:00:00"; "not set" references are -1, 0
or -2; ids of references are sometimes decimals (1.0) or strings ("6"); datetimes mix naive (with
and without milliseconds), "Z" with 7 fractional digits and "+00:00"; optional keys are often
absent. Names and e-mail addresses are invented (example.com domains).

The demo set (`demo_data(today)`) dates everything relative to `today`, so this table holds on any
day. Coverage as DESIGN.md section 4 defines it. Huntress = a contract of type "Managed Security"
(demo rule: grace 7 days). SentinelOne = a line for the item "SentinelOne Complete" (item 2, codes
on the item: internalreference "S1-COMPLETE", externalreference "S1-CPL", supplier_part_code
"S1-CMPL-1M"); the demo rule matches code "S1-COMPLETE" or name "SentinelOne Complete". Invoice
-N/line L; "fixed" = quantity type 0 (billed qty_order), "calculated" = types 1-4.

    id  client                  Huntress                          SentinelOne
    1   Contoso Ltd             YES contract 1, in date           YES -1/101 item 2, fixed 25
    2   Fabrikam, Inc.          YES contract 3, ends in 20 d      no  -2/201 fixed with qty_order 0
                                                                      (bills nothing); -12/1201 its
                                                                      schedule starts in 10 d
    3   Northwind Traders       no  contract 4 ended 45 d ago,    YES -3/301 by name only: no item
                                    expired (past 7 d grace)          (_itemid 0), item_code "", text
                                                                      "  sentinelone COMPLETE ", fixed 8
    4   Tailspin Toys LLC       no  contract 6 starts in 14 d     no  -4 header disabled; -10 its
                                                                      schedule disabled
    5   Adventure Works         no  contract 7 active false       no  -5/501 line ended 5 d ago;
                                                                      -5/503 line isinactive; -11 its
                                                                      schedule ended 30 d ago
    6   Wide World Importers    YES contract 9, end 2099-12-31    YES -6/601 item 2 (as "2"), devices
                                                                      (type 3), qty_order 0: quantity
                                                                      calculated, value unknown
    7   Woodgrove Bank          no  no Managed Security contract  YES -7/701 generic item 7; only the
                                                                      line's item_internal_reference
                                                                      is S1-COMPLETE; subscriptions
                                                                      (type 4), last calculated 40
    8   Litware Inc (inactive)  no  contract 12 in date, but      no  -9/901 fixed 5, but the client
                                    the client is inactive            is inactive

Huntress targets: Contoso Ltd, Fabrikam, Inc., Wide World Importers (grace 0 or 7 alike).
SentinelOne targets by how the rule names the item:
    by id 2 (`_itemid`)                 Contoso Ltd, Wide World Importers
    by code S1-COMPLETE                 + Woodgrove Bank (item code on the line, not on its item)
    by name "SentinelOne Complete"      Contoso Ltd, Wide World Importers, + Northwind Traders
    demo rule (code or name)            Contoso Ltd, Northwind Traders, Wide World Importers,
                                        Woodgrove Bank; quantities: 25 fixed, 8 fixed, calculated
                                        (unknown), calculated (last 40)
Microsoft 365 Apps (demo rule: item name "Microsoft 365 Business Premium", item 3, scoped to site 10):
the item is billed to Contoso Ltd (-1/102), Fabrikam, Inc. (-2/202), Adventure Works (-5/502) and
Woodgrove Bank (-8/801, users, last counted 60), but only -8 is billed at site 10 (Harbor Street
Branch), so the rule's one target is Woodgrove Bank.
Other deliberate shapes: -3 has no schedule (live by its header); -8's schedule starts
"1900-01-01" (no date: started); -7 carries header startdate/enddate (enddate "1900-01-01" = none);
contract 2 has no end_date key, contract 5 ends "0001-01-01" (open); every line's lineactiondate is
"1899-12-30"; sites give client_id as decimals (1.0); there is no site 11 (deleted: HaloPSA does not
reuse ids), so the sites are 1-10 and 12. Ticket 6's summary holds markup, for escaping tests;
ticket 11 has no client (client_id -1, HaloPSA's "not set"), no site and no user.

Microsoft Entra tenants linked to clients (`azure_tenants`, listed with `includeazuretenants=true`;
AreaAzureTenant rows in the report tables), for mapping clients to ImmyBot tenants
(sandbox/immybot_data.py has the other half):

    2   Fabrikam, Inc.          00000000-0000-0000-0000-000000000000 (a link never finished: none)
    3   Northwind Traders       ENTRA_NORTHWIND, typed in capitals: its ImmyBot tenant writes it
                                in lower case, and tells it from "Northwind Traders Ltd"
    7   Woodgrove Bank          ENTRA_WOODGROVE: linked to two ImmyBot tenants (ambiguous)
    every other client          none (`azure_tenants: []`)
"""

from __future__ import annotations

import functools
import gc
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

Record = dict[str, Any]

RECORD_TYPES = ("clients", "sites", "contracts", "invoices", "items", "tickets", "assets", "users")
# HaloPSA's ways of writing "no date" (.NET's MinValue, OLE automation's zero, SQL Server's 0),
# and the far-future date an open schedule or contract ends on.
NULL_DATE = "0001-01-01T00:00:00"
OLE_NULL_DATE = "1899-12-30T00:00:00"
SQL_NULL_DATE = "1900-01-01T00:00:00"
OPEN_END = "2099-12-31T00:00:00"
GARBAGE_DATE = "not-a-date"

CONTRACT_TYPES: dict[int, str] = {
    1: "Managed Security",
    2: "Managed Services",
    3: "Backup",
    4: "Break-Fix Block Hours",
}
_CONTRACT_ABBR = {1: "MSEC", 2: "MSVC", 3: "BKP", 4: "BFH"}

# (name, internalreference, externalreference, supplier_part_code, recurringprice)
_CATALOGUE: tuple[tuple[str, str, str, str, float], ...] = (
    ("Huntress Managed EDR", "HUNTRESS-EDR", "HUN-EDR", "HNT-MEDR-1M", 4.50),
    ("SentinelOne Complete", "S1-COMPLETE", "S1-CPL", "S1-CMPL-1M", 6.00),
    ("Microsoft 365 Business Premium", "M365-BP", "CFQ7TTC0LCHC", "MS-365-BP", 22.00),
    ("Cloud Backup", "BACKUP-CLOUD", "BKP-CLD", "BKP-CLD-100G", 35.00),
    ("Managed Services per device", "MS-DEVICE", "MSD", "INT-MSD", 45.00),
    ("Microsoft 365 Business Standard", "M365-BS", "CFQ7TTC0LDPB", "MS-365-BS", 12.50),
    ("Exchange Online (Plan 1)", "EXO-P1", "CFQ7TTC0LH16", "MS-EXO-P1", 4.00),
    ("Microsoft Defender for Business", "MDB", "CFQ7TTC0LCHF", "MS-MDB", 3.00),
    ("Email Security Gateway", "EMAIL-SEC", "ESG", "ESG-USER-1M", 2.75),
    ("Security Awareness Training", "SAT", "SAT-USER", "SAT-USER-1M", 1.95),
    ("Managed Firewall", "FW-MANAGED", "FWM", "FW-MGD-1M", 60.00),
    ("Server Monitoring", "SRV-MON", "SRVM", "INT-SRVMON", 25.00),
)
# The quantity type a catalogue item's lines usually have (0 fixed; 1 licences, 2 users, 3 devices,
# 4 subscriptions): per-user and per-device products are counted by HaloPSA at invoice time.
_ITEM_QTY_TYPE = (3, 3, 1, 0, 3, 1, 2, 3, 2, 2, 0, 3)


class JsonDataSet:
    """A sandbox data set: a dataclass of record lists, stored as one JSON object of lists."""

    def to_json(self) -> dict[str, list[Record]]:
        """One JSON-ready object with a list per record type (the lists are not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """A data set from `to_json()`'s shape; missing types are empty, unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ValueError("a data set must be a JSON object")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            # A typo ("contract") would otherwise silently serve nothing.
            raise ValueError(f"unknown record types: {', '.join(unknown)}")
        lists: dict[str, list[Record]] = {}
        for name in names:
            value = data.get(name, [])
            if not isinstance(value, list):
                raise ValueError(f"'{name}' must be a list")
            lists[name] = value
        return cls(**lists)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a data set written by `dump`."""
        with Path(path).open(encoding="utf-8") as handle:
            return cls.from_json(json.load(handle))

    def dump(self, path: str | Path) -> None:
        """Write the data set as one JSON object."""
        with Path(path).open("w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, separators=(",", ":"))


@dataclass
class HaloDataSet(JsonDataSet):
    """Every record the sandbox serves, one list of HaloPSA JSON objects per record type."""

    clients: list[Record] = field(default_factory=list)
    sites: list[Record] = field(default_factory=list)
    contracts: list[Record] = field(default_factory=list)
    invoices: list[Record] = field(default_factory=list)
    items: list[Record] = field(default_factory=list)
    tickets: list[Record] = field(default_factory=list)
    assets: list[Record] = field(default_factory=list)
    users: list[Record] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Records per type, plus recurring invoice lines under "invoice_lines"."""
        result = {name: len(getattr(self, name)) for name in RECORD_TYPES}
        result["invoice_lines"] = sum(
            len(invoice.get("lines") or [])
            for invoice in self.invoices
            if isinstance(invoice, Mapping)
        )
        return result

    def copy(self) -> HaloDataSet:
        """A deep copy (records are flat dicts; invoice lines are copied too)."""
        return HaloDataSet(
            **{name: [_copy(r) for r in getattr(self, name)] for name in RECORD_TYPES}
        )


def _copy(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    copied = dict(record)
    if isinstance(copied.get("lines"), list):
        copied["lines"] = [
            dict(line) if isinstance(line, dict) else line for line in copied["lines"]
        ]
    return copied


def halo_date(day: date) -> str:
    """A date the way HaloPSA writes it."""
    return f"{day.isoformat()}T00:00:00"


def _first_of_next_month(today: date) -> date:
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


def stamp(day: date, form: int = 0, clock: str = "00:00:00") -> str:
    """A datetime in one of the forms HaloPSA mixes: 0 naive, 1 naive with milliseconds,
    2 "Z" with 7 fractional digits, 3 "+00:00". All mean the same UTC wall time."""
    if form == 1:
        return f"{day.isoformat()}T{clock}.057"
    if form == 2:
        return f"{day.isoformat()}T{clock}.0570000Z"
    if form == 3:
        return f"{day.isoformat()}T{clock}+00:00"
    return f"{day.isoformat()}T{clock}"


def _item(item_id: int, recurring: bool = True) -> Record:
    name, internal, external, supplier, price = _CATALOGUE[item_id - 1]
    return {
        "id": item_id,
        "name": name,
        "description": f"{name} (per unit, billed monthly)",
        "internalreference": internal,
        "externalreference": external,
        "supplier_part_code": supplier,
        "nominalcode": "4000",
        "baseprice": price,
        "costprice": round(price * 0.6, 2),
        "recurringprice": price,
        "isrecurringitem": recurring,
        "assetgroup_id": 1,
        "assetgroup_name": "Recurring Services",
    }


@functools.lru_cache(maxsize=8)
def _month(today: date) -> dict[str, str]:
    """The datetimes every recurring invoice of `today`'s billing month shares, computed once."""
    this_month = today.replace(day=1)
    next_month = _first_of_next_month(today)
    after = _first_of_next_month(next_month)
    return {
        # HaloPSA shows run times in UTC: a midnight run in British summer time is 23:00 the day
        # before, as in the real sample ("2024-03-31T23:00:00").
        "lastcreated": stamp(this_month - timedelta(days=1), 0, "23:00:00"),
        "nextcreationdate": stamp(next_month - timedelta(days=1), 0, "23:00:00"),
        "nextcreationperiod": (
            f"{next_month:%d/%m/%Y} 0:00 - {after - timedelta(days=1):%d/%m/%Y} 0:00"
        ),
        "period_start_date": halo_date(this_month),
        "period_end_date": halo_date(next_month - timedelta(days=1)),
        "duedate": stamp(this_month + timedelta(days=29), 1, "13:54:46"),
        "last_modified": stamp(today - timedelta(days=3), 1, "18:50:25"),
        "date_created": stamp(today - timedelta(days=400), 2, "14:00:19"),
    }


def _schedule(
    schedule_id: int,
    today: date,
    start: str,
    end: str = OPEN_END,
    disabled: bool = False,
    ran: bool = True,
) -> Record:
    """A monthly recurring invoice schedule as HaloPSA embeds it (`schedule`, type 54).

    `ran`: whether it has created an invoice yet (lastcreated a real date, not "1900-01-01").
    """
    month = _month(today)
    return {
        "id": schedule_id,
        "name": f"(Untitled Template {schedule_id})",
        "type": 54,
        "disabled": disabled,
        "startdate": start,
        "end_date": end,
        "lastcreated": month["lastcreated"] if ran else SQL_NULL_DATE,
        "nextcreationdate": month["nextcreationdate"],
        "period": 2,
        "scheduletype": 2,
        "time": "1901-01-01T00:00:00",
    }


def _line(
    line_id: int,
    invoice_id: int,
    client_id: int,
    sequence: int,
    item_id: Any,
    description: str,
    qty: float,
    price: float,
    qty_type: int,
) -> Record:
    """A recurring invoice line with the keys of the real sample, its dates unset (keys absent)."""
    return {
        "id": line_id,
        "ihid": invoice_id,
        "_itemid": item_id,
        "item_code": "",
        "item_shortdescription": description,
        "item_longdescription": description,
        "nominal_code": "4000",
        "productnumber": "",
        "item_internal_reference": "",
        "item_external_reference": "",
        "qty_order": float(qty),
        "unit_price": price,
        "net_amount": round(qty * price, 2),
        "unit_cost": round(price * 0.6, 2),
        "contract_id": -1,
        "recurring_invoice_id": -1,
        "recurring_invoice_line_id": 0,
        "asset_id": -1,
        "site": -1,
        "isinactive": False,
        "sequenceid": sequence,
        "recurring_invoice_quantity_type": qty_type,
        "quantity_users": [],
        "quantity_assets": [],
        "quantity_licences": [],
        "quantity_subscriptions": [],
        "lineactiondate": OLE_NULL_DATE,
        "original_client_id": client_id,
    }


def _invoice(
    invoice_id: int,
    client_id: Any,
    client_name: str,
    site_id: int,
    contract: tuple[int, str],
    schedule: Record | None,
    lines: list[Record],
    today: date,
    disabled: bool = False,
    created: str = "",
) -> Record:
    """A recurring invoice header with the keys of the real sample; `schedule` None = no key."""
    total = round(sum(line["net_amount"] for line in lines), 2)
    month = _month(today)
    record: Record = {
        "id": invoice_id,
        "use": "invoice",
        "disabled": disabled,
        "is_recurring_invoice": True,
        "client_id": client_id,
        "client_name": client_name,
        "sitenumber": site_id,
        "contract_id": contract[0],
        "contract_ref": contract[1],
        "reference": "Monthly Billing",
        "invoicenumber": "0",
        "posted": False,
        "total": total,
        "amountdue": total,
        "currency": "$",
        "period": 2,
        "schedule_id": schedule["id"] if schedule else 0,
        "lastcreated": schedule["lastcreated"] if schedule else SQL_NULL_DATE,
        "nextcreationdate": schedule["nextcreationdate"] if schedule else SQL_NULL_DATE,
        "nextcreationperiod": month["nextcreationperiod"],
        "period_start_date": month["period_start_date"],
        "period_end_date": month["period_end_date"],
        "duedate": month["duedate"],
        "last_modified": month["last_modified"],
        "date_created": created or month["date_created"],
        "schedule_date": OLE_NULL_DATE,
        "datesent": OLE_NULL_DATE,
        "salesorder_id": -2,
        "ticket_id": 0,
        "paymentstatus": -1,
        "requires_approval": False,
        "invoice_display": f"ID {invoice_id} - Monthly Billing ( {total:.2f})",
    }
    if schedule is not None:
        record["schedule"] = schedule
    record["lines"] = lines
    return record


def _contract(
    contract_id: int,
    client_id: Any,
    client_name: str,
    contract_type: int,
    start: str,
    end: str | None,
    today: date,
    active: bool = True,
    site: tuple[int, str] = (-1, ""),
) -> Record:
    """A `ContractHeader_List` row; `end` None = no end_date key. `started`/`expired` follow the
    dates as HaloPSA sets them (expired once a real end date has passed)."""
    real_end = end is not None and end[:4].isdigit() and 1902 <= int(end[:4]) < 2099
    record: Record = {
        "id": contract_id,
        "client_id": client_id,
        "client_name": client_name,
        "ref": f"{_CONTRACT_ABBR[contract_type]}-{contract_id:06d}",
        "refextra": "",
        "start_date": start,
        "started": start[:10] <= today.isoformat(),
        "expired": bool(real_end and end is not None and end[:10] < today.isoformat()),
        "site_id": site[0],
        "site_name": site[1],
        "contracttype": contract_type,
        "contracttype_name": CONTRACT_TYPES[contract_type],
        "active": active,
    }
    if end is not None:
        record["end_date"] = end
    return record


# -- the demo set ----------------------------------------------------------------------------

# (id, name, inactive, e-mail domain, device prefix)
_DEMO_CLIENTS = (
    (1, "Contoso Ltd", False, "contoso.example.com", "CONTOSO"),
    (2, "Fabrikam, Inc.", False, "fabrikam.example.com", "FABRIKAM"),
    (3, "Northwind Traders", False, "northwind.example.com", "NWT"),
    (4, "Tailspin Toys LLC", False, "tailspin.example.com", "TAILSPIN"),
    (5, "Adventure Works", False, "adventure-works.example.com", "AW"),
    (6, "Wide World Importers", False, "wideworld.example.com", "WWI"),
    (7, "Woodgrove Bank", False, "woodgrove.example.com", "WGB"),
    (8, "Litware Inc", True, "litware.example.com", "LITWARE"),
)
# Microsoft Entra tenant ids of the demo (invented version-4 GUIDs): HaloPSA lists them on
# clients, ImmyBot on tenants (sandbox.immybot_data).
ENTRA_NORTHWIND = "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"
ENTRA_NORTHWIND_LTD = "0b5e2c1a-3d4f-4e5a-8b6c-7d8e9f0a1b2c"
ENTRA_WOODGROVE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# (client_id, azure_tenant_id as HaloPSA holds it, azure_tenant_name, azure_tenant_domain),
# each an AreaAzureTenant object of HaloPSA's OpenAPI document; ids in this order from 1.
_DEMO_AZURE_TENANTS = (
    (2, ZERO_GUID, "", ""),
    (3, ENTRA_NORTHWIND.upper(), "Northwind Traders", "northwind.example.com"),
    (7, ENTRA_WOODGROVE, "Woodgrove Bank", "woodgrove.example.com"),
)
# (id, client_id, name, inactive): each client's head office has the client's id. Site 11 was
# deleted in HaloPSA, which never reuses an id: a rule naming it is refused (shared.api.references).
_DEMO_EXTRA_SITES = (
    (9, 1, "Redmond Lab", False),
    (10, 7, "Harbor Street Branch", False),
    (12, 5, "Old Warehouse", True),
)
# (id, client_id, site_id, name, inactive)
_DEMO_USERS = (
    (1, 1, 1, "Dana Whitfield", False),
    (2, 1, 9, "Priya Raman", False),
    (3, 2, 2, "Tom Okafor", False),
    (4, 2, 2, "Lena Park", True),
    (5, 3, 3, "Sam Keller", False),
    (6, 3, 3, "Irene Castillo", False),
    (7, 4, 4, "Jonah Reyes", False),
    (8, 5, 5, "Mia Novak", False),
    (9, 5, 5, "Omar Haddad", False),
    (10, 6, 6, "Grace Ndlovu", False),
    (11, 6, 6, "Felix Brandt", False),
    (12, 7, 7, "Hannah Weiss", False),
    (13, 7, 10, "Luis Moreno", False),
    (14, 8, 8, "Kate Doyle", False),
)
# (id, client_id, site_id, key_field, assettype_name, inactive)
_DEMO_ASSETS = (
    (1, 1, 1, "CONTOSO-WS01", "Workstation", False),
    (2, 1, 1, "CONTOSO-LT02", "Laptop", False),
    (3, 1, 1, "CONTOSO-SRV01", "Server", False),
    (4, 1, 9, "CONTOSO-LAB01", "Workstation", False),
    (5, 2, 2, "FABRIKAM-WS01", "Workstation", False),
    (6, 2, 2, "FABRIKAM-LT01", "Laptop", False),
    (7, 3, 3, "NWT-WS01", "Workstation", False),
    (8, 3, 3, "NWT-SRV01", "Server", False),
    (9, 4, 4, "TAILSPIN-LT01", "Laptop", False),
    (10, 5, 5, "AW-WS01", "Workstation", False),
    (11, 5, 5, "AW-WS02", "Workstation", True),
    (12, 6, 6, "WWI-WS01", "Workstation", False),
    (13, 6, 6, "WWI-LT01", "Laptop", False),
    (14, 6, 6, "WWI-SRV01", "Server", False),
    (15, 7, 7, "WGB-WS01", "Workstation", False),
    (16, 7, 10, "WGB-WS02", "Workstation", False),
    (17, 7, 7, "WGB-FW01", "Firewall", False),
    (18, 8, 8, "LITWARE-WS01", "Workstation", False),
)
# (id, client_id or 0, site_id or 0, user_id or 0, summary): 0 = not set on the ticket.
_DEMO_TICKETS = (
    (1, 1, 1, 1, "Outlook keeps asking for my password"),
    (2, 1, 9, 2, "New starter laptop for the lab"),
    (3, 2, 2, 3, "VPN drops every hour"),
    (4, 3, 3, 5, "Backup job failed overnight"),
    (5, 4, 4, 7, "Antivirus alert on TAILSPIN-LT01"),
    (6, 5, 5, 8, "Printer shows <script>alert('x')</script> & \"odd\" text"),
    (7, 6, 6, 10, "Install SentinelOne on the new server"),
    (8, 7, 10, 13, "Branch firewall firmware update"),
    (9, 8, 8, 14, "Offboarding: close the account"),
    (10, 7, 7, 0, "Scheduled maintenance window"),
    # Logged from a call before anyone knew the caller's company: the tab must say so.
    (11, 0, 0, 0, "Caller could not say which company they are with"),
)


def _azure_tenants(client_id: int, client_name: str) -> list[Record]:
    """A demo client's `azure_tenants`, as `GET /api/Client?includeazuretenants=true` lists them."""
    return [
        {
            "id": number,
            "details_id": 1,
            "client_id": client_id,
            "client_name": client_name,
            "azure_tenant_id": tenant_id,
            "azure_tenant_name": name,
            "azure_tenant_domain": domain,
        }
        for number, (owner, tenant_id, name, domain) in enumerate(_DEMO_AZURE_TENANTS, start=1)
        if owner == client_id
    ]


def demo_data(today: date) -> HaloDataSet:
    """The hand-written demo set (8 clients); see the module docstring for its expected targets."""

    def day(offset: int) -> str:
        return halo_date(today + timedelta(days=offset))

    def at(offset: int, form: int, clock: str = "12:00:00") -> str:
        return stamp(today + timedelta(days=offset), form, clock)

    clients = {cid: (name, inactive, domain) for cid, name, inactive, domain, _ in _DEMO_CLIENTS}
    sites: dict[int, tuple[int, str, bool]] = {cid: (cid, "Head Office", False) for cid in clients}
    sites.update({sid: (cid, name, inactive) for sid, cid, name, inactive in _DEMO_EXTRA_SITES})
    users = {uid: (cid, sid, name, inactive) for uid, cid, sid, name, inactive in _DEMO_USERS}

    def email(user_id: int) -> str:
        cid, _, name, _ = users[user_id]
        return f"{name.lower().replace(' ', '.')}@{clients[cid][2]}"

    data = HaloDataSet()
    for cid, (name, inactive, _) in clients.items():
        data.clients.append(
            {
                "id": cid,
                "name": name,
                "toplevel_id": 1,
                "toplevel_name": "Customers",
                "inactive": inactive,
                "customertype": 0,
                "main_site_id": cid,
                "main_site_name": "Head Office",
                "stopped": 0,
                "is_vip": False,
                "datecreated": at(-900 + cid, cid % 4, "17:26:35"),
                "azure_tenants": _azure_tenants(cid, name),
            }
        )
    for sid, (cid, name, inactive) in sorted(sites.items()):
        data.sites.append(
            {
                "id": sid,
                "name": name,
                # The schema types a site's client_id as a double; HaloPSA sends 1.0.
                "client_id": float(cid),
                "client_name": clients[cid][0],
                "clientsite_name": f"{clients[cid][0]}/{name}",
                "inactive": inactive,
            }
        )
    for uid, (cid, sid, name, inactive) in users.items():
        data.users.append(
            {
                "id": uid,
                "name": name,
                "emailaddress": email(uid),
                "client_id": cid,
                "client_name": clients[cid][0],
                "site_id": sid,
                "site_name": sites[sid][1],
                "inactive": inactive,
            }
        )
    for aid, cid, sid, key_field, kind, inactive in _DEMO_ASSETS:
        data.assets.append(
            {
                "id": aid,
                "inventory_number": f"INV-{aid:04d}",
                "key_field": key_field,
                "client_id": cid,
                "client_name": clients[cid][0],
                "site_id": sid,
                "site_name": sites[sid][1],
                "assettype_name": kind,
                "inactive": inactive,
            }
        )
    for tid, cid, sid, uid, summary in _DEMO_TICKETS:
        data.tickets.append(
            {
                "id": tid,
                "summary": summary,
                "details": f"Reported by phone. {summary}.",
                # HaloPSA writes "not set" references as -1 (DESIGN.md section 8).
                "client_id": cid or -1,
                "client_name": clients[cid][0] if cid else "",
                "site_id": sid or -1,
                "site_name": sites[sid][1] if sid else "",
                "user_id": uid,
                "user_name": users[uid][2] if uid else "",
                "user_email": email(uid) if uid else "",
                "status_name": "New",
                "dateoccurred": day(-(tid % 4)),
            }
        )

    data.items = [_item(i) for i in range(1, 6)]
    data.items.append(
        {
            "id": 6,
            "name": "Block Hours (10 h)",
            "description": "Prepaid break-fix hours",
            "internalreference": "BLOCK-10H",
            "externalreference": "",
            "supplier_part_code": "",
            "baseprice": 1200.0,
            "recurringprice": 0.0,
            "isrecurringitem": False,
        }
    )
    # A generic item: the MSP says which product a line is for on the line itself.
    data.items.append(
        {
            "id": 7,
            "name": "Endpoint Security per device",
            "description": "Endpoint protection, product named on the invoice line",
            "internalreference": "EPS-DEVICE",
            "externalreference": "",
            "supplier_part_code": "",
            "baseprice": 6.0,
            "recurringprice": 6.0,
            "isrecurringitem": True,
        }
    )

    # (id, client, site (-1/0/-2 = none), type, start, end (None = no key), active)
    contract_rows: tuple[tuple[int, Any, int, int, str, str | None, bool], ...] = (
        (1, 1, -1, 1, day(-200), day(165), True),
        (2, 1, -1, 2, day(-400), None, True),  # no end_date key: open
        (3, 2, -1, 1, day(-345), day(20), True),  # ends within 30 days
        (4, 3, -1, 1, day(-410), day(-45), True),  # ended: HaloPSA flags it expired
        (5, 3, 0, 3, day(-100), NULL_DATE, True),  # "0001-01-01": open
        (6, 4, -1, 1, day(14), day(379), True),  # starts in the future
        (7, 5, -1, 1, day(-60), day(305), False),  # switched off by hand
        (8, 5, -2, 4, day(-30), day(335), True),
        (9, 6.0, -1, 1, day(-500), OPEN_END, True),  # open; client_id as a decimal
        (10, 7, -1, 2, at(-90, 2, "00:00:00"), day(275), True),
        (11, 7, 10, 3, day(-90), day(275), True),  # scoped to one site
        (12, 8, -1, 1, day(-150), day(215), True),  # client is inactive
    )
    for cid_, client_id, site_id, ctype, start, end, active in contract_rows:
        client_name = clients[int(client_id)][0]
        site = (site_id, sites[site_id][1]) if site_id > 0 else (site_id, "")
        data.contracts.append(
            _contract(cid_, client_id, client_name, ctype, start, end, today, active, site)
        )
    refs = {c["id"]: c["ref"] for c in data.contracts}

    s1 = 2
    # A schedule is (start, end, disabled); start an offset in days or a literal; end None = open.
    Schedule = tuple[int | str, int | None, bool]
    # (invoice id, client id, sitenumber (0 = none), contract id (0/-1/-2 = none), header
    # disabled, schedule or None (no `schedule` key), lines); a line is
    # (line id, `_itemid` (0 = no item), qty_order, quantity type, keys to add or override).
    invoice_rows: tuple[tuple[int, Any, int, int, bool, Schedule | None, tuple[Any, ...]], ...] = (
        (-1, 1, 1, 1, False, (-400, None, False), (
            (101, s1, 25, 0, {}),
            (102, 3, 0, 2, {}),  # users, not counted yet
            (103, 5, 30, 3, {}),  # devices, last counted 30
        )),
        (-2, 2, 2, 3, False, (-345, None, False), (
            (201, s1, 0, 0, {}),  # fixed quantity 0: bills nothing
            (202, 3, 12, 0, {}),
        )),
        (-3, 3, 0, 0, False, None, (
            # Typed in by hand: no item link, no code, only a sloppy description.
            (301, 0, 8, 0, {"item_shortdescription": "  sentinelone COMPLETE ",
                            "item_longdescription": "", "unit_price": 6.0}),
            (302, 4, 1, 0, {"enddate": NULL_DATE}),
        )),
        (-4, 4, 4, 6, True, (-20, None, False), ((401, s1, 15, 0, {}),)),
        (-5, 5, 5, 8, False, (-300, None, False), (
            (501, s1, 20, 0, {"startdate": day(-300), "enddate": at(-5, 3, "08:00:00")}),
            (502, 3, 0, 2, {}),
            (503, s1, 20, 0, {"isinactive": True}),
        )),
        (-6, "6", 6, 9, False, (at(-500, 2), None, False), (
            (601, "2", 0, 3, {}),  # devices, not counted yet: calculated, value unknown
            (602, 4, 2, 0, {}),
        )),
        (-7, 7, 7, 10, False, (at(-90, 1), None, False), (
            (701, 7, 40, 4, {"item_shortdescription": "Endpoint Security - SentinelOne",
                             "item_longdescription": "Endpoint Security - SentinelOne",
                             "item_internal_reference": "S1-COMPLETE"}),
            (702, 5, 45, 0, {}),
        )),
        (-8, 7, 10, 11, False, (SQL_NULL_DATE, None, False), ((801, 3, 60, 2, {}),)),
        (-9, 8, 8, 12, False, (-150, None, False), ((901, s1, 5, 0, {}),)),
        (-10, 4, 4, -1, False, (-60, None, True), ((1001, 2.0, 15, 0, {}),)),
        (-11, 5, 0, -2, False, (-400, -30, False), ((1101, s1, 18, 0, {}),)),
        (-12, 2, 2, 0, False, (10, None, False), ((1201, s1, 12, 0, {}),)),
    )  # fmt: skip
    priced = {item["id"]: (item["name"], item["recurringprice"]) for item in data.items}
    for iid, client_id, site_id, contract_id, disabled, plan, rows in invoice_rows:
        cid = int(client_id)
        invoice_lines = []
        for sequence, (line_id, item_id, qty, qty_type, extra) in enumerate(rows, 1):
            name, price = priced.get(int(item_id), ("", 0.0))
            line = _line(line_id, iid, cid, sequence, item_id, name, qty, price, qty_type)
            line.update(extra)
            line["net_amount"] = round(line["qty_order"] * line["unit_price"], 2)
            invoice_lines.append(line)
        schedule = None
        if plan is not None:
            first, last, off = plan
            schedule = _schedule(
                200 + abs(iid),
                today,
                at(first, 0) if isinstance(first, int) else first,
                OPEN_END if last is None else at(last, 0, "00:00:00"),
                disabled=off,
                ran=not (isinstance(first, int) and first > 0),
            )
        contract = (contract_id, refs.get(contract_id, ""))
        invoice = _invoice(
            iid, client_id, clients[cid][0], site_id, contract, schedule, invoice_lines, today,
            disabled=disabled,
        )  # fmt: skip
        if iid == -7:
            # Header dates, where an instance sends them; "1900-01-01" = no end.
            invoice["startdate"] = day(-90)
            invoice["enddate"] = SQL_NULL_DATE
        data.invoices.append(invoice)
    return data


# -- the generator ---------------------------------------------------------------------------

_NAME_A = (
    "Blue", "Silver", "North", "Granite", "Harbor", "Maple", "Summit", "Pioneer", "Cedar", "Iron",
    "Coastal", "Redwood", "Golden", "Lakeside", "Prairie", "Evergreen", "Bright", "Oak", "Falcon",
    "Crescent", "Meridian", "Riverbend", "Keystone", "Highland", "Sterling", "Willow", "Atlas",
    "Copper", "Beacon", "Orchard", "Alpine", "Union", "Liberty", "Westfield", "Sunrise", "Heritage",
    "Lighthouse", "Clearwater", "Stonebridge", "Fairview",
)  # fmt: skip
_NAME_B = (
    "Dental", "Logistics", "Accounting", "Legal", "Engineering", "Veterinary", "Builders",
    "Insurance", "Realty", "Pharmacy", "Architects", "Foods", "Motors", "Clinic", "Consulting",
    "Manufacturing", "Printing", "Outfitters", "Hospitality", "Energy", "Labs", "Design",
    "Plumbing", "Freight", "Credit Union", "Academy", "Medical", "Media", "Supply", "Brewing",
    "Electric", "Orthodontics", "Optometry", "Landscaping", "Roofing", "Wealth", "Properties",
    "Marine", "Aviation", "Studios",
)  # fmt: skip
_NAME_C = ("Ltd", "LLC", "Inc.", "Group", "Partners", "& Co", "Services", "Associates")
_FIRST = (
    "Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
    "Robin", "Drew", "Parker", "Reese", "Cameron", "Harper", "Rowan", "Elliot", "Sage", "Emery",
)  # fmt: skip
_LAST = (
    "Smith", "Garcia", "Novak", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Kowalski", "Brennan",
    "Haddad", "Ferreira", "Olsen", "Singh", "Keller", "Duarte", "Marsh", "Petrov", "Ibarra",
    "Whitfield", "Castillo",
)  # fmt: skip
_SITE_NAMES = ("Branch Office", "Warehouse", "Clinic", "Remote Office", "Data Centre", "Annex")
_ASSET_KINDS = (
    ("Workstation", "WS"),
    ("Workstation", "WS"),
    ("Workstation", "WS"),
    ("Workstation", "WS"),
    ("Workstation", "WS"),
    ("Laptop", "LT"),
    ("Laptop", "LT"),
    ("Laptop", "LT"),
    ("Server", "SRV"),
    ("Firewall", "FW"),
)
_SUMMARIES = (
    "Cannot print to the office printer",
    "Password reset",
    "Outlook is slow",
    "New user setup",
    "VPN will not connect",
    "Laptop will not boot",
    "Shared drive missing",
    "Phishing e-mail reported",
    "Antivirus alert",
    "Teams audio drops",
)
# Contract type weights: security and services dominate an MSP's book.
_TYPE_WEIGHTS = ((1, 0.35), (2, 0.35), (3, 0.20), (4, 0.10))


def generate(clients: int, seed: int = 1, today: date | None = None) -> HaloDataSet:
    """A realistic data set of `clients` clients; the same arguments always give the same data.

    Per client on average: 2 sites, 4 users, 6 assets, 2 tickets, 3 contracts and 2 recurring
    invoices (ids -1, -2, ...) of 3 lines each, in HaloPSA's real shapes (see the module
    docstring). Contracts: about 8% ended (flagged expired), 5% not started, 5% switched off, the
    rest open (no end_date key, "2099-12-31", "0001-01-01") or ending later. Invoices: about 3%
    disabled, 4% with a disabled schedule, 4% with an ended schedule, 3% not started, 2% without a
    schedule, 20% with header start/end dates. Lines: about 30% fixed quantity (type 0, 4% of them
    with qty_order 0), 70% calculated (types 1-4, 70% of them with qty_order 0, the rest with a
    last calculated value); 3% inactive; 4% ended by their own enddate, 2% starting later.
    Clients, sites, users, assets and tickets come from one random stream and contracts and
    invoices from another, so changes to the billing shapes leave the others as they were.
    """
    if clients < 0:
        raise ValueError("clients must not be negative")
    # Hundreds of thousands of small acyclic dicts: the cycle collector would scan them (and every
    # other live object) again and again for nothing, which doubles the time on a full heap.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _generate(clients, seed, today)
    finally:
        if collecting:
            gc.enable()


def _generate(clients: int, seed: int, today: date | None) -> HaloDataSet:
    rng = random.Random(seed)
    # Billing records draw from their own stream (see the docstring).
    billing = random.Random(seed * 1_000_003 + 17)
    today = today or date.today()
    rand = rng.random
    randint = rng.randint
    choice = rng.choice
    brand = billing.random
    brandint = billing.randint
    bchoice = billing.choice

    date_cache: dict[int, str] = {}

    def day(offset: int) -> str:
        # A few thousand distinct offsets serve hundreds of thousands of dates.
        text = date_cache.get(offset)
        if text is None:
            text = date_cache[offset] = halo_date(today + timedelta(days=offset))
        return text

    stamps: dict[tuple[int, int, str], str] = {}

    def at(offset: int, form: int, clock: str) -> str:
        text = stamps.get((offset, form, clock))
        if text is None:
            text = stamps[offset, form, clock] = stamp(today + timedelta(days=offset), form, clock)
        return text

    def reference(value: int) -> Any:
        # HaloPSA sends some ids as decimals or strings.
        roll = brand()
        if roll < 0.05:
            return float(value)
        if roll < 0.08:
            return str(value)
        return value

    data = HaloDataSet(items=[_item(i) for i in range(1, len(_CATALOGUE) + 1)])
    item_ids = list(range(1, len(_CATALOGUE) + 1))
    type_ids = [t for t, _ in _TYPE_WEIGHTS]
    type_weights = [w for _, w in _TYPE_WEIGHTS]

    combos = len(_NAME_A) * len(_NAME_B) * len(_NAME_C)
    # Sampling combination numbers without replacement keeps names unique up to `combos` clients.
    name_codes = rng.sample(range(combos), min(clients, combos))
    site_id = user_id = asset_id = ticket_id = contract_id = invoice_id = line_id = 0

    for cid in range(1, clients + 1):
        if cid <= len(name_codes):
            code = name_codes[cid - 1]
            a, rest = divmod(code, len(_NAME_B) * len(_NAME_C))
            b, c = divmod(rest, len(_NAME_C))
            name = f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c]}"
        else:
            name = f"{choice(_NAME_A)} {choice(_NAME_B)} {cid}"
        words = name.split()
        domain = f"{words[0].lower()}{words[1].lower()}{cid}.example.com"
        prefix = f"{words[0][:4].upper()}{cid}"
        client_inactive = rand() < 0.04
        client: Record = {
            "id": cid,
            "name": name,
            "toplevel_id": 1,
            "toplevel_name": "Customers",
            "inactive": client_inactive,
            "customertype": 0,
            "main_site_id": site_id + 1,
            "main_site_name": "Head Office",
            "datecreated": at(-1000 + cid % 900, cid % 4, "17:26:35"),
        }
        if cid % 10 == 0:  # optional keys are often absent
            del client["main_site_id"], client["main_site_name"], client["datecreated"]
        data.clients.append(client)

        client_sites: list[tuple[int, str]] = []
        for n in range(randint(1, 3)):
            site_id += 1
            site_name = "Head Office" if n == 0 else _SITE_NAMES[(cid + n) % len(_SITE_NAMES)]
            client_sites.append((site_id, site_name))
            data.sites.append(
                {
                    "id": site_id,
                    "name": site_name,
                    # The schema types it as a double: some instances send 12.0.
                    "client_id": float(cid) if site_id % 2 else cid,
                    "client_name": name,
                    "inactive": n > 0 and rand() < 0.05,
                }
            )

        client_users: list[tuple[int, str, str, int, str]] = []
        for _ in range(randint(2, 6)):
            user_id += 1
            first, last = choice(_FIRST), choice(_LAST)
            sid, sname = choice(client_sites)
            user_name = f"{first} {last}"
            email = f"{first.lower()}.{last.lower()}{user_id}@{domain}"
            client_users.append((user_id, user_name, email, sid, sname))
            data.users.append(
                {
                    "id": user_id,
                    "name": user_name,
                    "emailaddress": email,
                    "client_id": cid,
                    "client_name": name,
                    "site_id": sid,
                    "site_name": sname,
                    "inactive": rand() < 0.05,
                }
            )

        for n in range(randint(3, 9)):
            asset_id += 1
            kind, short = choice(_ASSET_KINDS)
            sid, sname = choice(client_sites)
            data.assets.append(
                {
                    "id": asset_id,
                    "inventory_number": f"INV-{asset_id:06d}",
                    "key_field": f"{prefix}-{short}{n + 1:02d}",
                    "client_id": cid,
                    "client_name": name,
                    "site_id": sid,
                    "site_name": sname,
                    "assettype_name": kind,
                    "inactive": rand() < 0.04,
                }
            )

        for _ in range(randint(1, 3)):
            ticket_id += 1
            uid, uname, uemail, sid, sname = choice(client_users)
            summary = choice(_SUMMARIES)
            data.tickets.append(
                {
                    "id": ticket_id,
                    "summary": summary,
                    "details": f"{summary}. Reported by {uname}.",
                    "client_id": cid,
                    "client_name": name,
                    "site_id": sid,
                    "site_name": sname,
                    "user_id": uid,
                    "user_name": uname,
                    "user_email": uemail,
                    "status_name": "New",
                    "dateoccurred": day(-randint(0, 30)),
                }
            )

        client_contracts: list[tuple[int, str]] = []
        for ctype in billing.choices(type_ids, type_weights, k=brandint(2, 4)):
            contract_id += 1
            start_offset = -brandint(30, 1000)
            active = True
            roll = brand()
            end: str | None
            if roll < 0.08:  # ended: HaloPSA flags it expired
                end = day(-brandint(1, 300))
            elif roll < 0.13:  # signed, not started yet
                start_offset = brandint(1, 60)
                end = day(start_offset + 365)
            elif roll < 0.18:  # switched off by hand
                active = False
                end = day(brandint(30, 700))
            else:
                open_roll = brand()
                if open_roll < 0.06:
                    end = None  # no end_date key
                elif open_roll < 0.12:
                    end = OPEN_END
                elif open_roll < 0.18:
                    end = NULL_DATE
                else:
                    end = day(brandint(1, 1000))
            site_roll = brand()
            site: tuple[int, str] = (-1, "")
            if site_roll < 0.1:
                site = bchoice(client_sites)
            elif site_roll < 0.15:
                site = (0, "") if site_roll < 0.13 else (-2, "")
            start = day(start_offset) if contract_id % 5 else at(start_offset, 1, "00:00:00")
            record = _contract(
                contract_id, reference(cid), name, ctype, start, end, today, active, site
            )
            client_contracts.append((contract_id, record["ref"]))
            data.contracts.append(record)

        for _ in range(brandint(1, 3)):
            invoice_id += 1
            iid = -invoice_id
            sid, _sname = bchoice(client_sites)
            start_offset = -brandint(30, 900)
            end_text = OPEN_END
            disabled = off = False
            has_schedule = True
            roll = brand()
            if roll < 0.03:
                disabled = True
            elif roll < 0.07:
                off = True
            elif roll < 0.11:  # ran for a while, then ended
                start_offset = -brandint(400, 900)
                end_text = at(-brandint(1, 300), 0, "00:00:00")
            elif roll < 0.14:  # set up, first run still to come
                start_offset = brandint(1, 60)
            elif roll < 0.16:
                has_schedule = False
            elif roll < 0.21:  # a real end date, still ahead
                end_text = at(brandint(30, 700), 0, "00:00:00")
            form = invoice_id % 4
            schedule = (
                _schedule(
                    1000 + invoice_id,
                    today,
                    at(start_offset, form, "12:00:00"),
                    end_text,
                    disabled=off,
                    ran=start_offset < 0,
                )
                if has_schedule
                else None
            )
            lines = []
            for sequence, item_id in enumerate(billing.sample(item_ids, 3), 1):
                line_id += 1
                item_name, internal, external, _, price = _CATALOGUE[item_id - 1]
                roll = brand()
                if roll < 0.6:
                    qty_type = _ITEM_QTY_TYPE[item_id - 1]
                elif roll < 0.8:
                    qty_type = 0
                else:
                    qty_type = brandint(1, 4)
                if qty_type:  # calculated at invoice time: usually 0 until then
                    qty = 0.0 if brand() < 0.7 else float(brandint(1, 80))
                else:
                    qty = 0.0 if brand() < 0.04 else float(brandint(1, 80))
                line = _line(
                    line_id, iid, cid, sequence, reference(item_id), item_name, qty, price, qty_type
                )
                if brand() < 0.03:
                    line["isinactive"] = True
                roll = brand()
                if roll < 0.04:  # ended by its own end date
                    line["startdate"] = day(start_offset)
                    line["enddate"] = at(-brandint(1, 200), 3, "08:00:00")
                elif roll < 0.06:  # starts later
                    line["startdate"] = day(brandint(1, 90))
                elif roll < 0.09:  # dates written as "none" and "open"
                    line["startdate"] = SQL_NULL_DATE
                    line["enddate"] = OPEN_END
                roll = brand()
                if roll < 0.05:  # older instances send no reference keys at all
                    del line["item_internal_reference"], line["item_external_reference"]
                elif roll < 0.2:
                    line["item_internal_reference"] = internal
                    line["item_external_reference"] = external
                if brand() < 0.1:
                    line["item_code"] = internal
                if qty_type == 1 and brand() < 0.5:
                    line["quantity_licences"] = [
                        {
                            "id": line_id,
                            "invoice_line_id": line_id,
                            "kind": 1,
                            "licence_id": item_id,
                            "licence_name": item_name,
                            "assigned_licences": False,
                            "qty_free": 0,
                            "minimum_qty": 0,
                            "pro_rata": 0,
                        }
                    ]
                lines.append(line)
            contract_roll = brand()
            if contract_roll < 0.6:
                contract = bchoice(client_contracts)
            else:
                contract = (0 if contract_roll < 0.85 else -1, "")
            invoice = _invoice(
                iid,
                reference(cid),
                name,
                sid if brand() < 0.7 else 0,
                contract,
                schedule,
                lines,
                today,
                disabled=disabled,
                created=at(start_offset - 1, 2, "14:00:19"),
            )
            if brand() < 0.2:  # header dates, where an instance sends them
                invoice["startdate"] = day(start_offset)
                if brand() < 0.5:
                    invoice["enddate"] = SQL_NULL_DATE
            data.invoices.append(invoice)
    return data


# -- malformed records -----------------------------------------------------------------------

_START_FIELD = {"contracts": "start_date", "invoices": "startdate"}


def inject_malformed(
    data: HaloDataSet, n: int, seed: int = 1
) -> tuple[HaloDataSet, list[tuple[str, int]]]:
    """A copy of `data` with `n` contracts and recurring invoices broken (null client_id or a
    garbage start date), and their (record type, id) pairs, type as "contracts" or "invoices"
    (the `kind` a reader's rejects carry)."""
    if n < 0:
        raise ValueError("n must not be negative")
    broken = data.copy()
    rng = random.Random(seed)
    # Half from each list (as far as each has records), so both readers meet bad records.
    want = {"contracts": (n + 1) // 2, "invoices": n // 2}
    sizes = {name: len(getattr(broken, name)) for name in want}
    if want["contracts"] > sizes["contracts"]:
        want = {"contracts": sizes["contracts"], "invoices": n - sizes["contracts"]}
    elif want["invoices"] > sizes["invoices"]:
        want = {"contracts": n - sizes["invoices"], "invoices": sizes["invoices"]}
    if any(want[name] > sizes[name] for name in want):
        raise ValueError(f"cannot break {n} records: only {sum(sizes.values())} to choose from")

    marked: list[tuple[str, int]] = []
    for name, count in want.items():
        records = getattr(broken, name)
        for number, position in enumerate(sorted(rng.sample(range(len(records)), count))):
            record = records[position]
            if number % 2 == 0:
                record["client_id"] = None
            else:
                record[_START_FIELD[name]] = GARBAGE_DATE
            marked.append((name, record["id"]))
    return broken, sorted(marked)
