"""Data sets for the ImmyBot sandbox: tenants and computers that go with a HaloPSA data set.

Records are plain dicts in ImmyBot's own JSON field names (tenants as `GET /api/v1/tenants` lists
them, computers as `ComputerListViewModel` in `GET /api/v1/computers/paged`). Timestamps are UTC
("YYYY-MM-DDTHH:MM:SSZ"), relative to `today`. Names and e-mail addresses are invented.

Tenant 1 is always the MSP's own tenant, "Demo MSP (internal)" (isMsp, no HaloPSA client). Every
other tenant has ownerTenantId 1 and parentTenantId null, and is active. Tenant names follow the
HaloPSA client names except for deliberate mismatches, which a client -> tenant mapper must handle.
The mismatches are built around the app's own rule, `shared.core.mapping.normalise_name` (case,
punctuation and trailing legal suffixes such as Ltd, Limited, LLC, Inc ignored).

The demo set (`immy_data_for(demo_data(today))`): the mapping outcome assumes the app's mapper
(`shared.core.mapping`): the Microsoft Entra tenant first (a HaloPSA client's `azure_tenants`
against a tenant's `azureTenantLink.azTenantId`, sandbox/halo_data.py), then normalised names,
refusing to guess when two tenants share a key (even if one name is exact).

    tenant  name                          HaloPSA client            outcome          computers
    1       Demo MSP (internal)           -                         -                1/2
    2       Contoso Limited               1 Contoso Ltd             by name          4/5
    3       Fabrikam Inc                  2 Fabrikam, Inc.          by name          2/4
    4       Northwind Traders             3 Northwind Traders       by Entra tenant  3/3
    5       Northwind Traders Ltd         -                         -                1/2
    6       Tailspin Toys LLC             4 Tailspin Toys LLC       by name          2/2
    7       Adventure Works               5 Adventure Works         by name          3/4
    8       World Wide Importers          6 Wide World Importers    unmapped*        4/6
    9       Litware Inc                   8 Litware Inc (inactive)  by name          1/2
    (10)    deleted from ImmyBot: no tenant has id 10 (ImmyBot does not reuse it)
    11      Woodgrove Bank                7 Woodgrove Bank          ambiguous**      2/2
    12      Woodgrove Bank Harbor Street  7 Woodgrove Bank          ambiguous**      1/1

    (computers: online/all.) Northwind's tenants 4 and 5 share a normalised name (by name alone
    client 3 is ambiguous), but client 3's Entra tenant is tenant 4's (ENTRA_NORTHWIND) and
    tenant 5 has an Entra tenant of its own (ENTRA_NORTHWIND_LTD).
    * until an explicit mapping (HaloPSA client 6 -> tenant 8) is saved.
    ** one Entra tenant (ENTRA_WOODGROVE, Woodgrove's in HaloPSA) linked to both, each limited to
    its own domain, as ImmyBot allows: which one the client deploys to is a human's call, though
    tenant 11 alone is named like the client.
    33 computers, 24 online, 19 with a primary user (ids 1-33 in the order below). Offline
    computers are hidden by `computers/paged` unless `includeOffline=true`.

Demo computers per tenant (primary user; "off" = offline; null = no primary user):
    1: MSP-SRV01 null, MSP-LT01 null off
    2: CONTOSO-LT01 dana.whitfield@contoso.example.com (ticket 1's user: her only computer),
       CONTOSO-LT02 priya.raman, CONTOSO-WS01 null, CONTOSO-SRV01 null, CONTOSO-LAB01 priya.raman off
    3: FABRIKAM-LT01 tom.okafor@fabrikam.example.com, FABRIKAM-WS01 tom.okafor off (his two),
       FABRIKAM-LT02 lena.park (an inactive HaloPSA user) off, FABRIKAM-SRV01 null
    4: NWT-WS01 sam.keller, NWT-LT01 irene.castillo, NWT-SRV01 null
    5: NWT-LT02 irene.castillo, NWT-WS02 null off
    6: TAILSPIN-LT01 jonah.reyes, TAILSPIN-WS01 null
    7: AW-WS01 mia.novak, AW-WS02 omar.haddad off, AW-LT01 mia.novak, AW-SRV01 null
    8: WWI-WS01 grace.ndlovu, WWI-LT01 felix.brandt, WWI-WS02 felix.brandt off, WWI-LT02 null off,
       WWI-SRV01 null, WWI-SRV02 null
    9: LITWARE-WS01 kate.doyle, LITWARE-LT01 null off
    11: WGB-WS01 hannah.weiss, WGB-SRV01 null
    12: WGB-WS02 luis.moreno
Every tenant but 9 has an azureTenantLink (`AzureTenantLinkResponse` of ImmyBot's OpenAPI
document); those of 4, 5, 11 and 12 carry the Entra tenants above, the others random ones. `seed`
changes only random GUIDs, serial numbers, models and timestamps of the demo set, never the table
above.

Detected software (`detected_software`, every set): see `detected_software()` for the rule by
computer id (Huntress, SentinelOne's "Sentinel Agent", and computers never inventoried).

Generated sets (`immy_data_for(generate(n, seed))`): per active client a tenant with its exact
name, except about 3% with another legal suffix ("X Ltd" -> "X Limited", "X Group" ->
"X Group Ltd"), 2% with no tenant, 1% with two tenants of one normalised name ("X Ltd" and
"X Limited"), 1% with a really different name (first two words swapped). Half the inactive clients
keep a tenant. Note that the HaloPSA generator itself gives different clients one normalised name
("Blue Dental Ltd", "Blue Dental LLC"), so large sets hold more ambiguity than those rates.
A HaloPSA provider link (id 1) links every client that got a tenant to its (first) tenant, so
ImmyBot's own links map even the renamed ones; computer ids divisible by 47, 53 or 59 are dev-lab,
sandbox or excluded from maintenance. The demo set has no provider link and no flagged computer:
tests add them with `add_halo_link` and `flag_computers`.
Computers: about one per five HaloPSA users of the client, at least one per tenant, named after
the client's HaloPSA assets where it has them; about 70% online; about 85% of non-servers have a
primary user from the client's HaloPSA users.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sandbox.halo_data import (
    ENTRA_NORTHWIND,
    ENTRA_NORTHWIND_LTD,
    ENTRA_WOODGROVE,
    HaloDataSet,
    JsonDataSet,
)
from shared.core.mapping import LEGAL_SUFFIXES

Record = dict[str, Any]

RECORD_TYPES = (
    "tenants",
    "computers",
    "tags",
    "provider_links",
    "provider_clients",
    "detected_software",
)
_NON_WORD = re.compile(r"[^0-9a-z]+")
MSP_TENANT_ID = 1
MSP_TENANT_NAME = "Demo MSP (internal)"
HALO_LINK_ID = 1
HALO_LINK_NAME = "HaloPSA"

# Trailing words a company name may carry or drop without naming another company.


@dataclass
class ImmyDataSet(JsonDataSet):
    """Every record the ImmyBot sandbox serves, as ImmyBot JSON objects.

    `tags` are `{id, name, description, color}`; a tenant lists the tags it carries in
    `tenantTagIds`, a computer in `computerTagIds`. `provider_links` are integrations
    (`{id, name, providerTypeId, disabled}`); `provider_clients` are their clients as
    `GET /api/v1/provider-links/{id}/clients` lists them (`providerLinkId`, `externalClientId`,
    `externalClientName`, `linkedToTenantId`).
    `detected_software` are `DetectedComputerSoftwareResponse` objects, each naming its
    `computerId`, as `GET /api/v1/computers/{id}/detected-computer-software` lists them.
    """

    tenants: list[Record] = field(default_factory=list)
    computers: list[Record] = field(default_factory=list)
    tags: list[Record] = field(default_factory=list)
    provider_links: list[Record] = field(default_factory=list)
    provider_clients: list[Record] = field(default_factory=list)
    detected_software: list[Record] = field(default_factory=list)


# -- building blocks -------------------------------------------------------------------------

# kind -> ((manufacturer, model, serial prefix), ...), and the operating systems it runs.
_HARDWARE: dict[str, tuple[tuple[str, str, str], ...]] = {
    "LT": (
        ("Dell Inc.", "Latitude 5440", ""),
        ("HP", "HP EliteBook 840 G10", "5CG"),
        ("LENOVO", "21HD003XUK", "PF"),
        ("Microsoft Corporation", "Surface Laptop 5", "0F"),
    ),
    "WS": (
        ("Dell Inc.", "OptiPlex 7010", ""),
        ("HP", "HP EliteDesk 800 G9 Desktop Mini", "CZC"),
        ("LENOVO", "11T7S00G00", "MJ"),
    ),
    "SRV": (
        ("Dell Inc.", "PowerEdge R650", ""),
        ("HPE", "ProLiant DL360 Gen10 Plus", "CZJ"),
        ("Microsoft Corporation", "Virtual Machine", "VM"),
    ),
}
_SYSTEMS: dict[str, tuple[str, ...]] = {
    "LT": ("Microsoft Windows 11 Pro", "Microsoft Windows 11 Pro", "Microsoft Windows 10 Pro"),
    "WS": (
        "Microsoft Windows 11 Pro",
        "Microsoft Windows 10 Pro",
        "Microsoft Windows 11 Enterprise",
    ),
    "SRV": ("Microsoft Windows Server 2022 Standard", "Microsoft Windows Server 2019 Standard"),
}
_ASSET_KINDS = {"Laptop": "LT", "Workstation": "WS", "Server": "SRV"}
_ALT_SUFFIXES = ("Ltd", "Limited", "LLC", "Inc", "Inc.", "Incorporated")
_SERIAL_CHARS = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def _kind_of(computer_name: str) -> str:
    code = computer_name.rsplit("-", 1)[-1]
    if code.startswith("SRV"):
        return "SRV"
    return "LT" if code.startswith("LT") else "WS"


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _azure_link(tenant_id: int, entra: str, domains: tuple[str, ...]) -> Record:
    """A tenant's `azureTenantLink` (`AzureTenantLinkResponse` in ImmyBot's OpenAPI document)."""
    return {
        "immyTenantId": tenant_id,
        "azTenantId": entra,
        "shouldLimitDomains": bool(domains),
        "limitToDomains": [
            {"immyTenantId": tenant_id, "azTenantId": entra, "domainName": domain}
            for domain in domains
        ],
        "azureTenant": {"principalId": entra, "azureTenantType": 1},
    }


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _slug(name: str, taken: set[str]) -> str:
    base = _NON_WORD.sub("-", name.lower()).strip("-") or "tenant"
    slug, n = base, 1
    while slug in taken:  # ImmyBot slugs are unique; a clash gets a number, as ImmyBot does
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


class _Builder:
    """Appends tenants and computers with sequential ids and seeded details."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.midnight = datetime.combine(today, time(), tzinfo=UTC)
        self.data = ImmyDataSet()
        self.slugs: set[str] = set()
        self.deleted_tenants = 0

    @property
    def next_tenant_id(self) -> int:
        """The id the next tenant gets (ImmyBot never reuses a deleted tenant's)."""
        return len(self.data.tenants) + self.deleted_tenants + 1

    def tenant(
        self, name: str, *, linked: bool | str, msp: bool = False, domains: tuple[str, ...] = ()
    ) -> Record:
        """A tenant; `linked`: its Entra tenant id, True for a random one, False for none;
        `domains`: the domains its link is limited to (ImmyBot's limitToDomains)."""
        tenant_id = self.next_tenant_id
        entra = _guid(self.rng) if linked is True else linked or None
        record: Record = {
            "id": tenant_id,
            "name": name,
            "slug": _slug(name, self.slugs),
            "active": True,
            "isMsp": msp,
            "ownerTenantId": None if msp else MSP_TENANT_ID,
            "parentTenantId": None,
            "azureTenantLink": _azure_link(tenant_id, entra, domains) if entra else None,
            "tenantTagIds": [],
            "tenantTagNames": [],
        }
        self.data.tenants.append(record)
        return record

    def computer(
        self, tenant: Record, name: str, user: Record | None, online: bool, days_off: int = 0
    ) -> Record:
        rng = self.rng
        kind = _kind_of(name)
        maker, model, prefix = rng.choice(_HARDWARE[kind])
        serial = prefix + "".join(rng.choice(_SERIAL_CHARS) for _ in range(10 - len(prefix)))
        if maker == "Dell Inc.":
            serial = serial[:7]  # Dell service tags are seven characters
        # Online machines reported within the last twelve hours before today's midnight, so a
        # "last seen" is never in the future whatever the clock says; offline ones days ago.
        minutes = rng.randint(1, 720) if online else days_off * 1440 + rng.randint(0, 1439)
        seen = self.midnight - timedelta(minutes=minutes)
        booted = seen - timedelta(minutes=rng.randint(30, 20 * 1440))
        first, _, last = (str(user.get("name") or "") if user else "").partition(" ")
        record: Record = {
            "id": len(self.data.computers) + 1,
            "computerName": name,
            "tenantId": tenant["id"],
            "tenantName": tenant["name"],
            "isOnline": online,
            "lastProviderAgentEventDateUtc": _stamp(seen),
            "lastBootTimeUtc": _stamp(booted),
            "primaryUserEmail": user.get("emailaddress") if user else None,
            "primaryUserFirstName": first,
            "primaryUserLastName": last,
            "serialNumber": serial,
            "manufacturer": maker,
            "model": model,
            "operatingSystem": rng.choice(_SYSTEMS[kind]),
            "onboardingStatus": "Onboarded",
            "deviceId": _guid(rng),
            # Not deployment targets when set (DESIGN.md section 9); `flag_computers` sets them.
            "isSandbox": False,
            "isDevLab": False,
            "excludeFromMaintenance": False,
            "computerTagIds": [],  # what computer add-tags / remove-tags change
        }
        self.data.computers.append(record)
        return record


