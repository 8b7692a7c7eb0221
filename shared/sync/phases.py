"""The phases of one sync run: read, resolve, validate, write, hold or swap, then follow-up.

Each phase records what it did in the run's report; a phase that raises ends the run (shared.sync.run
tells the outcome), except the follow-up steps once the generation serves: their failures are warnings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from shared.core.catalog import build_catalog
from shared.core.changes import Cause
from shared.core.generation import ImmyState, Manifest, rule_entry
from shared.core.guard import confirmable
from shared.core.installed import StoredComputer, search_plan
from shared.core.rules import Rule
from shared.core.targets import Snapshot, Target, resolve
from shared.halo.client import HaloClient
from shared.immybot.client import ImmyClient
from shared.records.parsing import gc_paused
from shared.settings import Settings
from shared.store.generations import Layout, layout
from shared.store.repository import Store
from shared.store.sharing import share_unchanged
from shared.store.state import Held, Pointer
from shared.sync.after_current import after_current, load_rules, step
from shared.sync.assets import run_assets
from shared.sync.changes import published, record_publish
from shared.sync.immybot import ImmyRead, read_immybot, with_immybot
from shared.sync.judge import judge
from shared.sync.lease import WriterLease
from shared.sync.read import SyncData, count_rejects, read_for_run
from shared.sync.retention import collect_garbage, prune_change_log
from shared.sync.runs import Outcome, SyncReport, bounded_json
from shared.sync.stage import RunStage, close_stage, open_stage
from shared.sync.tags import apply_immy_tags

log = logging.getLogger("halo_immy.sync")

REJECT_SAMPLES = 20


class Phases:
    """How long each phase of a run took, in the run's report."""

    def __init__(self, report: SyncReport) -> None:
        self._report = report
        self._start = time.perf_counter()

    def mark(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self._report.phases[name] = round(now - since, 3)
        return now

    def total(self) -> None:
        self._report.phases["total"] = round(time.perf_counter() - self._start, 3)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every phase of one run works with."""

    settings: Settings
    store: Store
    report: SyncReport
    phases: Phases
    clock: Callable[[], datetime]
    before_swap: Callable[[str], None] | None
    lease: WriterLease


@dataclass(frozen=True, slots=True)
class Clients:
    """The vendor clients a run reads (and writes ImmyBot tags and HaloPSA assets) through."""

    halo: HaloClient
    immy: ImmyClient | None


@dataclass(frozen=True, slots=True)
class _Resolved:
    """Every rule resolved against the snapshot, before the generation is laid out."""

    snapshot: Snapshot
    computers: list[StoredComputer]
    immy_state: ImmyState
    rules: list[Rule]
    targets: dict[str, list[Target]]
    rule_problems: list[str]
    synced_at: datetime
    today: date


@dataclass(frozen=True, slots=True)
class _LaidOut:
    """A generation resolved and laid out, ready to write."""

    generation: str
    snapshot: Snapshot
    computers: list[StoredComputer]
    immy_state: ImmyState
    targets: dict[str, list[Target]]
    manifest: Manifest
    planned: Layout
    rule_problems: list[str]
    synced_at: datetime
    today: date


async def run_phases(run: RunContext, clients: Clients) -> None:
    """Read, resolve, validate, write, then hold or swap, then what follows a current generation."""
    mark = time.perf_counter()
    stage, data, immy_read = await _read(run, clients)
    mark = run.phases.mark("read", mark)
    part = await _resolve(run, data, immy_read)
    mark = run.phases.mark("resolve", mark)
    resolved = _laid_out(stage.generation, data, part)
    _record_rejects(run.report, data, resolved)
    mark = run.phases.mark("validate", mark)
    # Read before the write: the new generation shares what is unchanged since this one, and
    # becomes current only if the pointer has not moved since (the swap is conditioned on it).
    current = await asyncio.to_thread(run.store.current)
    await _write(run, resolved, current)
    mark = run.phases.mark("write", mark)
    if await _held(run, resolved, data, current):
        run.phases.mark("swap", mark)
        return
    await _swap(run, resolved, current)
    run.phases.mark("swap", mark)
    await _after_swap(run, clients, resolved)


async def _read(run: RunContext, clients: Clients) -> tuple[RunStage, SyncData, ImmyRead | None]:
    """HaloPSA (through the stage) and ImmyBot read side by side; what was read is staged."""
    settings, clock = run.settings, run.clock
    # Continue the generation an earlier run staged pages for, or begin a new one.
    stage = await asyncio.to_thread(
        open_stage,
        run.store,
        page_size=clients.halo.page_size,
        read_mode=str(settings.halo_read_mode),
        now=clock(),
    )
    budget = clients.halo.budget
    if budget is not None:
        # Reading stops (resumable) rather than wait past the limit; the write has the rest.
        budget.stop_at(settings.sync_time_limit_seconds)
    try:
        halo_read = read_for_run(
            clients.halo.staged(stage),
            run.store,
            settings.halo_read_mode,
            now=clock(),
            report=run.report,
        )
        if clients.immy is None:
            data, immy_read = await halo_read, None
        else:
            data, immy_read = await asyncio.gather(
                halo_read, _read_immybot(run, clients.immy), return_exceptions=False
            )
    finally:
        if budget is not None:
            budget.stop_at(None)
        try:
            await stage.flush()  # what was read is staged before the run goes on or stops
        finally:
            run.report.stage = stage.record(clock())
    return stage, data, immy_read


async def _read_immybot(run: RunContext, immy: ImmyClient) -> ImmyRead:
    """ImmyBot's part of the read. The rules' detect patterns say what to search its inventory
    for (read here, beside HaloPSA's first pages); a rule edited after this read says installed
    is unknown until the next run."""
    rules, _ = await asyncio.to_thread(load_rules, run.store)
    return await read_immybot(immy, run.settings.immy_halo_link_id, search_plan(rules))


async def _resolve(run: RunContext, data: SyncData, immy_read: ImmyRead | None) -> _Resolved:
    """Every rule resolved against the snapshot (with ImmyBot's part); not yet laid out."""
    snapshot, computers, immy_state = await asyncio.to_thread(
        with_immybot, run.store, data.snapshot, immy_read
    )
    run.report.immybot = immy_state.model_dump()
    rules, rule_problems = await asyncio.to_thread(load_rules, run.store)
    synced_at = run.clock()
    today = synced_at.date()
    with gc_paused():
        targets = {rule.key: resolve(snapshot, rule, today) for rule in rules}
    run.report.targets = {rule.software: len(targets[rule.key]) for rule in rules}
    return _Resolved(
        snapshot, computers, immy_state, rules, targets, rule_problems, synced_at, today
    )


def _laid_out(generation: str, data: SyncData, part: _Resolved) -> _LaidOut:
    """The resolved generation's manifest and table layout, ready to write (the validate phase,
    as the run record's phases have always counted it)."""
    manifest = Manifest(
        generation=generation,
        synced_at=part.synced_at,
        today=part.today,
        read=data.read,
        rules={
            r.key: rule_entry(r, part.targets[r.key], part.today, part.snapshot) for r in part.rules
        },
        immybot=part.immy_state,
    )
    with gc_paused():
        catalog = build_catalog(part.snapshot, part.today)
        planned = layout(part.snapshot, part.targets, manifest, catalog, part.computers)
    return _LaidOut(
        generation,
        part.snapshot,
        part.computers,
        part.immy_state,
        part.targets,
        manifest,
        planned,
        part.rule_problems,
        part.synced_at,
        part.today,
    )


def _record_rejects(report: SyncReport, data: SyncData, resolved: _LaidOut) -> None:
    rejects = data.rejects + resolved.planned.too_large
    report.read = data.read
    report.read_mode = data.read_mode
    report.rejected = count_rejects(rejects)
    report.reject_samples = [
        f"{r.kind} {r.record_id}: {r.reason}" for r in rejects[:REJECT_SAMPLES]
    ]
    report.reject_samples += resolved.rule_problems


async def _write(run: RunContext, resolved: _LaidOut, current: Pointer | None) -> None:
    """Write the generation: every row but those of clients (and tenants' computers) unchanged
    since the current generation, which it shares (shared.store.sharing)."""
    report = run.report
    report.generation = resolved.generation
    # A run that lost the lease may share its generation with the run that took over (that run
    # continues the staged pages): only the holder writes the table.
    await run.lease.confirm()
    previous = current.generation if current is not None else None
    planned = await asyncio.to_thread(
        share_unchanged, run.store, resolved.generation, resolved.planned.partitions, previous
    )
    stats = await asyncio.to_thread(
        run.store.write_generation, resolved.generation, planned.partitions
    )
    report.entities_written, report.transactions = stats.entities, stats.transactions
    report.entities_shared = planned.shared_rows
    report.transactions_minimum = stats.minimum_transactions
    report.largest_entity, report.largest_property = stats.largest_entity, stats.largest_property


async def _held(
    run: RunContext, resolved: _LaidOut, data: SyncData, current: Pointer | None
) -> bool:
    """Whether the guard holds the new generation (stored as held, the stage dropped)."""
    settings, store, report = run.settings, run.store, run.report
    outcome = await asyncio.to_thread(
        judge,
        store,
        settings,
        current,
        data.read,
        report.rejected,
        resolved.snapshot,
        resolved.targets,
    )
    if outcome.verdict is None:
        return False
    held = await asyncio.to_thread(store.held)
    if (
        settings.sync_confirm_by_repeat
        and confirmable(outcome.verdict.parts())
        and held is not None
        and held.fingerprint == outcome.digest
    ):
        report.note = f"confirmed: same outcome as held run {held.run_id}"
        return False
    generation = resolved.generation
    reason = bounded_json(outcome.verdict.record())
    entry = Held(generation, report.run_id, run.clock(), resolved.synced_at, reason, outcome.digest)
    await run.lease.confirm()  # a held generation is published for approval: the holder's alone
    await asyncio.to_thread(store.set_held, entry)
    report.outcome = Outcome.HELD
    report.guard = outcome.verdict.record()
    await step(report, "drop staged pages", close_stage, store, generation)
    await step(report, "drop old generations", collect_garbage, store)
    return True


async def _swap(run: RunContext, resolved: _LaidOut, current: Pointer | None) -> None:
    """Make the new generation current, unless this run lost the lease."""
    if run.before_swap is not None:
        run.before_swap(resolved.generation)
    # Renewed just now, so no other writer can hold the lease while the pointer moves.
    await run.lease.confirm()
    await asyncio.to_thread(
        run.store.swap,
        resolved.generation,
        run_id=run.report.run_id,
        synced_at=resolved.synced_at,
        expected=current,
    )
    run.report.outcome = Outcome.SUCCEEDED  # the generation serves: nothing after this fails it
    # The change log: what this publish changed, per rule, and why (a failure is a warning).
    after = published(resolved.manifest, resolved.targets)
    log_args = (current, resolved.generation, Cause(kind="sync", id=run.report.run_id), run.clock())
    await step(run.report, "record the change log", record_publish, run.store, *log_args, after)


async def _after_swap(run: RunContext, clients: Clients, resolved: _LaidOut) -> None:
    """Follow-up work, ImmyBot tags and asset population once the generation serves.

    Each writes on behalf of the writer that holds the lease: a run that lost it leaves the rest
    to the writer that has it (the generation serves either way, so these are warnings).
    """
    report, generation = run.report, resolved.generation
    mark = time.perf_counter()
    if not await _still_writer(run, "the follow-up steps"):
        return
    await after_current(
        run.store, generation, resolved.snapshot, resolved.manifest, resolved.today, report
    )
    keep_days = run.settings.changes_keep_days
    await step(report, "prune the change log", prune_change_log, run.store, keep_days, run.clock())
    mark = run.phases.mark("after_current", mark)
    if not await _still_writer(run, "asset population and ImmyBot tags"):
        return
    # Only now that the generation serves: asset population never runs on a held or failed one.
    # It goes before the tags: its computer-to-site links are what site-scoped rules tag by.
    computers = None if resolved.immy_state.note else resolved.computers
    assets = await run_assets(
        run.settings, run.store, clients.halo, generation=generation, snapshot=resolved.snapshot,
        computers=computers, run_id=report.run_id, now=run.clock,
    )  # fmt: skip
    report.assets = assets.record() if assets is not None else None
    mark = run.phases.mark("assets", mark)
    if not await _still_writer(run, "ImmyBot tags"):
        return
    if clients.immy is not None:  # only ever from a current generation: a held one never gets here
        report.immy_tags = await apply_immy_tags(
            run.settings, run.store, clients.immy, generation, run.clock(), resolved.computers
        )
        run.phases.mark("immy_tags", mark)


async def _still_writer(run: RunContext, steps: str) -> bool:
    """Whether this run still holds the lease; if not, a warning that `steps` were left."""
    if await run.lease.still_held():
        return True
    run.report.warnings.append(
        f"{steps} left to the next writer: this run lost the lease ({run.lease.lost})"
    )
    return False
