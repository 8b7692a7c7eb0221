"""The writer lease: one writer of the published state at a time, held briefly, kept by a heartbeat.

Whoever publishes (moves the pointer, records a held generation, writes a generation's table,
then applies ImmyBot tags and HaloPSA assets) holds `SyncState/lease` (shared.store.state). Today
that is the sync run (`purpose="sync"`); an event-driven refresh of one client (DESIGN.md section
10) takes the very same lease with `purpose="refresh"`, so a refresh and a full sync never
publish side by side: each takes it with `WriterLease.take`, works inside `heartbeat()`, calls
`confirm()` right before each publishing write, and `release()`s it at the end.

The lease is short (LEASE_TTL) and renewed every LEASE_RENEW while the writer lives, so a writer
the host kills blocks the next one for at most LEASE_TTL. A renewal that finds the lease taken, or
that storage refuses, marks it lost: the writer stops before it publishes anything else. Each
renewal and the release is one conditional write on the ETag of the writer's last write to the
lease (a read first only when that write finds the lease changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal

from shared.store.lease import LeaseGrant, LeaseInfo
from shared.store.repository import Store
from shared.sync.runs import Outcome, SyncReport

log = logging.getLogger("halo_immy.sync")

# Short, so a killed writer's lease is stale within two minutes (and a manual sync after a kill
# waits at most that long); renewed three times per TTL, so a live writer keeps it for as long as
# the host lets it run (host.json functionTimeout, 30 minutes). A renewal that fails stops the
# writer, so the spare renewals are for a busy event loop, not for storage blips.
LEASE_TTL = timedelta(minutes=2)
LEASE_RENEW = LEASE_TTL / 3

Purpose = Literal["sync", "refresh"]
Sleep = Callable[[float], Awaitable[None]]


class LeaseLost(Exception):
    """This writer no longer holds the lease (or cannot prove it does): it must not publish."""


# Lease owners that are an event's refresh (shared.sync.event_refresh), not a sync run.
EVENT_OWNER_PREFIX = "event-"


def brief(error: BaseException) -> str:
    """An error's type and the start of its text, for run records and warnings."""
    return f"{type(error).__name__}: {str(error)[:300]}"


class WriterLease:
    """One writer's hold on the lease: taken once, renewed by a heartbeat, confirmed before
    each publishing write, released at the end.

    `clock` and `sleep` are injected so a test can run the heartbeat through hours of time
    without waiting; renewals are serialised, so the heartbeat and `confirm()` never race each
    other's ETag.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        *,
        purpose: Purpose,
        clock: Callable[[], datetime],
        sleep: Sleep = asyncio.sleep,
        ttl: timedelta = LEASE_TTL,
    ) -> None:
        self._store, self.owner, self.purpose = store, owner, purpose
        self._clock, self._sleep, self.ttl = clock, sleep, ttl
        self._renewing = asyncio.Lock()
        self._in_flight: asyncio.Future[bool] | None = None
        # The lease's ETag after our last write to it: a renewal is then one conditional write.
        self._etag: str | None = None
        self.lost: str | None = None  # why the lease is lost, once it is

    @property
    def renew_every(self) -> timedelta:
        """How often the heartbeat renews: three times per TTL."""
        return self.ttl / 3

    async def take(self, started_at: datetime) -> LeaseGrant:
        """Take the lease unless another writer holds an unexpired one (storage errors raise)."""
        grant = await asyncio.to_thread(
            self._store.acquire_lease,
            self.owner,
            now=self._clock(),
            ttl=self.ttl,
            started_at=started_at,
            purpose=self.purpose,
        )
        self._etag = grant.etag
        return grant

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[None]:
        """Renew the lease in the background while the block runs; stop renewing after it."""
        beat = asyncio.create_task(self._keep())
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            # A renewal cancelled mid-way still runs in its thread: let it land before anyone
            # releases the lease, or the release would meet its new ETag and leave the lease.
            if self._in_flight is not None:
                await asyncio.wait({self._in_flight})

    async def _keep(self) -> None:
        while self.lost is None:
            await self._sleep(self.renew_every.total_seconds())
            await self._renew()
        log.warning("writer %s (%s) lost the lease: %s", self.owner, self.purpose, self.lost)

    async def _renew(self) -> bool:
        """Extend the lease to now + TTL; on failure note why it is lost."""
        async with self._renewing:
            if self.lost is not None:
                return False
            job = asyncio.ensure_future(asyncio.to_thread(self._renew_in_thread, self._clock()))
            self._in_flight = job
            try:
                held = await asyncio.shield(job)
            except Exception as error:
                # Not retried: a writer that cannot prove it holds the lease must not publish,
                # and its expiry would let another writer in before a later proof.
                self.lost = f"storage failed while renewing it: {brief(error)}"
                return False
            if not held:
                self.lost = "another writer holds it now"
            return held

    def _renew_in_thread(self, now: datetime) -> bool:
        # The ETag is kept here, in the thread, so a renewal whose task was cancelled (the
        # heartbeat stopping) still hands its ETag to the next renewal or the release.
        etag = self._store.renew_lease(self.owner, now=now, ttl=self.ttl, etag=self._etag)
        if etag is not None:
            self._etag = etag
        return etag is not None

    def check(self) -> None:
        """Raise LeaseLost if the heartbeat found the lease lost."""
        if self.lost is not None:
            raise LeaseLost(f"this {self.purpose} lost the writer lease ({self.lost})")

    async def confirm(self) -> None:
        """Renew now and raise LeaseLost unless we still hold it: call right before publishing,
        so the write that follows is covered by a whole TTL."""
        self.check()
        await self._renew()
        self.check()

    async def still_held(self) -> bool:
        """`confirm()` as a yes or no, for follow-up steps that are skipped, not failed."""
        try:
            await self.confirm()
        except LeaseLost:
            return False
        return True

    async def release(self) -> None:
        """Give the lease back if we still hold it (storage errors raise)."""
        await asyncio.to_thread(self._store.release_lease, self.owner, etag=self._etag)


async def record_abandoned(store: Store, stale: LeaseInfo, report: SyncReport) -> None:
    """Record the sync run whose expired lease this run took over, unless it recorded itself."""
    if stale.owner.startswith(EVENT_OWNER_PREFIX):
        # A dead event refresh (also one whose lease entity predates `purpose`) is no sync run
        # and must not fire the sync alerts: its message is delivered again.
        return
    started = stale.started_at or stale.expires_at
    if stale.purpose != "sync":
        # A refresh records itself elsewhere; this run's note says whose lease it took.
        report.note = f"took over the expired lease of {stale.purpose} {stale.owner}"
        return
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
