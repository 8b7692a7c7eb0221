"""The computers part of the technician tab: the tenant's computers and, per computer, whether each
software the client is entitled to is installed, missing, not targeted or unknown.

The list is read live from ImmyBot under the view's one deadline (`GET /api/v1/computers/paged`,
one request); when it misses the deadline (or ImmyBot fails) the list the last sync stored stands
in. Installed and missing come from that stored list too: the sync read ImmyBot's inventory in bulk
(one search per detect pattern, `shared.sync.immybot`) and kept, per computer, the software a
rule's pattern matches. So a view makes no per-computer ImmyBot request, and its cells agree with
the reconciliation. A computer the sync did not see (new since) is "unknown"; one ImmyBot never
inventoried shows as missing (the bulk search lists only computers that have the software).
"Missing" is only said of a computer the rule targets (`shared.core.reach`): one at a site a
site-scoped rule leaves out (or whose site is unknown), a sandbox, dev-lab or excluded computer,
or one not seen lately is "not targeted", with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.core.coverage import Wanted
from shared.core.detection import find
from shared.core.installed import InventoryState, StoredComputer, unknown_because
from shared.core.reach import Kind, SiteScope, kind_reason, off_site
from shared.core.site_links import SiteLink
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.immybot.pages import computer_page
from shared.records.immybot import ImmyComputer

log = logging.getLogger("halo_immy.tab")
Status = Literal["installed", "missing", "not_targeted", "unknown"]
NEW_SINCE_SYNC = "new since the last sync: not in its inventory yet"


@dataclass(frozen=True, slots=True)
class SoftwareCell:
    """One software on one computer: installed (with its version), missing, or not targeted or
    unknown and why."""

    status: Status
    version: str = ""
    why: str = ""


@dataclass(frozen=True, slots=True)
class ComputerRow:
    """A computer in the client's deployment tenant, with a cell per entitled software."""

    name: str
    online: bool | None
    last_seen: datetime | None
    user_email: str
    url: str | None
    is_ticket_user: bool
    software: tuple[SoftwareCell, ...] = ()


@dataclass(frozen=True, slots=True)
class Computers:
    """The computers part of the tab: rows (the ticket user's first), or a sentence why none."""

    rows: list[ComputerRow] = field(default_factory=list)
    note: str | None = None
    source: str = ""
    software: list[str] = field(default_factory=list)  # the columns, in the rows' cell order

    @property
    def mine(self) -> list[ComputerRow]:
        """The ticket user's computers."""
        return [r for r in self.rows if r.is_ticket_user]

    @property
    def others(self) -> list[ComputerRow]:
        """The rest of the tenant's computers."""
        return [r for r in self.rows if not r.is_ticket_user]


@dataclass(frozen=True, slots=True)
class TenantRead:
    """The tenant's computers to show (live, or the stored list instead), and the stored list by
    id, where the software cells come from."""

    computers: list[ImmyComputer]
    stored: Mapping[int, StoredComputer]
    source: str


def used_by(computer: ImmyComputer, email: str) -> bool:
    """Whether `email` (the ticket user's; may be empty) is the computer's primary user."""
    wanted = email.strip().casefold()
    return bool(wanted) and computer.primary_user_email.strip().casefold() == wanted


def ordered(computers: Sequence[ImmyComputer], email: str) -> list[ImmyComputer]:
    """The ticket user's computers first, then online ones, then by name."""
    return sorted(
        computers, key=lambda c: (not used_by(c, email), not c.online, c.name.casefold(), c.id)
    )


async def live_computers(
    immy: ImmyClient, tenant_id: int, *, deadline: float, deadline_ms: int
) -> list[ImmyComputer] | str:
    """The tenant's computers from ImmyBot by `deadline` (loop time), or why not."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(immy.computers(tenant_id), max(0.0, deadline - loop.time()))
    except (TimeoutError, ImmyError) as error:
        log.warning("tab computers of tenant %s: %s", tenant_id, type(error).__name__)
        if isinstance(error, TimeoutError):
            return f"ImmyBot did not answer within {deadline_ms} ms"
        return "ImmyBot is unavailable"


def tenant_read(
    live: Sequence[ImmyComputer] | str,
    stored: Sequence[StoredComputer],
    tenant_id: int,
    email: str,
) -> TenantRead:
    """What to show: the live list (or, when it is a reason, the stored one), only the tenant's
    computers (a computer of another tenant must never be shown as this client's)."""
    by_id = {c.id: c for c in stored if c.tenant_id == tenant_id}
    if isinstance(live, str):
        return TenantRead(
            ordered(list(by_id.values()), email), by_id, f"as of the last sync: {live}"
        )
    shown = [c for c in live if c.tenant_id == tenant_id]
    return TenantRead(ordered(shown, email), by_id, "live from ImmyBot")


@dataclass(frozen=True, slots=True)
class Reach:
    """What says whether a rule targets a stored computer: how ImmyBot treats each of the tenant's
    computers as of the sync (`shared.core.reach.Kind`, by id), `IMMY_STALE_DAYS`, and where
    computers are for site-scoped rules (None: the generation has no computer-to-site links)."""

    kinds: Mapping[int, Kind]
    stale_days: int
    links: Mapping[int, SiteLink] | None = None

    def why_not(self, wanted: Wanted, computer_id: int) -> str | None:
        """Why the rule does not target the computer (None: it does)."""
        if wanted.site_scoped:
            why = off_site(computer_id, wanted.target, SiteScope(self.links))
            if why is not None:
                return why
        return kind_reason(self.kinds.get(computer_id, "targeted"), self.stale_days)


def cell(
    wanted: Wanted, stored: StoredComputer | None, unknown: str | None, reach: Reach
) -> SoftwareCell:
    """Installed (with version) / missing / not targeted / unknown for one software on one
    computer, from what the sync stored of ImmyBot's inventory (`unknown`: why the inventory
    cannot answer at all). Only a computer the rule targets is ever missing."""
    if unknown is not None:
        return SoftwareCell("unknown", why=unknown)
    if stored is None:
        return SoftwareCell("unknown", why=NEW_SINCE_SYNC)
    hit = find(wanted.patterns, stored.software)
    if hit:
        return SoftwareCell("installed", version=hit.version)
    why = reach.why_not(wanted, stored.id)
    return SoftwareCell("missing") if why is None else SoftwareCell("not_targeted", why=why)


def computers_view(
    read: TenantRead,
    wanted: Sequence[Wanted],
    inventory: InventoryState | None,
    reach: Reach,
    *,
    email: str,
    base_url: str,
    tenant_name: str,
) -> Computers:
    """The rows for the template, a cell per entitled software."""
    unknown = [unknown_because(w.patterns, inventory) for w in wanted]
    rows = [
        ComputerRow(
            name=c.name or f"computer {c.id}",
            online=c.online,
            last_seen=c.last_seen,
            user_email=c.primary_user_email,
            url=computer_page(base_url, c.id),
            is_ticket_user=used_by(c, email),
            software=tuple(
                cell(w, read.stored.get(c.id), why, reach)
                for w, why in zip(wanted, unknown, strict=True)
            ),
        )
        for c in read.computers
    ]
    return Computers(
        rows=rows,
        note=None if rows else f"ImmyBot tenant {tenant_name} has no computers.",
        source=f"ImmyBot tenant {tenant_name}, {read.source}",
        software=[w.software for w in wanted],
    )