# -- the demo set ----------------------------------------------------------------------------

_DEMO_CLIENTS = (
    (1, "Contoso Ltd"),
    (2, "Fabrikam, Inc."),
    (3, "Northwind Traders"),
    (4, "Tailspin Toys LLC"),
    (5, "Adventure Works"),
    (6, "Wide World Importers"),
    (7, "Woodgrove Bank"),
    (8, "Litware Inc"),
)
# (HaloPSA client id, tenant name, Entra tenant (True: a random one), ((computer, primary user's
# name, online), ...)); in tenant id order after the MSP's.
_DEMO_TENANTS: tuple[tuple[int, str, bool | str, tuple[tuple[str, str | None, bool], ...]], ...] = (
    (1, "Contoso Limited", True, (
        ("CONTOSO-LT01", "Dana Whitfield", True),
        ("CONTOSO-LT02", "Priya Raman", True),
        ("CONTOSO-WS01", None, True),
        ("CONTOSO-SRV01", None, True),
        ("CONTOSO-LAB01", "Priya Raman", False),
    )),
    (2, "Fabrikam Inc", True, (
        ("FABRIKAM-LT01", "Tom Okafor", True),
        ("FABRIKAM-WS01", "Tom Okafor", False),
        ("FABRIKAM-LT02", "Lena Park", False),
        ("FABRIKAM-SRV01", None, True),
    )),
    (3, "Northwind Traders", ENTRA_NORTHWIND, (
        ("NWT-WS01", "Sam Keller", True),
        ("NWT-LT01", "Irene Castillo", True),
        ("NWT-SRV01", None, True),
    )),
    (3, "Northwind Traders Ltd", ENTRA_NORTHWIND_LTD, (
        ("NWT-LT02", "Irene Castillo", True),
        ("NWT-WS02", None, False),
    )),
    (4, "Tailspin Toys LLC", True, (
        ("TAILSPIN-LT01", "Jonah Reyes", True),
        ("TAILSPIN-WS01", None, True),
    )),
    (5, "Adventure Works", True, (
        ("AW-WS01", "Mia Novak", True),
        ("AW-WS02", "Omar Haddad", False),
        ("AW-LT01", "Mia Novak", True),
        ("AW-SRV01", None, True),
    )),
    (6, "World Wide Importers", True, (
        ("WWI-WS01", "Grace Ndlovu", True),
        ("WWI-LT01", "Felix Brandt", True),
        ("WWI-WS02", "Felix Brandt", False),
        ("WWI-LT02", None, False),
        ("WWI-SRV01", None, True),
        ("WWI-SRV02", None, True),
    )),
    (8, "Litware Inc", False, (
        ("LITWARE-WS01", "Kate Doyle", True),
        ("LITWARE-LT01", None, False),
    )),
    (7, "Woodgrove Bank", ENTRA_WOODGROVE, (
        ("WGB-WS01", "Hannah Weiss", True),
        ("WGB-SRV01", None, True),
    )),
    (7, "Woodgrove Bank Harbor Street", ENTRA_WOODGROVE, (
        ("WGB-WS02", "Luis Moreno", True),
    )),
)  # fmt: skip
# A tenant deleted from ImmyBot: no tenant has its id (a mapping naming it is refused).
_DEMO_DELETED_TENANT = 10
# The domains a tenant's Entra link is limited to (one Entra tenant, two ImmyBot tenants).
_DEMO_DOMAINS = {
    "Woodgrove Bank": ("woodgrove.example.com",),
    "Woodgrove Bank Harbor Street": ("harbor.woodgrove.example.com",),
}
_DEMO_MSP_COMPUTERS = (("MSP-SRV01", None, True), ("MSP-LT01", None, False))


