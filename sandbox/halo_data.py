"""Data sets for the HaloPSA sandbox: a hand-written demo set, a seeded generator, bad records.

Records are plain dicts in HaloPSA's own JSON field names (those `shared.halo_models` reads, plus a
few realistic extras), so the sandbox serves exactly what a real instance would send. Dates look
like HaloPSA's ("YYYY-MM-DDT00:00:00"); "no end date" is null or HaloPSA's "0001-01-01T00:00:00".
Names and e-mail addresses are invented (example.com domains).

The demo set (`demo_data(today)`) dates everything relative to `today`: this table holds any day.
Huntress = contract type "Managed Security", contract active and in date, client active.
SentinelOne = recurring item "SentinelOne Complete" (item id 2, code "S1-COMPLETE"), invoice not
disabled, line qty_order > 0, today inside the line's own dates, client active.

    id  client                  Huntress                        SentinelOne
    1   Contoso Ltd             YES  contract 1                 YES  invoice 1 line 101, qty 25
    2   Fabrikam, Inc.          YES  contract 3, ends in 20 d   no   line 201 has qty_order 0
    3   Northwind Traders       no   contract 4 expired 45 d ago YES* invoice 3 line 301, qty 8
    4   Tailspin Toys LLC       no   contract 6 starts in 14 d  no   invoice 4 is disabled
    5   Adventure Works         no   contract 7 active=false    no   line 501 ended 5 d ago
    6   Wide World Importers    YES  contract 9, no end date    YES  invoice 6 line 601, qty 10
    7   Woodgrove Bank          no   has no such contract       YES  invoice 7 line 701, qty 40
    8   Litware Inc (inactive)  no   contract 12, client off    no   line 901 qty 5, client off

    * line 301 has no item id and no item code, only the item_shortdescription
      "  sentinelone COMPLETE ": only a rule matching by name (case-insensitive, trimmed) finds it.

Huntress targets: Contoso Ltd, Fabrikam, Inc., Wide World Importers (with a grace period < 45 d).
SentinelOne targets: Contoso Ltd, Wide World Importers, Woodgrove Bank; plus Northwind Traders
when the rule matches item names. Ticket 6's summary holds markup, for escaping tests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

Record = dict[str, Any]

RECORD_TYPES = ("clients", "sites", "contracts", "invoices", "items", "tickets", "assets", "users")
NULL_DATE = "0001-01-01T00:00:00"  # HaloPSA's "no date"
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


def _item(item_id: int, recurring: bool = True) -> Record:
    name, internal, external, supplier, price = _CATALOGUE[item_id - 1]
    return {
        "id": item_id,
        "name": name,
        "description": f"{name} (per unit, billed monthly)",
        "internalreference": internal,
        "externalreference": external,
        "supplier_part_code": supplier,
        "baseprice": price,
        "recurringprice": price,
        "isrecurringitem": recurring,
    }


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
# (id, client_id, name, inactive): each client's head office has the client's id.
_DEMO_EXTRA_SITES = (
    (9, 1, "Redmond Lab", False),
    (10, 7, "Harbor Street Branch", False),
    (11, 5, "Old Warehouse", True),
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
# (id, client_id, site_id, user_id or 0, summary)
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
)


def demo_data(today: date) -> HaloDataSet:
    """The hand-written demo set (8 clients); see the module docstring for its expected targets."""

    def day(offset: int) -> str:
        return halo_date(today + timedelta(days=offset))

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
                "inactive": inactive,
                "toplevel_id": 1,
                "toplevel_name": "Customers",
            }
        )
    for sid, (cid, name, inactive) in sorted(sites.items()):
        data.sites.append(
            {
                "id": sid,
                "name": name,
                "client_id": cid,
                "client_name": clients[cid][0],
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
                "client_id": cid,
                "client_name": clients[cid][0],
                "site_id": sid,
                "site_name": sites[sid][1],
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

    # (id, client, site or None, type, start, end, active, expired); end None/NULL_DATE = open.
    contract_rows: tuple[tuple[int, int, int | None, int, str, str | None, bool, bool], ...] = (
        (1, 1, None, 1, day(-200), day(165), True, False),
        (2, 1, None, 2, day(-400), None, True, False),
        (3, 2, None, 1, day(-345), day(20), True, False),  # expires within 30 days
        (4, 3, None, 1, day(-410), day(-45), True, True),  # expired
        (5, 3, None, 3, day(-100), NULL_DATE, True, False),
        (6, 4, None, 1, day(14), day(379), True, False),  # starts in the future
        (7, 5, None, 1, day(-60), day(305), False, False),  # marked inactive
        (8, 5, None, 4, day(-30), day(335), True, False),
        (9, 6, None, 1, day(-500), None, True, False),  # no end date
        (10, 7, None, 2, day(-90), day(275), True, False),
        (11, 7, 10, 3, day(-90), day(275), True, False),  # scoped to one site
        (12, 8, None, 1, day(-150), day(215), True, False),  # client is inactive
    )
    for cid_, client_id, site_id, ctype, start, end, active, expired in contract_rows:
        data.contracts.append(
            {
                "id": cid_,
                "client_id": client_id,
                "client_name": clients[client_id][0],
                "site_id": site_id,
                "ref": f"{_CONTRACT_ABBR[ctype]}-{cid_:04d}",
                "contracttype": ctype,
                "contracttype_name": CONTRACT_TYPES[ctype],
                "start_date": start,
                "end_date": end,
                "active": active,
                "expired": expired,
            }
        )

    s1 = _CATALOGUE[1]
    # (invoice id, client, site, disabled, contract id, lines); a line is
    # (line id, item id or 0, qty, start, end) and takes its code/name/price from the item.
    invoice_rows: tuple[tuple[int, int, int, bool, int, tuple[Any, ...]], ...] = (
        (1, 1, 1, False, 1, ((101, 2, 25, day(-200), None), (102, 3, 25, day(-400), None),
                             (103, 5, 30, day(-400), None))),
        (2, 2, 2, False, 3, ((201, 2, 0, day(-345), None), (202, 3, 12, day(-345), None))),
        (3, 3, 3, False, 5, ((301, 0, 8, day(-100), None), (302, 4, 1, day(-100), NULL_DATE))),
        (4, 4, 4, True, 6, ((401, 2, 15, day(-20), None),)),
        (5, 5, 5, False, 8, ((501, 2, 20, day(-300), day(-5)), (502, 3, 18, day(-300), None))),
        (6, 6, 6, False, 9, ((601, 2, 10, day(-500), NULL_DATE), (602, 4, 2, day(-500), None))),
        (7, 7, 7, False, 10, ((701, 2, 40, day(-90), day(275)), (702, 5, 45, day(-90), None))),
        (8, 7, 10, False, 11, ((801, 3, 60, day(-90), None),)),
        (9, 8, 8, False, 12, ((901, 2, 5, day(-150), None),)),
    )  # fmt: skip
    next_run = halo_date(_first_of_next_month(today))
    for iid, client_id, site_id, disabled, contract_id, lines in invoice_rows:
        invoice_lines = []
        for line_id, item_id, qty, start, end in lines:
            if item_id:
                name, code, _, _, price = _CATALOGUE[item_id - 1]
            else:
                # Typed in by hand on the invoice: no item link, only a sloppy description.
                name, code, price = "  sentinelone COMPLETE ", "", s1[4]
            invoice_lines.append(
                {
                    "id": line_id,
                    "ihid": iid,
                    "_itemid": item_id,
                    "item_code": code,
                    "item_shortdescription": name,
                    "qty_order": float(qty),
                    "unit_price": price,
                    "startdate": start,
                    "enddate": end,
                    "isinactive": False,
                }
            )
        data.invoices.append(
            {
                "id": iid,
                "client_id": client_id,
                "client_name": clients[client_id][0],
                "sitenumber": site_id,
                "site_name": sites[site_id][1],
                "disabled": disabled,
                "startdate": min(line[3] for line in lines),
                "enddate": None,
                "nextcreationdate": next_run,
                "contract_id": contract_id,
                "lines": invoice_lines,
            }
        )
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
    invoices of 3 lines each; a few inactive, expired, disabled, zero-quantity and ended records.
    """
    if clients < 0:
        raise ValueError("clients must not be negative")
    rng = random.Random(seed)
    today = today or date.today()
    rand = rng.random
    randint = rng.randint
    choice = rng.choice

    date_cache: dict[int, str] = {}

    def day(offset: int) -> str:
        # A few thousand distinct offsets serve hundreds of thousands of dates.
        text = date_cache.get(offset)
        if text is None:
            text = date_cache[offset] = halo_date(today + timedelta(days=offset))
        return text

    data = HaloDataSet(items=[_item(i) for i in range(1, len(_CATALOGUE) + 1)])
    item_ids = list(range(1, len(_CATALOGUE) + 1))
    type_ids = [t for t, _ in _TYPE_WEIGHTS]
    type_weights = [w for _, w in _TYPE_WEIGHTS]
    next_run = halo_date(_first_of_next_month(today))

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
        data.clients.append(
            {
                "id": cid,
                "name": name,
                "inactive": client_inactive,
                "toplevel_id": 1,
                "toplevel_name": "Customers",
            }
        )

        client_sites: list[tuple[int, str]] = []
        for n in range(randint(1, 3)):
            site_id += 1
            site_name = "Head Office" if n == 0 else _SITE_NAMES[(cid + n) % len(_SITE_NAMES)]
            client_sites.append((site_id, site_name))
            data.sites.append(
                {
                    "id": site_id,
                    "name": site_name,
                    "client_id": cid,
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

        client_contracts: list[int] = []
        for ctype in rng.choices(type_ids, type_weights, k=randint(2, 4)):
            contract_id += 1
            client_contracts.append(contract_id)
            start_offset = -randint(30, 1000)
            active, expired = True, False
            roll = rand()
            if roll < 0.08:  # ended and flagged expired
                end: str | None = day(-randint(1, 300))
                expired = True
            elif roll < 0.13:  # signed, not started yet
                start_offset = randint(1, 60)
                end = day(start_offset + 365)
            elif roll < 0.18:  # switched off by hand
                active = False
                end = day(randint(30, 700))
            else:
                open_roll = rand()
                if open_roll < 0.12:
                    end = None
                elif open_roll < 0.18:
                    end = NULL_DATE
                else:
                    end = day(randint(1, 1000))
            scope_site = choice(client_sites)[0] if rand() < 0.1 else None
            data.contracts.append(
                {
                    "id": contract_id,
                    "client_id": cid,
                    "client_name": name,
                    "site_id": scope_site,
                    "ref": f"{_CONTRACT_ABBR[ctype]}-{contract_id:06d}",
                    "contracttype": ctype,
                    "contracttype_name": CONTRACT_TYPES[ctype],
                    "start_date": day(start_offset),
                    "end_date": end,
                    "active": active,
                    "expired": expired,
                }
            )

        for _ in range(randint(1, 3)):
            invoice_id += 1
            sid, sname = choice(client_sites)
            start = day(-randint(30, 900))
            lines = []
            for item_id in rng.sample(item_ids, 3):
                line_id += 1
                item_name, item_code, _, _, price = _CATALOGUE[item_id - 1]
                roll = rand()
                qty = 0.0 if roll < 0.03 else float(randint(1, 80))
                line_end = day(-randint(1, 200)) if 0.03 <= roll < 0.06 else None
                lines.append(
                    {
                        "id": line_id,
                        "ihid": invoice_id,
                        "_itemid": item_id,
                        "item_code": item_code,
                        "item_shortdescription": item_name,
                        "qty_order": qty,
                        "unit_price": price,
                        "startdate": start,
                        "enddate": line_end,
                        "isinactive": False,
                    }
                )
            data.invoices.append(
                {
                    "id": invoice_id,
                    "client_id": cid,
                    "client_name": name,
                    "sitenumber": sid,
                    "site_name": sname,
                    "disabled": rand() < 0.05,
                    "startdate": start,
                    "enddate": None if rand() < 0.8 else NULL_DATE,
                    "nextcreationdate": next_run,
                    "contract_id": choice(client_contracts) if rand() < 0.7 else None,
                    "lines": lines,
                }
            )
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
