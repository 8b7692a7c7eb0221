"""One sync run: read HaloPSA, validate, resolve every rule, write a new generation, swap the pointer.

A run that fails anywhere leaves the current generation serving. A run whose targets would drop more
than the allowed share of a rule's current targets (or all of them) is stored but held, not made
current: a HaloPSA permission change must never uninstall security software fleet-wide.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from shared.asset_sync import run_assets
from shared.catalog import build_catalog
from shared.generation import (
    ImmyState,
    Manifest,
    apply_rules,
    layout,
    read_computers,
    read_manifest,
    read_target_ids,
    read_tenants,
    rule_entry,
)
from shared.halo_client import HaloClient, HaloError, Listing
from shared.halo_models import Cause, Reject
from shared.immy_client import ImmyClient, ImmyError
from shared.immy_models import ImmyComputer, ImmyTenant
from shared.mapping import ExplicitMapping, map_clients
from shared.rules import Rule
from shared.settings import Settings, get_settings
from shared.store import Held, Pointer, Store, StoreError, get_store, new_generation
from shared.targets import Snapshot, resolve

log = logging.getLogger("halo_immy.sync")

# Longer than host.json's functionTimeout (30 minutes): a run the host has not killed still owns it.
# A 5,000-client sync at the default 50 requests a minute needs about 8 minutes.
LEASE_TTL = timedelta(minutes=35)
REJECT_SAMPLES = 20
RECORD_KINDS = ("clients", "sites", "contracts", "invoices", "items")


class Outcome(StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HELD = "held"
    SKIPPED = "skipped"


@dataclass(slots=True)
class SyncReport:
    """Everything a run did, as stored in `SyncRuns` and logged as one line."""

    run_id: str
    started_at: datetime
    outcome: Outcome = Outcome.FAILED
    generation: str | None = None
    ended_at: datetime | None = None
    phases: dict[str, float] = field(default_factory=dict)
    halo_requests: int = 0
    halo_retries: int = 0
    read: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    reject_samples: list[str] = field(default_factory=list)
    targets: dict[str, int] = field(default_factory=dict)
    entities_written: int = 0
    transactions: int = 0
    transactions_minimum: int = 0
    guard: dict[str, Any] | None = None
    immybot: dict[str, Any] | None = None
    assets: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None

    def properties(self) -> dict[str, Any]:
        """The report as Table Storage properties (nested values as JSON strings)."""
        data = asdict(self)
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                out[key] = json.dumps(value, default=str)[:30_000]
            elif isinstance(value, StrEnum):
                out[key] = str(value)
            else:
                out[key] = value
        return out

    def log_line(self) -> str:
        """One structured line: counts and ids only, no customer text."""
        fields = {
            "event": "sync_run",
            "run_id": self.run_id,
            "outcome": str(self.outcome),
            "generation": self.generation,
            "seconds": self.phases.get("total"),
            "halo_requests": self.halo_requests,
            "read": self.read,
            "rejected": self.rejected,
            "targets": self.targets,
            "entities": self.entities_written,
            "transactions": self.transactions,
            "assets": self.assets,
            "error": self.error,
        }
        return json.dumps(fields, default=str, sort_keys=True)


@dataclass(frozen=True, slots=True)
class SyncData:
    """What a run read from HaloPSA, validated."""

    snapshot: Snapshot
    rejects: list[Reject]
    read: dict[str, int]


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


async def read_halo(halo: HaloClient) -> SyncData:
    """Read every record type a sync needs, concurrently, and validate references between them."""
    clients, sites, contracts, invoices, items = await asyncio.gather(
        halo.clients(), halo.sites(), halo.contracts(), halo.recurring_invoices(), halo.items()
    )
    listings: dict[str, Listing[Any]] = {
        "clients": clients,
        "sites": sites,
        "contracts": contracts,
        "invoices": invoices,
        "items": items,
    }
    rejects = [r for listing in listings.values() for r in listing.rejects]
    known = {c.id for c in clients.records}
    rejected_clients = {r.record_id for r in clients.rejects}

    def linked(kind: str, records: list[Any]) -> list[Any]:
        # A record pointing at a client HaloPSA did not list, or listed but we rejected, cannot be
        # shown or targeted: it is counted under its own cause, never dropped without a trace.
        kept = []
        for record in records:
            if record.client_id in known:
                kept.append(record)
            elif str(record.client_id) in rejected_clients:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client {record.client_id} was rejected",
                        Cause.CLIENT_REJECTED,
                    )
                )
            else:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client_id {record.client_id} is unknown",
                        Cause.CLIENT_UNKNOWN,
                    )
                )
        return kept

    snapshot = Snapshot.build(
        clients.records,
        linked("sites", sites.records),
        linked("contracts", contracts.records),
        linked("invoices", invoices.records),
        items.records,
    )
    read = {kind: len(listing.records) + len(listing.rejects) for kind, listing in listings.items()}
    line_rejects = sum(r.kind == "invoice_lines" for r in invoices.rejects)
    # Line rejects sit in the invoices listing: count them as lines, not as invoices.
    read["invoices"] -= line_rejects
    read["invoice_lines"] = sum(len(i.lines) for i in invoices.records) + line_rejects
    return SyncData(snapshot, rejects, read)


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


def fingerprint(targets: Mapping[str, Iterable[int]]) -> str:
    """A digest of who is targeted by which rule: equal outcomes have equal fingerprints."""
    canonical = json.dumps({k: sorted(set(v)) for k, v in sorted(targets.items())})
    return hashlib.sha256(canonical.encode()).hexdigest()


def guard_verdict(
    current: Mapping[str, set[int]], new: Mapping[str, set[int]], max_drop: float
) -> dict[str, Any] | None:
    """Why the new targets must be held, per rule, or None when the change is acceptable."""
    held: dict[str, Any] = {}
    for key, before in current.items():
        if key not in new or not before:
            continue  # a deleted rule is an admin's explicit act, not a data accident
        dropped = len(before - new[key])
        share = dropped / len(before)
        if share > max_drop or not new[key]:
            held[key] = {
                "before": len(before),
                "after": len(new[key]),
                "dropped": dropped,
                "share": round(share, 4),
            }
    return held or None


async def run_sync(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    halo: HaloClient | None = None,
    immy: ImmyClient | None = None,
    now: Callable[[], datetime] | None = None,
    before_swap: Callable[[str], None] | None = None,
) -> SyncReport:
    """Run one sync end to end and record it. Never raises for HaloPSA or storage failures."""
    if store is None:
        store = get_store() if settings is None else Store.from_settings(settings)
    settings = settings or get_settings()
    clock = now or (lambda: datetime.now(UTC))
    started = clock()
    report = SyncReport(run_id=uuid.uuid4().hex[:12], started_at=started)
    phases = _Phases(report)
    owned_halo = halo is None
    if not await asyncio.to_thread(store.acquire_lease, report.run_id, now=started, ttl=LEASE_TTL):
        report.outcome = Outcome.SKIPPED
        report.note = "another sync run holds the lease"
        return await _finish(store, report, phases, clock)
    halo = halo or HaloClient.from_settings(settings)
    owned_immy = immy is None
    immy = immy or ImmyClient.from_settings(settings)
    try:
        await _run(settings, store, halo, immy, report, phases, clock, before_swap)
    except (HaloError, StoreError, ImmyError) as error:
        report.outcome = Outcome.FAILED
        report.error = str(error)
    except Exception as error:
        log.exception("sync run %s failed unexpectedly", report.run_id)
        report.outcome = Outcome.FAILED
        report.error = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        report.halo_requests = halo.stats.total_requests
        report.halo_retries = halo.stats.retries
        if owned_halo:
            await halo.aclose()
        if owned_immy and immy is not None:
            await immy.aclose()
    await asyncio.to_thread(store.release_lease, report.run_id)
    return await _finish(store, report, phases, clock)


async def _finish(
    store: Store, report: SyncReport, phases: _Phases, clock: Callable[[], datetime]
) -> SyncReport:
    phases.total()
    report.ended_at = clock()
    try:
        await asyncio.to_thread(
            store.record_run, report.run_id, report.started_at, report.properties()
        )
    except Exception as error:
        log.error("could not record sync run %s: %s", report.run_id, type(error).__name__)
    level = (
        logging.INFO if report.outcome in (Outcome.SUCCEEDED, Outcome.SKIPPED) else logging.WARNING
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
) -> None:
    mark = time.perf_counter()
    halo_read = read_halo(halo)
    if immy is None:
        data, immy_read = await halo_read, None
    else:
        data, immy_read = await asyncio.gather(
            halo_read, _read_immybot(immy), return_exceptions=False
        )
    mark = phases.mark("read", mark)
    snapshot, computers, immy_state = await asyncio.to_thread(
        _with_immybot, store, data.snapshot, immy_read
    )
    report.immybot = immy_state.model_dump()

    rules, rule_problems = await asyncio.to_thread(load_rules, store)
    synced_at = clock()
    today = synced_at.date()
    targets = {rule.key: resolve(snapshot, rule, today) for rule in rules}
    report.targets = {rule.software: len(targets[rule.key]) for rule in rules}
    mark = phases.mark("resolve", mark)

    generation = new_generation(synced_at)
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
    report.rejected = _count(rejects)
    report.reject_samples = [
        f"{r.kind} {r.record_id}: {r.reason}" for r in rejects[:REJECT_SAMPLES]
    ]
    report.reject_samples += rule_problems
    mark = phases.mark("validate", mark)

    report.generation = generation
    stats = await asyncio.to_thread(store.write_generation, generation, planned.partitions)
    report.entities_written, report.transactions = stats.entities, stats.transactions
    report.transactions_minimum = stats.minimum_transactions
    mark = phases.mark("write", mark)

    current = await asyncio.to_thread(store.current)
    new_sets = {key: {t.client_id for t in found} for key, found in targets.items()}
    verdict = None
    if current is not None:
        old_sets = await asyncio.to_thread(_current_target_sets, store, current, list(targets))
        verdict = guard_verdict(old_sets, new_sets, settings.sync_max_drop)
    digest = fingerprint(new_sets)
    if verdict is not None:
        held = await asyncio.to_thread(store.held)
        if settings.sync_confirm_by_repeat and held is not None and held.fingerprint == digest:
            report.note = f"confirmed: same outcome as held run {held.run_id}"
        else:
            report.outcome = Outcome.HELD
            report.guard = verdict
            await asyncio.to_thread(
                store.set_held,
                Held(generation, report.run_id, clock(), synced_at, json.dumps(verdict), digest),
            )
            await asyncio.to_thread(_collect_garbage, store)
            phases.mark("swap", mark)
            return
    if before_swap is not None:
        before_swap(generation)
    await asyncio.to_thread(
        store.swap, generation, run_id=report.run_id, synced_at=synced_at, expected=current
    )
    await asyncio.to_thread(store.set_held, None)
    await asyncio.to_thread(_collect_garbage, store)
    report.outcome = Outcome.SUCCEEDED
    # A rule edited while this run was reading was applied to the old generation; carry it over.
    await asyncio.to_thread(_catch_up_rules, store, generation, snapshot, manifest, today)
    mark = phases.mark("swap", mark)
    # Only now that the generation serves: asset population never runs on a held or failed one.
    assets = await run_assets(
        settings, store, halo, generation=generation, snapshot=snapshot,
        computers=None if immy_state.note else computers, run_id=report.run_id, now=clock,
    )  # fmt: skip
    report.assets = assets.record() if assets is not None else None
    phases.mark("assets", mark)


@dataclass(frozen=True, slots=True)
class _ImmyRead:
    tenants: list[ImmyTenant] | None
    computers: list[ImmyComputer]
    error: ImmyError | None


async def _read_immybot(immy: ImmyClient) -> _ImmyRead:
    try:
        tenants, computers = await asyncio.gather(immy.tenants(), immy.computers())
    except ImmyError as error:
        return _ImmyRead(None, [], error)
    return _ImmyRead(tenants, computers, None)


def _with_immybot(
    store: Store, snapshot: Snapshot, read: _ImmyRead | None
) -> tuple[Snapshot, list[ImmyComputer], ImmyState]:
    """The snapshot with ImmyBot's tenants and the client mapping, and ImmyBot's computers.

    If ImmyBot is down, its tenants and computers are carried over from the current generation,
    so an ImmyBot outage does not hold back HaloPSA's billing changes; with nothing to carry over
    the run fails (all targets unmapped would read as "deploy nowhere").
    """
    if read is None:
        return snapshot, [], ImmyState()
    tenants, computers, note = read.tenants, read.computers, None
    if tenants is None:
        pointer = store.current()
        previous = read_manifest(store, pointer.generation)[0] if pointer else None
        if pointer is None or previous is None or not previous.immybot.configured:
            raise read.error or ImmyError("ImmyBot could not be read")
        tenants = read_tenants(store, pointer.generation)
        computers = read_computers(store, pointer.generation)
        note = (
            f"ImmyBot unavailable ({read.error}); "
            f"tenants and computers from generation {pointer.generation}"
        )
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    matches = map_clients(snapshot.clients.values(), tenants, explicit)
    state = ImmyState(configured=True, tenants=len(tenants), computers=len(computers), note=note)
    return snapshot.with_immybot(tenants, matches), computers, state


def _catch_up_rules(
    store: Store, generation: str, snapshot: Snapshot, resolved: Manifest, today: date
) -> None:
    rules, _ = load_rules(store)
    changed = [r for r in rules if r.key not in resolved.rules or resolved.rules[r.key].rule != r]
    removed = [k for k in resolved.rules if k not in {r.key for r in rules}]
    if changed or removed:
        apply_rules(store, generation, snapshot, changed, today, removed=removed)


def approve_held(store: Store, *, run_id: str | None = None) -> Pointer:
    """Make the held generation current (an admin's decision); raises StoreError if none is held."""
    held = store.held()
    if held is None or (run_id is not None and held.run_id != run_id):
        raise StoreError("no held sync run to approve" + (f" with id {run_id}" if run_id else ""))
    pointer = store.swap(
        held.generation, run_id=held.run_id, synced_at=held.synced_at, expected=store.current()
    )
    store.set_held(None)
    _collect_garbage(store)
    return pointer


def _current_target_sets(store: Store, pointer: Pointer, keys: list[str]) -> dict[str, set[int]]:
    manifest, _ = read_manifest(store, pointer.generation)
    return {
        key: read_target_ids(store, pointer.generation, manifest.rules[key].partition)
        for key in keys
        if key in manifest.rules
    }


def _collect_garbage(store: Store) -> None:
    """Drop every generation but the current, the previous (rollback) and the held one."""
    pointer = store.current()
    held = store.held()
    keep = {
        g
        for g in (
            pointer and pointer.generation,
            pointer and pointer.previous,
            held and held.generation,
        )
        if g
    }
    for generation in store.generations():
        if generation not in keep:
            try:
                store.delete_generation(generation)
            except Exception as error:
                log.warning("could not drop generation %s: %s", generation, type(error).__name__)


def _count(rejects: Iterable[Reject]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject.kind] = counts.get(reject.kind, 0) + 1
    return counts


class RunSummary(BaseModel):
    """One recorded sync run, as the status endpoint shows it."""

    run_id: str
    outcome: str
    started_at: datetime
    ended_at: datetime | None = None
    generation: str | None = None
    seconds: float | None = None
    halo_requests: int = 0
    read: dict[str, int] = Field(default_factory=dict)
    rejected: dict[str, int] = Field(default_factory=dict)
    targets: dict[str, int] = Field(default_factory=dict)
    guard: dict[str, Any] | None = None
    immybot: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None


class CurrentGeneration(BaseModel):
    """The generation readers use."""

    generation: str
    previous: str | None
    synced_at: datetime
    age_seconds: float
    run_id: str


class HeldGeneration(BaseModel):
    """A generation the mass-change guard keeps waiting for approval."""

    generation: str
    run_id: str
    held_at: datetime
    reason: dict[str, Any]


class ImmyStatus(BaseModel):
    """Whether ImmyBot is configured, and what the current generation holds of it."""

    configured: bool
    tenants: int = 0
    computers: int = 0
    note: str | None = None


class SyncStatus(BaseModel):
    """`GET /api/sync/status`."""

    immybot: ImmyStatus
    current: CurrentGeneration | None
    held: HeldGeneration | None
    last_runs: list[RunSummary]


def sync_status(
    store: Store, now: datetime, *, immybot_configured: bool, runs: int = 10
) -> SyncStatus:
    """The current generation, its age, any held generation, the last runs, and ImmyBot's state."""
    pointer = store.current()
    immybot = ImmyStatus(
        configured=immybot_configured,
        note=None if immybot_configured else "ImmyBot is not configured: targets carry no tenants",
    )
    if pointer is not None and immybot_configured:
        state = read_manifest(store, pointer.generation)[0].immybot
        immybot = ImmyStatus(
            configured=True, tenants=state.tenants, computers=state.computers, note=state.note
        )
    held = store.held()
    current = None
    if pointer is not None:
        current = CurrentGeneration(
            generation=pointer.generation,
            previous=pointer.previous,
            synced_at=pointer.synced_at,
            age_seconds=round((now - pointer.synced_at).total_seconds(), 1),
            run_id=pointer.run_id,
        )
    return SyncStatus(
        immybot=immybot,
        current=current,
        held=HeldGeneration(
            generation=held.generation,
            run_id=held.run_id,
            held_at=held.held_at,
            reason=json.loads(held.reason),
        )
        if held
        else None,
        last_runs=[_summary(entity) for entity in store.recent_runs(runs)],
    )


def _summary(entity: Mapping[str, Any]) -> RunSummary:
    def parsed(key: str) -> Any:
        value = entity.get(key)
        return json.loads(value) if isinstance(value, str) else value

    phases = parsed("phases") or {}
    return RunSummary(
        run_id=entity["run_id"],
        outcome=entity.get("outcome", "unknown"),
        started_at=entity["started_at"],
        ended_at=entity.get("ended_at"),
        generation=entity.get("generation"),
        seconds=phases.get("total"),
        halo_requests=entity.get("halo_requests", 0),
        read=parsed("read") or {},
        rejected=parsed("rejected") or {},
        targets=parsed("targets") or {},
        guard=parsed("guard"),
        note=entity.get("note"),
        error=entity.get("error"),
    )