def is_demo(halo: HaloDataSet) -> bool:
    """Whether `halo` holds the demo set's clients (so the hand-written mapping applies)."""
    found = tuple((c.get("id"), c.get("name")) for c in halo.clients if isinstance(c, Mapping))
    return found == _DEMO_CLIENTS


def _demo(halo: HaloDataSet, build: _Builder) -> ImmyDataSet:
    users = {(u.get("client_id"), u.get("name")): u for u in halo.users if isinstance(u, Mapping)}
    msp = build.tenant(MSP_TENANT_NAME, linked=True, msp=True)
    for number, (name, _, online) in enumerate(_DEMO_MSP_COMPUTERS):
        build.computer(msp, name, None, online, days_off=2 + number)
    for client_id, tenant_name, linked, computers in _DEMO_TENANTS:
        if build.next_tenant_id == _DEMO_DELETED_TENANT:
            build.deleted_tenants += 1
        tenant = build.tenant(
            tenant_name, linked=linked, domains=_DEMO_DOMAINS.get(tenant_name, ())
        )
        for number, (name, user_name, online) in enumerate(computers):
            user = users.get((client_id, user_name)) if user_name else None
            if user_name and user is None:
                raise ValueError(f"the demo HaloPSA set has no user {user_name!r}")
            # Offline computers last reported 2-13 days ago, spread by position.
            build.computer(tenant, name, user, online, days_off=2 + (client_id * 3 + number) % 12)
    return build.data


