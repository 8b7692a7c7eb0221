"""The computers part of the technician tab: the client's ImmyBot tenant and its computers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.generation import read_computers, read_manifest, read_matches
from shared.immy_client import ImmyClient, ImmyError
from shared.immy_models import ImmyComputer
from shared.mapping import TenantMatch
from shared.settings import Settings
from shared.store import Store

log = logging.getLogger("halo_immy.tab")


@dataclass(frozen=True, slots=True)
class ComputerRow:
    """A computer in the client's deployment tenant."""

    name: str
    online: bool | None
    last_seen: datetime | None
    user_email: str
    url: str | None
    is_ticket_user: bool


@dataclass(frozen=True, slots=True)
class Computers:
    """The computers part of the tab: rows, or a plain sentence why there are none."""

    rows: list[ComputerRow] = field(default_factory=list)
    note: str | None = None
    source: str = ""


# Computers of a client: (generation, client id, ticket user's email, synced at) -> Computers.
ComputerSource = Callable[[str, int, str, datetime], Awaitable[Computers]]


def computer_rows(
    computers: Sequence[ImmyComputer], email: str, base_url: str
) -> list[ComputerRow]:
    """Rows for the tab: the ticket user's computers first, then online ones, then by name."""
    wanted = email.strip().casefold()
    rows = [
        ComputerRow(
            name=c.name or f"computer {c.id}",
            online=c.online,
            last_seen=c.last_seen,
            user_email=c.primary_user_email,
            url=f"{base_url}/computers/{c.id}",
            is_ticket_user=bool(wanted) and c.primary_user_email.strip().casefold() == wanted,
        )
        for c in computers
    ]
    rows.sort(key=lambda r: (not r.is_ticket_user, not r.online, r.name.casefold()))
    return rows


def immybot_computers(store: Store, settings: Settings, live_timeout: float) -> ComputerSource:
    """Computers from the snapshot, or live from ImmyBot when the snapshot is older than
    IMMY_LIVE_AFTER_MINUTES (falling back to the snapshot if ImmyBot does not answer in time)."""
    immy = settings.immybot
    assert immy is not None

    async def source(generation: str, client_id: int, email: str, synced_at: datetime) -> Computers:
        match = (await asyncio.to_thread(_matches, store, generation)).get(client_id)
        if match is None or match.tenant_id is None:
            why = match.detail if match else "no ImmyBot tenant has this client's name"
            return Computers(
                note=f"This client has no ImmyBot tenant ({why}): map it in /api/mappings."
            )
        tenant_id = match.tenant_id
        age = datetime.now(UTC) - synced_at
        if age > timedelta(minutes=immy.live_after_minutes):
            try:
                live = await asyncio.wait_for(_live_computers(settings, tenant_id), live_timeout)
                return Computers(
                    rows=computer_rows(live, email, immy.base_url), source="live from ImmyBot"
                )
            except (TimeoutError, ImmyError) as error:
                log.warning("live computers for tenant %s: %s", tenant_id, type(error).__name__)
        stored = await asyncio.to_thread(read_computers, store, generation, tenant_id)
        rows = computer_rows(stored, email, immy.base_url)
        note = None if rows else f"ImmyBot tenant {match.tenant_name} has no computers."
        return Computers(
            rows=rows, note=note, source=f"ImmyBot tenant {match.tenant_name}, as of the last sync"
        )

    return source


async def _live_computers(settings: Settings, tenant_id: int) -> list[ImmyComputer]:
    immy = ImmyClient.from_settings(settings)
    assert immy is not None
    async with immy:
        return await immy.computers(tenant_id)


_matches_cache: dict[tuple[str, str], dict[int, TenantMatch]] = {}
_matches_lock = threading.Lock()


def _matches(store: Store, generation: str) -> dict[int, TenantMatch]:
    _, version = read_manifest(store, generation)
    key = (store.identity + generation, version)
    with _matches_lock:
        hit = _matches_cache.get(key)
    if hit is not None:
        return hit
    matches = read_matches(store, generation)
    with _matches_lock:
        _matches_cache.clear()
        _matches_cache[key] = matches
    return matches
