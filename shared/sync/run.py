"""One sync run: read HaloPSA, validate, resolve every rule, write a new generation, swap the pointer.

A run that fails anywhere leaves the current generation serving. A run whose targets would drop more
than the allowed share of a rule's current targets (or all of them) is stored but held, not made
current: a HaloPSA permission change must never uninstall security software fleet-wide.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from shared.halo.client import HaloClient
from shared.halo.errors import HaloError, HaloOutOfTime
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.runtime.clients import immy_applications
from shared.runtime.process import get_settings, get_store
from shared.settings import Settings
from shared.store.base import StoreError
from shared.store.event_state import answer_pending
from shared.store.repository import Store
from shared.sync.lease import LeaseLost, Sleep, WriterLease, brief, record_abandoned
from shared.sync.phases import Clients, Phases, RunContext, run_phases
from shared.sync.read import ReportUntrusted
from shared.sync.runs import MAX_TEXT, Outcome, SyncReport, record_run, settle_unrecorded

log = logging.getLogger("halo_immy.sync")


async def run_sync(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    halo: HaloClient | None = None,
    immy: ImmyClient | None = None,
    now: Callable[[], datetime] | None = None,
    sleep: Sleep | None = None,
    before_swap: Callable[[str], None] | None = None,
) -> SyncReport:
    """Run one sync end to end and record it. Never raises for HaloPSA or storage failures.

    The outcome says what serves: `succeeded` once the run's generation is current (problems after
    that are warnings), `failed` if it ended before, `held` if the guard stopped it, `skipped` if
    another run holds the lease, `resumable` if reading HaloPSA reached SYNC_TIME_LIMIT_SECONDS
    (or a 429 asked to wait past it): its pages are staged and the next run continues them.
    Storage down at the start fails the run; its record, like any that storage refused, is
    written by the next run in this process that reaches storage. `now` and `sleep` are the
    clock and the wait the lease's heartbeat uses (injected by tests).
    """
    if store is None:
        store = get_store() if settings is None else Store.from_settings(settings)
    settings = settings or get_settings()
    clock = now or (lambda: datetime.now(UTC))
    started = clock()
    report = SyncReport(run_id=uuid.uuid4().hex[:12], started_at=started)
    phases = Phases(report)
    lease = WriterLease(
        store, report.run_id, purpose="sync", clock=clock, sleep=sleep or asyncio.sleep
    )
    if await _take_lease(lease, store, report, started):
        run = RunContext(settings, store, report, phases, clock, before_swap, lease)
        async with lease.heartbeat():
            await _run_with_clients(run, halo, immy)
        await _answer_events(store, report, started)
        # Not in `finally`: a run cancelled or killed mid-way keeps the lease until it goes stale,
        # and the run that takes it over records this one as abandoned.
        try:
            await lease.release()
        except Exception as error:
            # The next run in this process frees it; elsewhere it expires within LEASE_TTL.
            report.warnings.append(f"the sync lease was not released: {brief(error)}")
    return await _finish(store, report, phases, clock)


async def _take_lease(
    lease: WriterLease, store: Store, report: SyncReport, started: datetime
) -> bool:
    """Whether this run holds the writer lease; when not, the report says why."""
    try:
        await asyncio.to_thread(settle_unrecorded, store)
        grant = await lease.take(started)
    except Exception as error:
        report.outcome = Outcome.FAILED
        report.error = f"storage unavailable, the sync lease could not be taken: {brief(error)}"
        return False
    if not grant:
        report.outcome = Outcome.SKIPPED
        holder = grant.holder
        report.note = (
            f"another writer holds the lease ({holder.purpose} {holder.owner}, until "
            f"{holder.expires_at:%Y-%m-%dT%H:%M:%SZ})"
            if holder is not None
            else "another writer took the lease as this run tried to"
        )
        return False
    if grant.replaced is not None:
        await record_abandoned(store, grant.replaced, report)
    return True


async def _run_with_clients(
    run: RunContext, halo: HaloClient | None, immy: ImmyClient | None
) -> None:
    """The run with the clients it was given or opens, its end told in the report."""
    report = run.report
    owned_halo, owned_immy = halo is None, immy is None
    try:
        halo = halo or HaloClient.from_settings(run.settings)
        immy = immy or ImmyClient.from_settings(run.settings, applications=immy_applications())
        await run_phases(run, Clients(halo, immy))
    except HaloOutOfTime as error:
        _out_of_time(report, str(error)[:MAX_TEXT])
    except (HaloError, StoreError, ImmyError, ReportUntrusted, LeaseLost) as error:
        _ended_by(report, str(error)[:MAX_TEXT])
    except Exception as error:
        log.exception("sync run %s failed unexpectedly", report.run_id)
        _ended_by(report, brief(error))
    finally:
        if halo is not None:
            report.halo_requests = halo.stats.total_requests
            report.halo_retries = halo.stats.retries
            report.halo_lines_by_id = halo.stats.lines_fetched_by_id
            if owned_halo:
                await halo.aclose()
        if owned_immy and immy is not None:
            await immy.aclose()


async def _answer_events(store: Store, report: SyncReport, started: datetime) -> None:
    """A sync that read everything from its start answers the HaloPSA events waiting since
    before then (those refreshes left for it: shared.sync.event_refresh)."""
    if report.outcome is not Outcome.SUCCEEDED or (report.stage or {}).get("reused"):
        return  # not current, or built on pages an earlier run read: the events wait
    try:
        await asyncio.to_thread(answer_pending, store, started)
    except Exception as error:  # the events' refreshes answer them instead
        report.warnings.append(f"pending HaloPSA events not answered: {brief(error)}")


def _out_of_time(report: SyncReport, reason: str) -> None:
    # Only the read has a deadline, so this comes before the generation serves; the pages read
    # are staged and the next run continues them.
    if report.outcome in (Outcome.SUCCEEDED, Outcome.HELD):
        report.warnings.append(reason)
        return
    report.outcome = Outcome.RESUMABLE
    stage = report.stage or {}
    report.note = (
        f"stopped at the time limit with {stage.get('staged', 0) + stage.get('reused', 0)} "
        f"HaloPSA answers staged for generation {stage.get('generation')}; the next run "
        f"continues it: {reason}"
    )


def _ended_by(report: SyncReport, error: str) -> None:
    # Once the generation is current (or held) an error cannot change what serves: a warning.
    if report.outcome in (Outcome.SUCCEEDED, Outcome.HELD):
        report.warnings.append(error)
    else:
        report.outcome = Outcome.FAILED
        report.error = error


async def _finish(
    store: Store, report: SyncReport, phases: Phases, clock: Callable[[], datetime]
) -> SyncReport:
    phases.total()
    report.ended_at = clock()
    await asyncio.to_thread(record_run, store, report)
    level = (
        logging.INFO
        if report.outcome in (Outcome.SUCCEEDED, Outcome.SKIPPED) and not report.warnings
        else logging.WARNING
    )
    log.log(level, report.log_line())
    return report