# -- generated sets --------------------------------------------------------------------------


def _stem(name: str) -> tuple[str, str]:
    """The name without its trailing legal suffix, and that suffix ("" if none)."""
    words = name.split()
    if len(words) > 1 and _NON_WORD.sub("", words[-1].lower()) in LEGAL_SUFFIXES:
        return " ".join(words[:-1]), words[-1]
    return name, ""


def _other_suffix(name: str, rng: random.Random) -> str:
    stem, suffix = _stem(name)
    choices = [s for s in _ALT_SUFFIXES if s != suffix and f"{stem} {s}" != name]
    return f"{stem} {rng.choice(choices)}"


def _different(name: str) -> str:
    words = name.split()
    if len(words) >= 2:
        # "Blue Dental Ltd" -> "Dental Blue Ltd": the generator's first and second words come
        # from separate vocabularies, so the swapped name belongs to no HaloPSA client.
        return " ".join([words[1], words[0], *words[2:]])
    return f"{name} Holdings"


def _prefix(name: str, client_id: int) -> str:
    word = _NON_WORD.sub("", name.split()[0].lower()).upper() if name.split() else ""
    return f"{word[:4] or 'PC'}{client_id}"


def _generated(halo: HaloDataSet, build: _Builder) -> ImmyDataSet:
    rng = build.rng
    users_of: dict[Any, list[Record]] = {}
    for user in halo.users:
        if isinstance(user, dict):
            users_of.setdefault(user.get("client_id"), []).append(user)
    assets_of: dict[Any, list[tuple[str, str]]] = {}
    for asset in halo.assets:
        if isinstance(asset, dict) and asset.get("assettype_name") in _ASSET_KINDS:
            kind = _ASSET_KINDS[asset["assettype_name"]]
            assets_of.setdefault(asset.get("client_id"), []).append((str(asset["key_field"]), kind))

    msp = build.tenant(MSP_TENANT_NAME, linked=True, msp=True)
    build.computer(msp, "MSP-SRV01", None, True)
    build.computer(msp, "MSP-LT01", None, False, days_off=3)

    clients = [c for c in halo.clients if isinstance(c, dict) and isinstance(c.get("id"), int)]
    halo_links: dict[int, int | None] = {}
    halo_names: dict[int, str] = {}
    for client in sorted(clients, key=lambda c: int(c["id"])):
        client_id, name = int(client["id"]), str(client.get("name") or "")
        if client.get("inactive") and rng.random() < 0.5:
            continue  # offboarded: the tenant went with the contract
        roll = rng.random()
        if roll < 0.02:
            continue  # never onboarded to ImmyBot
        if roll < 0.05:
            names = [_other_suffix(name, rng)]
        elif roll < 0.06:
            names = [name, _other_suffix(name, rng)]
        elif roll < 0.07:
            names = [_different(name)]
        else:
            names = [name]

        halo_links[client_id] = build.next_tenant_id  # its (first) tenant, next to come
        halo_names[client_id] = name
        users = users_of.get(client_id, [])
        assets = list(assets_of.get(client_id, []))
        used = {asset_name for asset_name, _ in assets}
        prefix = _prefix(name, client_id)
        for tenant_name in names:
            tenant = build.tenant(tenant_name, linked=rng.random() < 0.6)
            count = max(1, round(len(users) / 5 * rng.uniform(0.5, 1.5)))
            for _ in range(count):
                if assets:
                    computer_name, kind = assets.pop(0)
                else:
                    kind = rng.choice(("LT", "LT", "WS", "SRV"))
                    n = 1
                    while f"{prefix}-{kind}{n:02d}" in used:
                        n += 1
                    computer_name = f"{prefix}-{kind}{n:02d}"
                    used.add(computer_name)
                owner = (
                    rng.choice(users) if users and kind != "SRV" and rng.random() < 0.85 else None
                )
                online = rng.random() < 0.7
                build.computer(tenant, computer_name, owner, online, days_off=rng.randint(1, 13))
    # ImmyBot's HaloPSA integration links every onboarded client to its tenant, names aside.
    add_halo_link(build.data, halo_links, halo_names)
    # A few computers ImmyBot must not deploy to, picked by id so the random stream is untouched.
    for computer in build.data.computers:
        computer["isDevLab"] = computer["id"] % 47 == 0
        computer["isSandbox"] = computer["id"] % 53 == 0
        computer["excludeFromMaintenance"] = computer["id"] % 59 == 0
    return build.data


