"""Which of a client's tenant's computers a rule reaches, one computer at a time (pure).

A rule *targets* a computer for a client when a deployment to the rule's tag reaches it: ImmyBot
deploys to it (not a sandbox, dev-lab or excluded-from-maintenance computer), it was seen within
`IMMY_STALE_DAYS` of the sync, and, for a site-scoped rule, asset population placed it at one of
the client's in-scope sites (`shared.core.site_links`: the tag goes on those computers only). The
reconciliation's `targeted` counts these computers and its `installed` those of the same scope
carrying the software; the technician tab marks a computer "missing" only when the rule targets it,
and says why it does not otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.core.site_links import NO_LINKS, NO_SITE, NOT_COVERED, SiteLink
from shared.core.targets import Target
from shared.records.immybot import ImmyComputer

# How ImmyBot treats a computer as of a sync, whatever the rule.
Kind = Literal["targeted", "stale", "not_deployable"]
OTHER_SITE = "at a site of the client the rule does not cover"
NOT_DEPLOYABLE = "sandbox, dev-lab or excluded from maintenance: ImmyBot deploys nothing to it"


def kind_of(computer: ImmyComputer, as_of: datetime, stale_days: int) -> Kind:
    """`not_deployable`, `stale` (deployable, not seen within `stale_days` of `as_of`) or
    `targeted` (a deployment reaches it)."""
    if not computer.deployable:
        return "not_deployable"
    seen = computer.last_seen
    if seen is None or _utc(seen) < as_of - timedelta(days=stale_days):
        return "stale"
    return "targeted"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def kind_reason(kind: Kind, stale_days: int) -> str | None:
    """Why a computer of `kind` is not targeted (None: it is)."""
    if kind == "not_deployable":
        return NOT_DEPLOYABLE
    if kind == "stale":
        return f"not seen by ImmyBot in the {stale_days} days before the sync"
    return None


@dataclass(frozen=True, slots=True)
class SiteScope:
    """What a site-scoped rule knows of where computers are: the generation's computer-to-site
    links by computer id (None: asset population stored none for the generation)."""

    links: Mapping[int, SiteLink] | None


def off_site(computer_id: int, target: Target, scope: SiteScope) -> str | None:
    """Why a computer of the target's tenant is not at one of the target's in-scope sites (its
    site unknown, or another), or None when it is: as `shared.core.site_links.place` decides."""
    if scope.links is None:
        return NO_LINKS
    link = scope.links.get(computer_id)
    if link is None:
        return NOT_COVERED
    if link.site_id is None:
        return link.note or NO_SITE
    if link.client_id != target.client_id or all(s.id != link.site_id for s in target.sites):
        return OTHER_SITE
    return None


def unplaced(reason: str | None) -> bool:
    """Whether an `off_site` reason means the computer's site is unknown (not merely another)."""
    return reason is not None and reason != OTHER_SITE
