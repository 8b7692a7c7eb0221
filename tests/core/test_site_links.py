"""Computer-to-site links from the asset matching, and a site-scoped rule's placement (pure)."""

from __future__ import annotations

from shared.core.asset_plan import AssetConfig
from shared.core.site_links import (
    AMBIGUOUS,
    INACTIVE,
    NO_ASSET,
    NO_LINKS,
    NO_SITE,
    NOT_COVERED,
    SiteLink,
    link_sites,
    place,
)
from shared.core.targets import SiteRef
from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer
from tests.conftest import target

CONFIG = AssetConfig(type_id=7, name_field=101, id_field=150, marker_field=151, serial_field=117)


def computer(cid: int, tenant: int, name: str, serial: str = "") -> ImmyComputer:
    return ImmyComputer.model_validate(
        {"id": cid, "computerName": name, "tenantId": tenant, "serialNumber": serial}
    )


def asset(aid: int, client: int, site: int | None, name: str, **extra) -> AssetRow:
    fields = [{"id": 150, "value": extra.pop("immy")}] if "immy" in extra else []
    row = {"id": aid, "client_id": client, "site_id": site, "key_field": name, "fields": fields}
    return AssetRow.model_validate(row | extra)


def test_each_computer_of_a_one_to_one_client_gets_its_assets_site_or_why_not():
    computers = [
        computer(1, 3, "PC-1"),  # by the ImmyBot id recorded on asset 10 (named otherwise)
        computer(2, 3, "PC-2", serial="SER-2"),  # by serial
        computer(3, 3, "PC-3"),  # by name, asset without a site
        computer(4, 3, "PC-4"),  # two assets of that name
        computer(5, 3, "PC-5"),  # no asset
        computer(6, 3, "PC-6"),  # a retired asset
        computer(7, 4, "SHARED-1"),  # tenant 4 is mapped from clients 2 and 5: left out
        computer(8, 9, "OTHER-1"),  # tenant 9 is nobody's
    ]
    assets = [
        asset(10, 1, 11, "RENAMED", immy="1"),
        asset(11, 1, 12, "X", fields=[{"id": 117, "value": "SER-2"}]),
        asset(12, 1, None, "PC-3"),
        asset(13, 1, 11, "PC-4"),
        asset(14, 1, 12, "pc-4"),
        asset(15, 1, 11, "PC-6", inactive=True),
        asset(16, 2, 21, "SHARED-1"),
    ]
    links = link_sites({1: 3, 2: 4, 5: 4}, computers, assets, CONFIG)
    found = {link.computer_id: (link.site_id, link.matched_by, link.note) for link in links}
    assert found == {
        1: (11, "immybot_id", None),
        2: (12, "serial", None),
        3: (None, "name", NO_SITE),
        4: (None, None, AMBIGUOUS),
        5: (None, None, NO_ASSET),
        6: (None, "name", INACTIVE),
    }
    assert {link.client_id for link in links} == {1} and links[0].asset_id == 10


def link(cid: int, tenant: int, client: int, site: int | None, note: str | None = None):
    return SiteLink(computer_id=cid, tenant_id=tenant, client_id=client, site_id=site, note=note)


def scoped(client: int, tenant: int | None, *sites: int):
    found = target(client, tenant)
    return found.model_copy(update={"sites": [SiteRef(id=s, name=f"S{s}") for s in sites]})


def test_placement_takes_the_targets_sites_and_lists_computers_of_unknown_site():
    computers = [computer(n, 3 if n < 6 else 4, f"PC-{n}") for n in range(1, 8)]
    links = {
        1: link(1, 3, 1, 11),
        2: link(2, 3, 1, 12),  # the client's other site: out of scope, not listed
        3: link(3, 3, 1, None, NO_ASSET),
        4: link(4, 3, 9, 11),  # linked to site 11 through another client: not this target's
        # 5: no link at all (its tenant is not one asset population matched)
        6: link(6, 4, 2, 21),  # tenant 4 is no target
    }
    targets = [scoped(1, 3, 11), scoped(7, None, 11)]  # client 7 has no tenant
    result = place(targets, computers, links)
    assert {c: k.site_id for c, k in result.placed.items()} == {1: 11}
    assert [(u.computer_id, u.reason) for u in result.unplaced] == [(3, NO_ASSET), (5, NOT_COVERED)]
    unknown = place(targets, computers, None)
    assert unknown.placed == {} and {u.reason for u in unknown.unplaced} == {NO_LINKS}
    assert [u.computer_id for u in unknown.unplaced] == [1, 2, 3, 4, 5]