def add_halo_link(
    data: ImmyDataSet,
    links: Mapping[int, int | None],
    names: Mapping[int, str] | None = None,
    *,
    link_id: int = HALO_LINK_ID,
    link_name: str = HALO_LINK_NAME,
) -> ImmyDataSet:
    """Add a HaloPSA provider link whose clients (HaloPSA client id -> linked tenant id, None for
    an unlinked client) are `links`, as ImmyBot's HaloPSA integration would list them."""
    data.provider_links.append(
        {
            "id": link_id,
            "name": link_name,
            # ImmyBot names provider types by GUID; the sandbox's is invented.
            "providerTypeId": "00000000-0000-4000-8000-000000000a10",
            "disabled": False,
            "ownerTenantId": MSP_TENANT_ID,
        }
    )
    for client_id, tenant_id in sorted(links.items()):
        data.provider_clients.append(
            {
                "providerLinkId": link_id,
                "externalClientId": str(client_id),
                "externalClientName": (names or {}).get(client_id, f"Client {client_id}"),
                "linkedToTenantId": tenant_id,
                "status": "Active",
                "types": ["Customer"],
            }
        )
    return data


def flag_computers(
    data: ImmyDataSet,
    ids: Iterable[int],
    *,
    sandbox: bool = False,
    dev_lab: bool = False,
    excluded: bool = False,
) -> ImmyDataSet:
    """Set ImmyBot's isSandbox / isDevLab / excludeFromMaintenance on the computers `ids`."""
    wanted = set(ids)
    for computer in data.computers:
        if computer.get("id") in wanted:
            computer["isSandbox"] = computer.get("isSandbox") or sandbox
            computer["isDevLab"] = computer.get("isDevLab") or dev_lab
            computer["excludeFromMaintenance"] = computer.get("excludeFromMaintenance") or excluded
    return data


