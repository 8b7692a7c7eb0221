"""The computers part of the technician tab: the tenant's computers and, per computer, whether each
software the client is entitled to is installed, missing or unknown.

Both are read live from ImmyBot under the view's one deadline: the tenant's computers
(`GET /api/v1/computers/paged`), then the detected software of the ticket user's computers and of
the rest up to a cap (`GET /api/v1/computers/{id}/detected-computer-software`, side by side). What
misses the deadline is "unknown" with the reason; when the computer list itself misses it (or
ImmyBot fails), the snapshot's list stands in, its software unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.core.coverage import Wanted
from shared.core.detection import find
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.records.immybot import DetectedSoftware, ImmyComputer

log = logging.getLogger("halo_immy.tab")
Status = Literal["installed", "missing", "unknown"]


@dataclass(frozen=True, slots=True)
class SoftwareCell:
    """One software on one computer: installed (with its version), missing, or unknown and why."""

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
class SoftwareSummary:
    """One software across the tenant's computers: "SentinelOne: 3 of 5 computers"."""

    software: str
    installed: int
    computers: int
    unknown: int

    @property
    def text(self) -> str:
        """The summary line."""
        line = f"{self.software}: {self.installed} of {self.computers} computers"
        return line + (f" ({self.unknown} unknown)" if self.unknown else "")


@dataclass(frozen=True, slots=True)
class Computers:
    """The computers part of the tab: rows (the ticket user's first), or a sentence why none."""

    rows: list[ComputerRow] = field(default_factory=list)
    note: str | None = None
    source: str = ""
    software: list[str] = field(default_factory=list)  # the columns, in the rows' cell order
    summaries: list[SoftwareSummary] = field(default_factory=list)

    @property
    def mine(self) -> list[ComputerRow]:
        """The ticket user's computers."""
        return [r for r in self.rows if r.is_ticket_user]

    @property
    def others(self) -> list[ComputerRow]:
        """The rest of the tenant's computers."""
        return [r for r in self.rows if not r.is_ticket_user]


# Per computer id: its detected software, or why it is not known.
Inventory = dict[int, list[DetectedSoftware] | str]


@dataclass(frozen=True, slots=True)
class TenantRead:
    """What ImmyBot said about a tenant within the deadline (or the snapshot's list instead)."""

    computers: list[ImmyComputer]
    inventory: Inventory
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


async def read_tenant(
    immy: ImmyClient,
    tenant_id: int,
    email: str,
    *,
    cap: int,
    deadline: float,
    deadline_ms: int,
    stored: Callable[[], Sequence[ImmyComputer]],
) -> TenantRead:
    """The tenant's computers and their detected software, all done by `deadline` (loop time).

    The ticket user's computers are read first and always; the others up to `cap` in all.
    """
    loop = asyncio.get_running_loop()
    late = f"ImmyBot did not answer within {deadline_ms} ms"
    try:
        listed = await asyncio.wait_for(immy.computers(tenant_id), max(0.0, deadline - loop.time()))
        source = "live from ImmyBot"
    except (TimeoutError, ImmyError) as error:
        log.warning("tab computers of tenant %s: %s", tenant_id, type(error).__name__)
        why = late if isinstance(error, TimeoutError) else "ImmyBot is unavailable"
        found = await asyncio.to_thread(stored)
        return TenantRead(
            ordered([c for c in found if c.tenant_id == tenant_id], email),
            {c.id: why for c in found},
            f"as of the last sync: {why}",
        )
    # Filtered again here: a computer of another tenant must never be shown as this client's.
    computers = ordered([c for c in listed if c.tenant_id == tenant_id], email)
    # `ordered` puts the ticket user's computers first: all of them, then others up to `cap`.
    mine = sum(used_by(c, email) for c in computers)
    chosen = computers[: max(cap, mine)]
    tasks = {c.id: asyncio.create_task(immy.detected_software(c.id)) for c in chosen}
    inventory: Inventory = {
        c.id: f"not read: the tab checks {cap} computers at most" for c in computers
    }
    if tasks:
        _, pending = await asyncio.wait(tasks.values(), timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        for computer_id, task in tasks.items():
            if task in pending:
                inventory[computer_id] = late
            elif task.exception() is not None:
                log.warning(
                    "detected software of computer %s: %s",
                    computer_id,
                    type(task.exception()).__name__,
                )
                inventory[computer_id] = "ImmyBot could not say"
            else:
                rows = [r for r in task.result() if r.computer_id == computer_id]
                inventory[computer_id] = rows or "never inventoried by ImmyBot"
    return TenantRead(computers, inventory, source)


def cell(wanted: Wanted, found: list[DetectedSoftware] | str) -> SoftwareCell:
    """Installed (with version) / missing / unknown for one software on one computer."""
    if isinstance(found, str):
        return SoftwareCell("unknown", why=found)
    hit = find(wanted.patterns, found)
    return SoftwareCell("installed", version=hit.version) if hit else SoftwareCell("missing")


def computers_view(
    read: TenantRead, wanted: Sequence[Wanted], email: str, base_url: str, tenant_name: str
) -> Computers:
    """The rows and per-software summaries for the template."""
    rows = [
        ComputerRow(
            name=c.name or f"computer {c.id}",
            online=c.online,
            last_seen=c.last_seen,
            user_email=c.primary_user_email,
            url=f"{base_url}/computers/{c.id}",
            is_ticket_user=used_by(c, email),
            software=tuple(cell(w, read.inventory.get(c.id, "not read")) for w in wanted),
        )
        for c in read.computers
    ]
    summaries = [
        SoftwareSummary(
            w.software,
            installed=sum(r.software[i].status == "installed" for r in rows),
            computers=len(rows),
            unknown=sum(r.software[i].status == "unknown" for r in rows),
        )
        for i, w in enumerate(wanted)
    ]
    return Computers(
        rows=rows,
        note=None if rows else f"ImmyBot tenant {tenant_name} has no computers.",
        source=f"ImmyBot tenant {tenant_name}, {read.source}",
        software=[w.software for w in wanted],
        summaries=summaries,
    )
