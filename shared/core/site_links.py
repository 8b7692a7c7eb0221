"""Which HaloPSA site each ImmyBot computer is at, through the asset it is matched to (pure).

ImmyBot knows tenants and computers, not HaloPSA sites; HaloPSA knows which site an asset is at.
Asset population pairs each computer of a client mapped one to one with one of the client's assets
(the ImmyBot id it recorded on the asset, then serial, then name: `shared.core.asset_match`), so the
asset's `site_id` says where the computer is. A site-scoped rule's ImmyBot tag goes on the computers
at its sites through this link (`shared.core.computer_tags`); a computer without one is listed with
the reason, never guessed into a site.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from shared.core.asset_match import Matching, match_assets, one_to_one
from shared.core.asset_plan import AssetConfig, immybot_id_of
from shared.core.targets import Target
from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer

NO_ASSET = "no HaloPSA asset of its client matches it (by ImmyBot id, serial or name)"
AMBIGUOUS = "several HaloPSA assets match it, or its asset matches several computers"
INACTIVE = "its HaloPSA asset is inactive"
NO_SITE = "its HaloPSA asset has no site"
NOT_COVERED = (
    "asset population does not match this tenant's computers: no HaloPSA client is mapped to "
    "the tenant one to one by an explicit or name mapping"
)
NO_LINKS = (
    "no computer-to-site links for this generation: asset population (ASSET_SYNC plan or apply) "
    "did not list HaloPSA's assets after this sync"
)


class SiteLink(BaseModel):
    """Where one computer of a one-to-one mapped client is, and by which asset (or why unknown)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    computer_id: int
    tenant_id: int
    client_id: int
    site_id: int | None = Field(description="The HaloPSA site; null when unknown (see note).")
    asset_id: int | None = None
    matched_by: str | None = Field(default=None, description="immybot_id, serial or name")
    note: str | None = Field(default=None, description="Why the site is unknown.")


class Unplaced(BaseModel):
    """A computer of a site-scoped rule's target tenant whose site is unknown: not tagged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    computer_id: int
    computer_name: str
    tenant_id: int
    reason: str


def link_sites(
    mapped: Mapping[int, int],
    computers: Iterable[ImmyComputer],
    assets: Iterable[AssetRow],
    config: AssetConfig,
) -> list[SiteLink]:
    """A link (or its absence, with why) for every computer of every client asset population
    matches (`mapped`: client id -> tenant id, as asset population is given it), by computer id."""
    links: list[SiteLink] = []
    for side in one_to_one(mapped, computers, assets):
        matching = match_assets(
            side.computers, side.assets, lambda a: immybot_id_of(a, config), config.serial_field
        )
        links.extend(_client_links(side.client_id, side.tenant_id, side.computers, matching))
    return sorted(links, key=lambda link: link.computer_id)


def _client_links(
    client_id: int, tenant_id: int, computers: Sequence[ImmyComputer], matching: Matching
) -> list[SiteLink]:
    links = []
    for computer in computers:
        asset = matching.matched.get(computer.id)
        note = None
        if asset is None:
            note = AMBIGUOUS if computer.id in matching.blocked else NO_ASSET
        elif asset.inactive:
            # A human retired the asset: its site may be history, so it places nothing.
            note = INACTIVE
        elif asset.site_id is None:
            note = NO_SITE
        links.append(
            SiteLink(
                computer_id=computer.id,
                tenant_id=tenant_id,
                client_id=client_id,
                site_id=asset.site_id if asset is not None and note is None else None,
                asset_id=asset.id if asset else None,
                matched_by=matching.matched_by.get(computer.id),
                note=note,
            )
        )
    return links


@dataclass(frozen=True, slots=True)
class Placement:
    """A site-scoped rule's computers: those at its targets' sites, and those whose site is
    unknown."""

    placed: dict[int, SiteLink]  # computer id -> its link, for computers at a target's sites
    unplaced: list[Unplaced]


def place(
    targets: Iterable[Target],
    computers: Iterable[ImmyComputer],
    links: Mapping[int, SiteLink] | None,
) -> Placement:
    """Which computers of the targets' tenants are at the targets' (in-scope, active) `sites`.

    A computer counts for a target when its link names the target's client and one of its sites;
    one linked elsewhere is simply not in scope. One with no known site is unplaced; with no links
    at all (`None`), every computer of the targets' tenants is.
    """
    by_tenant: dict[int, list[Target]] = defaultdict(list)
    for target in targets:
        if target.immy_tenant_id is not None:
            by_tenant[target.immy_tenant_id].append(target)
    wanted = {(t.client_id, s.id) for found in by_tenant.values() for t in found for s in t.sites}
    placed: dict[int, SiteLink] = {}
    unplaced: list[Unplaced] = []
    for computer in sorted(computers, key=lambda c: c.id):
        if computer.tenant_id not in by_tenant:
            continue
        link = links.get(computer.id) if links is not None else None
        if link is None or link.site_id is None:
            reason = NO_LINKS if links is None else link.note if link else NOT_COVERED
            unplaced.append(
                Unplaced(
                    computer_id=computer.id,
                    computer_name=computer.name,
                    tenant_id=computer.tenant_id,
                    reason=reason or NO_SITE,
                )
            )
        elif (link.client_id, link.site_id) in wanted:
            placed[computer.id] = link
    return Placement(placed, unplaced)
