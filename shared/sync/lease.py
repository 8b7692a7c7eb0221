"""The sync lease while a run works: its heartbeat, and recording a run whose lease went stale.

One run at a time holds the lease (`SyncState/lease`, shared.store.state); a run killed mid-way
leaves it to expire, and the run that takes it over records the killed one as `abandoned`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.store.repository import Store
from shared.store.state import LeaseInfo
from shared.sync.runs import Outcome, SyncReport

log = logging.getLogger("halo_immy.sync")


# The lease is short and renewed by a heartbeat, not sized to the longest run: a live run renews
# it every LEASE_RENEW for as long as the host lets it run (host.json functionTimeout, 30 minutes;
# a 5,000-client sync at the default 50 requests a minute needs about 8), while a killed run's
# lease is stale within LEASE_TTL, when the next run takes it over and records that run as
# `abandoned`. TTL over renewal interval tolerates a few failed renewals or a busy event loop.
LEASE_TTL = timedelta(minutes=5)
LEASE_RENEW = timedelta(minutes=1)
# Lease owners that are an event's refresh (shared.sync.event_refresh), not a sync run.
EVENT_OWNER_PREFIX = "event-"


def brief(error: BaseException) -> str:
    """An error's type and the start of its text, for run records and warnings."""
    return f"{type(error).__name__}: {str(error)[:300]}"


class SyncLease:
    """Our hold on the sync lease, renewed in the background while the run works.

    LEASE_TTL is short, so a killed run's lease goes stale within minutes, and is renewed every
    LEASE_RENEW, so a run that is alive keeps it for as long as the host lets it run.
    """

    def __init__(self, store: Store, owner: str, clock: Callable[[], datetime]) -> None:
        self._store, self._owner, self._clock = store, owner, clock
        self.lost = False

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW.total_seconds())
            try:
                held = await asyncio.to_thread(
                    self._store.renew_lease, self._owner, now=self._clock(), ttl=LEASE_TTL
                )
            except Exception as error:
                # A storage blip: the lease still has most of its TTL; the next beat tries again.
                log.warning("could not renew the sync lease: %s", type(error).__name__)
                continue
            if not held:
                self.lost = True
                return


async def record_abandoned(store: Store, stale: LeaseInfo, report: SyncReport) -> None:
    """Record the run whose expired lease this run took over, unless it recorded itself."""
    if stale.owner.startswith(EVENT_OWNER_PREFIX):
        # A dead event refresh is no sync run (and must not fire the sync alerts): its message
        # is delivered again, and its death shows in the events' status as a retry.
        return
    started = stale.started_at or stale.expires_at
    try:
        if await asyncio.to_thread(store.run_record, stale.owner, started) is not None:
            return  # it finished and recorded, only its lease release failed
        abandoned = SyncReport(
            run_id=stale.owner,
            started_at=started,
            outcome=Outcome.ABANDONED,
            note=(
                f"the run stopped without finishing (killed or timed out); its lease expired at "
                f"{stale.expires_at:%Y-%m-%dT%H:%M:%SZ} and run {report.run_id} took it over"
            ),
        )
        await asyncio.to_thread(
            store.record_run, abandoned.run_id, abandoned.started_at, abandoned.properties()
        )
        log.warning(abandoned.log_line())
    except Exception as error:
        report.warnings.append(f"could not record abandoned run {stale.owner}: {brief(error)}")