def immy_data_for(halo: HaloDataSet, seed: int = 1, today: date | None = None) -> ImmyDataSet:
    """ImmyBot tenants and computers for a HaloPSA data set; the same arguments give the same data.

    The demo set gets the hand-written mapping in the module docstring; any other set is mapped
    with seeded mismatch rates."""
    build = _Builder(random.Random(seed), today or date.today())
    data = _demo(halo, build) if is_demo(halo) else _generated(halo, build)
    data.detected_software = detected_software(data.computers, build.midnight)
    return data


def pad_computers(data: ImmyDataSet, minimum: int, today: date) -> ImmyDataSet:
    """Give every customer tenant at least `minimum` computers (copies of its first, renamed, with
    no primary user), and recompute the detected software: benchmarks of per-computer reads."""
    by_tenant: dict[Any, list[Record]] = {}
    for computer in data.computers:
        by_tenant.setdefault(computer.get("tenantId"), []).append(computer)
    for tenant in data.tenants:
        if tenant.get("isMsp"):
            continue
        own = by_tenant.get(tenant["id"], [])
        for n in range(len(own), minimum):
            template = own[0] if own else {"tenantId": tenant["id"], "tenantName": tenant["name"]}
            data.computers.append(
                {
                    **template,
                    "id": len(data.computers) + 1,
                    "computerName": f"T{tenant['id']}-PC{n + 1:02d}",
                    "primaryUserEmail": None,
                    "deviceId": str(uuid.UUID(int=len(data.computers) + 1)),
                }
            )
    data.detected_software = detected_software(
        data.computers, datetime.combine(today, time(), tzinfo=UTC)
    )
    return data


