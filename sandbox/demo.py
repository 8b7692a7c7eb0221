"""What `make run` serves on top of the sandboxes' demo sets, and the guide it prints.

The HaloPSA demo set (`sandbox/halo_data.py`) and its ImmyBot counterpart (`sandbox/immybot_data.py`)
are the tests' fixtures and stay as their tables say. The devhost adds, for the demo only:

- ImmyBot's HaloPSA integration, provider link 1 (and `IMMY_HALO_LINK_ID=1`, so the tab links each
  ticket to ImmyBot's Technician Tools): it links Fabrikam, Tailspin Toys, Adventure Works and
  Litware to their tenants (mapping `immybot_link`) and lists the other four clients unlinked, so
  Contoso still maps by name, Northwind Traders by its Microsoft Entra tenant (`entra_tenant`),
  Woodgrove Bank stays ambiguous (its Entra tenant is linked to two ImmyBot tenants) and Wide World
  Importers unmapped.
- A tag "Halo: Huntress" that halo-immy made earlier (its description carries the marker), still
  on Contoso, Fabrikam, Tailspin Toys and Adventure Works. Today the Huntress rule covers only
  Contoso and Fabrikam among the mapped clients (Tailspin's contract starts in 14 days, Adventure
  Works' is switched off), so the plan would take the tag off 2 of its 4 tenants: more than
  `SYNC_MAX_DROP` (30%), so that removal is held until an admin approves it.
- Asset population in plan mode (`ASSET_SYNC=plan`), so `GET /api/assets/plan` has a plan.

`guide()` is the part of the devhost's output that says which URLs to open, each with a key that
opens it; `tests/sandbox/test_demo.py` opens every one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.halo_data import HaloDataSet
from sandbox.immybot_data import HALO_LINK_ID, ImmyDataSet, add_halo_link
from shared.core.tag_base import tag_description

# HaloPSA client id -> the tenant ImmyBot's own integration links it to (None: listed, unlinked).
DEMO_LINKS: dict[int, int | None] = {1: None, 2: 3, 3: None, 4: 6, 5: 7, 6: None, 7: None, 8: 9}
HELD_TAG = "Halo: Huntress"
HELD_TAG_ID = 1
# Contoso, Fabrikam (still covered), Tailspin Toys, Adventure Works (no longer covered).
HELD_TAG_TENANTS = (2, 3, 6, 7)

# Settings the demo adds to the devhost's own (asset field ids the HaloPSA sandbox knows).
DEMO_SETTINGS = {
    "IMMY_HALO_LINK_ID": str(HALO_LINK_ID),
    "ASSET_SYNC": "plan",
    "ASSET_TYPE_ID": "1",
    "ASSET_NAME_FIELD": "101",
    "ASSET_SERIAL_FIELD": "117",
    "ASSET_ID_FIELD": "150",
    "ASSET_MARKER_FIELD": "151",
}


def showcase(halo: HaloDataSet, immy: ImmyDataSet) -> ImmyDataSet:
    """The demo ImmyBot set with the provider link and the stale managed tag described above."""
    names = {int(c["id"]): str(c["name"]) for c in halo.clients if isinstance(c, Mapping)}
    add_halo_link(immy, DEMO_LINKS, names)
    immy.tags.append(
        {
            "id": HELD_TAG_ID,
            "name": HELD_TAG,
            "description": tag_description("Huntress"),
            "color": "#2e7d32",
        }
    )
    for tenant in immy.tenants:
        if tenant["id"] in HELD_TAG_TENANTS:
            tenant["tenantTagIds"] = [*tenant["tenantTagIds"], HELD_TAG_ID]
            tenant["tenantTagNames"] = [*tenant["tenantTagNames"], HELD_TAG]
    return immy


@dataclass(frozen=True, slots=True)
class Sight:
    """One URL worth opening in the demo: what it shows, the path, and the function whose key
    opens it (the key goes on the URL as `code`)."""

    label: str
    path: str
    function: str


SIGHTS = (
    Sight(
        "tab, ticket 1: Contoso Ltd, covered (SentinelOne missing on the user's laptop)",
        "/api/technician-tab/ticket/1",
        "technician_tab",
    ),
    Sight(
        "tab, ticket 5: Tailspin Toys LLC, no software covered",
        "/api/technician-tab/ticket/5",
        "technician_tab",
    ),
    Sight("tab, ticket 11: no client", "/api/technician-tab/ticket/11", "technician_tab"),
    Sight(
        "tab, ticket 8: Woodgrove Bank, ambiguous ImmyBot tenant; Microsoft 365 Apps (this site only)",
        "/api/technician-tab/ticket/8",
        "technician_tab",
    ),
    Sight("ImmyBot tags plan (Huntress: a held removal)", "/api/immybot/tags", "immybot_tags"),
    Sight(
        "reconciliation, SentinelOne (billed, targeted, installed)",
        "/api/reconciliation?software=SentinelOne",
        "reconciliation",
    ),
    Sight("client -> tenant mappings", "/api/mappings", "rules"),
    Sight("asset plan", "/api/assets/plan", "assets_plan"),
)


def guide(base_url: str, keys: Mapping[str, str]) -> list[str]:
    """The lines naming each URL worth opening, each carrying the key (`keys`: function name ->
    its key) that opens it."""
    lines = ["open these (each URL carries a key that opens it):"]
    for sight in SIGHTS:
        joiner = "&" if "?" in sight.path else "?"
        lines.append(f"  {sight.label}")
        lines.append(f"    {base_url}{sight.path}{joiner}code={keys[sight.function]}")
    return lines
