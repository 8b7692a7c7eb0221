"""One sync run: read HaloPSA, validate, resolve every rule, write a new generation, swap the pointer.

A run that fails anywhere leaves the current generation serving. A run whose targets would drop more
than the allowed share of a rule's current targets (or all of them) is stored but held, not made
current: a HaloPSA permission change must never uninstall security software fleet-wide.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from shared.core.catalog import build_catalog
from shared.core.guard import confirmable, fingerprint, guard_verdict
from shared.core.rules import Rule
from shared.core.targets import Snapshot, resolve
from shared.halo.client import HaloClient
from shared.halo.errors import HaloError, HaloOutOfTime
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.settings import Settings, get_settings
from shared.store.generations import Manifest, apply_rules, layout, rule_entry
from shared.store.repository import Store, StoreError, get_store
from shared.store.state import Held
from shared.sync.assets import run_assets
from shared.sync.immybot import read_immybot, with_immybot
from shared.sync.judge import judge
from shared.sync.lease import LEASE_RENEW, LEASE_TTL, SyncLease, brief, record_abandoned
from shared.sync.read import ReportUntrusted, SyncData, count_rejects, read_for_run, read_halo
from shared.sync.retention import approve_held, collect_garbage
from shared.sync.runs import (
    MAX_TEXT,
    CurrentGeneration,
    HeldGeneration,
    ImmyStatus,
    Outcome,
    RunSummary,
    SyncReport,
    SyncStatus,
    bounded_json,
    record_run,
    settle_unrecorded,
    sync_status,
)
from shared.sync.stage import close_stage, open_stage
from shared.sync.tags import apply_immy_tags

log = logging.getLogger("halo_immy.sync")

# Names callers import from here; they live in shared.core.guard, shared.sync.lease, shared.sync.read
# and shared.sync.runs.
__all__ = [
    "LEASE_RENEW",
    "LEASE_TTL",
    "CurrentGeneration",
    "HeldGeneration",
    "ImmyStatus",
    "Outcome",
    "RunSummary",
    "SyncData",
    "SyncReport",
    "SyncStatus",
    "after_current",
    "approve_held",
    "count_rejects",
    "fingerprint",
    "guard_verdict",
    "load_rules",
    "read_halo",
    "run_sync",
    "sync_status",
]

REJECT_SAMPLES = 20


class _Phases:
    def __init__(self, report: SyncReport) -> None:
        self._report = report
        self._start = time.perf_counter()

    def mark(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self._report.phases[name] = round(now - since, 3)
        return now

    def total(self) -> None:
        self._report.phases["total"] = round(time.perf_counter() - self._start, 3)


def load_rules(store: Store) -> tuple[list[Rule], list[str]]:
    """The stored rules that validate, and a message for each that does not."""
    rules, problems = [], []
    for document in store.rule_documents():
        try:
            rules.append(Rule.model_validate(document))
        except ValidationError as error:
            name = document.get("software", "?") if isinstance(document, dict) else "?"
            problems.append(f"rule {str(name)[:100]!r} is invalid: {error.error_count()} errors")
    return rules, problems


async def run_sync(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    halo: HaloClient | None = None,
    immy: ImmyClient | None = None,
    now: Callable[[], datetime] | None = None,
    before_swap: Callable[[str], None] | None = None,
) -> SyncReport:
    """Run one sync end to end and record it. Never raises for HaloPSA or storage failures.

    The outcome says what serves: `succeeded` once the run's generation is current (problems after
    that are warnings), `failed` if it ended before, `held` if the guard stopped it, `skipped` if
    another run holds the lease, `resumable` if reading HaloPSA reached SYNC_TIME_LIMIT_SECONDS
    (or a 429 asked to wait past it): its pages are staged and the next run continues them.
    Storage down at the start fails the run; its record, like any that storage refused, is
    written by the next run in this process that reaches storage.
    """
    if store is None:
        store = get_store() if settings is None else Store.from_settings(settings)
    settings = settings or get_settings()
    clock = now or (lambda: datetime.now(UTC))
    started = clock()
    report = SyncReport(run_id=uuid.uuid4().hex[:12], started_at=started)
    phases = _Phases(report)
    try:
        await asyncio.to_thread(settle_unrecorded, store)
        grant = await asyncio.to_thread(
            store.acquire_lease, report.run_id, now=started, ttl=LEASE_TTL, started_at=started
        )
    except Exception as error:
        report.outcome = Outcome.FAILED
        report.error = f"storage unavailable, the sync lease could not be taken: {brief(error)}"
        return await _finish(store, report, phases, clock)
    if not grant:
        report.outcome = Outcome.SKIPPED
        report.note = "another sync run holds the lease"
        return await _finish(store, report, phases, clock)
    if grant.replaced is not None:
        await record_abandoned(store, grant.replaced, report)
    lease = SyncLease(store, report.run_id, clock)
    heartbeat = asyncio.create_task(lease.keep())
    owned_halo, owned_immy = halo is None, immy is None
    try:
        halo = halo or HaloClient.from_settings(settings)
        immy = immy or ImmyClient.from_settings(settings)
        await _run(settings, store, halo, immy, report, phases, clock, before_swap, lease)
    except HaloOutOfTime as error:
        _out_of_time(report, str(error)[:MAX_TEXT])
    except (HaloError, StoreError, ImmyError, ReportUntrusted) as error:
        _ended_by(report, str(error)[:MAX_TEXT])
    except Exception as error:
        log.exception("sync run %s failed unexpectedly", report.run_id)
        _ended_by(report, brief(error))
    finally:
        heartbeat.cancel()
        if halo is not None:
            report.halo_requests = halo.stats.total_requests
            report.halo_retries = halo.stats.retries
            report.halo_lines_by_id = halo.stats.lines_fetched_by_id
            if owned_halo:
                await halo.aclose()
        if owned_immy and immy is not None:
            await immy.aclose()
    # Not in `finally`: a run cancelled or killed mid-way keeps the lease until it goes stale, and
    # the run that takes it over records this one as abandoned.
    try:
        await asyncio.to_thread(store.release_lease, report.run_id)
    except Exception as error:
        # The next run in this process frees it; elsewhere it expires within LEASE_TTL.
        report.warnings.append(f"the sync lease was not released: {brief(error)}")
    return await _finish(store, report, phases, clock)


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
    store: Store, report: SyncReport, phases: _Phases, clock: Callable[[], datetime]
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


async def _run(
    settings: Settings,
    store: Store,
    halo: HaloClient,
    immy: ImmyClient | None,
    report: SyncReport,
    phases: _Phases,
    clock: Callable[[], datetime],
    before_swap: Callable[[str], None] | None,
    lease: SyncLease,
) -> None:
    mark = time.perf_counter()
    # Continue the generation an earlier run staged pages for, or begin a new one.
    stage = await asyncio.to_thread(
        open_stage,
        store,
        page_size=halo.page_size,
        read_mode=str(settings.halo_read_mode),
        now=clock(),
    )
    budget = halo.budget
    halo.stage = stage
    if budget is not None:
        # Reading stops (resumable) rather than wait past the limit; the write has the rest.
        budget.stop_at(settings.sync_time_limit_seconds)
    try:
        halo_read = read_for_run(halo, store, settings.halo_read_mode, now=clock(), report=report)
        if immy is None:
            data, immy_read = await halo_read, None
        else:
            data, immy_read = await asyncio.gather(
                halo_read, read_immybot(immy, settings.immy_halo_link_id), return_exceptions=False
            )
    finally:
        halo.stage = None
        if budget is not None:
            budget.stop_at(None)
        try:
            await stage.flush()  # what was read is staged before the run goes on or stops
        finally:
            report.stage = stage.record(clock())
    mark = phases.mark("read", mark)
    snapshot, computers, immy_state = await asyncio.to_thread(
        with_immybot, store, data.snapshot, immy_read
    )
    report.immybot = immy_state.model_dump()

    rules, rule_problems = await asyncio.to_thread(load_rules, store)
    synced_at = clock()
    today = synced_at.date()
    targets = {rule.key: resolve(snapshot, rule, today) for rule in rules}
    report.targets = {rule.software: len(targets[rule.key]) for rule in rules}
    mark = phases.mark("resolve", mark)

    generation = stage.generation
    manifest = Manifest(
        generation=generation,
        synced_at=synced_at,
        today=today,
        read=data.read,
        rules={r.key: rule_entry(r, targets[r.key], today, snapshot) for r in rules},
        immybot=immy_state,
    )
    planned = layout(snapshot, targets, manifest, build_catalog(snapshot, today), computers)
    rejects = data.rejects + planned.too_large
    report.read = data.read
    report.read_mode = data.read_mode
    report.rejected = count_rejects(rejects)
    report.reject_samples = [
        f"{r.kind} {r.record_id}: {r.reason}" for r in rejects[:REJECT_SAMPLES]
    ]
    report.reject_samples += rule_problems
    mark = phases.mark("validate", mark)

    report.generation = generation
    stats = await asyncio.to_thread(store.write_generation, generation, planned.partitions)
    report.entities_written, report.transactions = stats.entities, stats.transactions
    report.transactions_minimum = stats.minimum_transactions
    report.largest_entity, report.largest_property = stats.largest_entity, stats.largest_property
    mark = phases.mark("write", mark)

    current = await asyncio.to_thread(store.current)
    outcome = await asyncio.to_thread(
        judge, store, settings, current, data.read, report.rejected, snapshot, targets
    )
    if outcome.verdict is not None:
        held = await asyncio.to_thread(store.held)
        if (
            settings.sync_confirm_by_repeat
            and confirmable(outcome.verdict)
            and held is not None
            and held.fingerprint == outcome.digest
        ):
            report.note = f"confirmed: same outcome as held run {held.run_id}"
        else:
            reason = bounded_json(outcome.verdict)
            await asyncio.to_thread(
                store.set_held,
                Held(generation, report.run_id, clock(), synced_at, reason, outcome.digest),
            )
            report.outcome = Outcome.HELD
            report.guard = outcome.verdict
            await _step(report, "drop staged pages", close_stage, store, generation)
            await _step(report, "drop old generations", collect_garbage, store)
            phases.mark("swap", mark)
            return
    if before_swap is not None:
        before_swap(generation)
    if lease.lost:
        raise StoreError("this run lost the sync lease to another run; not swapping")
    await asyncio.to_thread(
        store.swap, generation, run_id=report.run_id, synced_at=synced_at, expected=current
    )
    report.outcome = Outcome.SUCCEEDED  # the generation serves: nothing after this fails the run
    phases.mark("swap", mark)
    mark = time.perf_counter()
    await after_current(store, generation, snapshot, manifest, today, report)
    mark = phases.mark("after_current", mark)
    if immy is not None:  # only ever from a current generation: a held one never gets here
        report.immy_tags = await apply_immy_tags(settings, store, immy, generation, clock())
        phases.mark("immy_tags", mark)
    mark = time.perf_counter()
    # Only now that the generation serves: asset population never runs on a held or failed one.
    assets = await run_assets(
        settings, store, halo, generation=generation, snapshot=snapshot,
        computers=None if immy_state.note else computers, run_id=report.run_id, now=clock,
    )  # fmt: skip
    report.assets = assets.record() if assets is not None else None
    phases.mark("assets", mark)


async def after_current(
    store: Store,
    generation: str,
    snapshot: Snapshot,
    manifest: Manifest,
    today: date,
    report: SyncReport,
) -> None:
    """Everything a run does once its generation is current; each step's failure is a warning.

    The one place for follow-up work (clearing the held entry, dropping old generations, catching
    up rules edited during the run, and hooks such as ImmyBot tag reconciliation): none of it
    may turn a run whose generation serves into a failed one.
    """
    await _step(report, "clear the held generation", store.set_held, None)
    await _step(report, "drop staged pages", close_stage, store, generation)
    await _step(report, "drop old generations", collect_garbage, store)
    # A rule edited while this run was reading was applied to the old generation; carry it over.
    await _step(
        report,
        "catch up edited rules",
        _catch_up_rules,
        store,
        generation,
        snapshot,
        manifest,
        today,
    )


async def _step(report: SyncReport, name: str, func: Callable[..., Any], *args: Any) -> None:
    try:
        await asyncio.to_thread(func, *args)
    except Exception as error:
        log.warning("sync run %s: could not %s: %s", report.run_id, name, brief(error))
        report.warnings.append(f"could not {name}: {brief(error)}")


def _catch_up_rules(
    store: Store, generation: str, snapshot: Snapshot, resolved: Manifest, today: date
) -> None:
    rules, _ = load_rules(store)
    changed = [r for r in rules if r.key not in resolved.rules or resolved.rules[r.key].rule != r]
    removed = [k for k in resolved.rules if k not in {r.key for r in rules}]
    if changed or removed:
        apply_rules(store, generation, snapshot, changed, today, removed=removed)