# -- detected software ------------------------------------------------------------------------

# Display names as Windows' uninstall registry (and so ImmyBot's inventory) shows them.
_EVERYWHERE = (("Microsoft Edge", "131.0.2903.70"), ("7-Zip 23.01 (x64)", "23.01"))
HUNTRESS = ("Huntress Agent", "0.14.46")
SENTINEL = ("Sentinel Agent", "23.4.4.223")


def detected_software(computers: Iterable[Record], midnight: datetime) -> list[Record]:
    """What ImmyBot's inventory found on each computer, by a rule on the computer id.

    Every computer has Microsoft Edge and 7-Zip; "Huntress Agent" unless the id is divisible by
    4; "Sentinel Agent" (SentinelOne's display name) unless divisible by 3; and a computer whose id
    ends in 7 was never inventoried (no rows at all). Demo tenant 2 (Contoso, ids 3-7): 3 Huntress
    only, 4 SentinelOne only, 5 both, 6 Huntress only, 7 never inventoried.
    """
    rows: list[Record] = []
    for computer in computers:
        number = computer.get("id")
        if not isinstance(number, int) or number % 10 == 7:
            continue
        found = list(_EVERYWHERE)
        if number % 4:
            found.append(HUNTRESS)
        if number % 3:
            found.append(SENTINEL)
        for name, version in found:
            rows.append(
                {
                    "id": len(rows) + 1,
                    "computerName": computer.get("computerName"),
                    "computerId": number,
                    "softwareName": name,
                    "softwareId": None,
                    "tenantName": computer.get("tenantName"),
                    "tenantId": computer.get("tenantId"),
                    "personName": None,
                    "personEmail": None,
                    "personId": None,
                    "version": version,
                    "detectedAt": _stamp(midnight - timedelta(hours=number % 24)),
                    "installDate": _stamp(midnight - timedelta(days=30 + number % 300)),
                    "platform": "Machine",
                    "productCode": str(uuid.UUID(int=number * 1000 + len(rows))),
                    "upgradeCode": None,
                    "quietUninstallString": None,
                    "uninstallString": None,
                    "systemComponent": None,
                    "registryPath": None,
                    "installLocation": None,
                }
            )
    return rows
