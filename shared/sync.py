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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared.asset_sync import run_assets
from shared.catalog import build_catalog
from shared.generation import (
    ImmyState,
    Manifest,
    apply_rules,
    layout,
    read_computers,
    read_manifest,
    read_matches,
    read_target_sets,
    read_tenants,
    rule_entry,
)
from shared.guard import (
    combined_verdict,
    confirmable,
    empty_verdict,
    fingerprint,
    guard_verdict,
    reject_verdict,
    tenants_verdict,
)
from shared.halo_client import HaloClient, HaloError, Listing, gather_or_cancel
from shared.halo_models import Cause, Reject
from shared.halo_report import ReadMode, read_by_report
from shared.immy_client import ImmyClient, ImmyError
from shared.immy_links import HaloLinks, read_halo_links
from shared.immy_models import ImmyComputer, ImmyTenant
from shared.immy_tags import apply_immy_tags
from shared.mapping import ExplicitMapping, links_of, map_clients
from shared.rules import Rule
from shared.settings import Settings, get_settings
from shared.store import Store, StoreError, get_store, new_generation
from shared.store_state import Held, LeaseInfo, Pointer
from shared.sync_runs import (
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
from shared.targets import Snapshot, Target, resolve

log = logging.getLogger("halo_immy.sync")

# Names callers import from here; they live in shared.guard and shared.sync_runs.
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

# The lease is short and renewed by a heartbeat, not sized to the longest run: a live run renews
# it every LEASE_RENEW for as long as the host lets it run (host.json functionTimeout, 30 minutes;
# a 5,000-client sync at the default 50 requests a minute needs about 8), while a killed run's
# lease is stale within LEASE_TTL, when the next run takes it over and records that run as
# `abandoned`. TTL over renewal interval tolerates a few failed renewals or a busy event loop.
LEASE_TTL = timedelta(minutes=5)
LEASE_RENEW = timedelta(minutes=1)
REJECT_SAMPLES = 20
RECORD_KINDS = ("clients", "sites", "contracts", "invoices", "items")


@dataclass(frozen=True, slots=True)
class SyncData:
    """What a run read from HaloPSA, validated."""

    snapshot: Snapshot
    rejects: list[Reject]
    read: dict[str, int]
    read_mode: str = "rest"


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


async def read_halo(halo: HaloClient, mode: ReadMode | str = ReadMode.REST) -> SyncData:
    """Read every record type a sync needs, concurrently, and validate references between them.

    `mode` reads through SQL reports or REST pages (`auto`: reports when HaloPSA runs them); both
    give the same records, so everything after the read is the same."""
    found = await read_by_report(halo, mode)
    if found is not None:
        clients, sites, contracts = found.clients, found.sites, found.contracts
        invoices, items = found.invoices, found.items
    else:
        # All or nothing: when one listing fails, the others stop sending requests.
        clients, sites, contracts, invoices, items = await gather_or_cancel(
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
    read_mode = ReadMode.REST if found is None else ReadMode.REPORT
    return SyncData(snapshot, rejects, read, str(read_mode))


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
    another run holds the lease. Storage down at the start fails the run; its record, like any
    that storage refused, is written by the next run in this process that reaches storage.
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
        report.error = f"storage unavailable, the sync lease could not be taken: {_brief(error)}"
        return await _finish(store, report, phases, clock)
    if not grant:
        report.outcome = Outcome.SKIPPED
        report.note = "another sync run holds the lease"
        return await _finish(store, report, phases, clock)
    if grant.replaced is not None:
        await _record_abandoned(store, grant.replaced, report)
    lease = _Lease(store, report.run_id, clock)
    heartbeat = asyncio.create_task(lease.keep())
    owned_halo, owned_immy = halo is None, immy is None
    try:
        halo = halo or HaloClient.from_settings(settings)
        immy = immy or ImmyClient.from_settings(settings)
        await _run(settings, store, halo, immy, report, phases, clock, before_swap, lease)
    except (HaloError, StoreError, ImmyError) as error:
        _ended_by(report, str(error)[:MAX_TEXT])
    except Exception as error:
        log.exception("sync run %s failed unexpectedly", report.run_id)
        _ended_by(report, _brief(error))
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
        report.warnings.append(f"the sync lease was not released: {_brief(error)}")
    return await _finish(store, report, phases, clock)


def _ended_by(report: SyncReport, error: str) -> None:
    # Once the generation is current (or held) an error cannot change what serves: a warning.
    if report.outcome in (Outcome.SUCCEEDED, Outcome.HELD):
        report.warnings.append(error)
    else:
        report.outcome = Outcome.FAILED
        report.error = error


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:300]}"


class _Lease:
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


async def _record_abandoned(store: Store, stale: LeaseInfo, report: SyncReport) -> None:
    """Record the run whose expired lease this run took over, unless it recorded itself."""
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
        report.warnings.append(f"could not record abandoned run {stale.owner}: {_brief(error)}")


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
    lease: _Lease,
) -> None:
    mark = time.perf_counter()
    halo_read = read_halo(halo, settings.halo_read_mode)
    if immy is None:
        data, immy_read = await halo_read, None
    else:
        data, immy_read = await asyncio.gather(
            halo_read, _read_immybot(immy, settings.immy_halo_link_id), return_exceptions=False
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
        _judge, store, settings, current, data.read, report.rejected, snapshot, targets
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
            await _step(report, "drop old generations", _collect_garbage, store)
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
    await _step(report, "drop old generations", _collect_garbage, store)
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
        log.warning("sync run %s: could not %s: %s", report.run_id, name, _brief(error))
        report.warnings.append(f"could not {name}: {_brief(error)}")


@dataclass(frozen=True, slots=True)
class _Judgement:
    verdict: dict[str, Any] | None
    digest: str


def _judge(
    store: Store,
    settings: Settings,
    current: Pointer | None,
    read: Mapping[str, int],
    rejected: Mapping[str, Mapping[str, int]],
    snapshot: Snapshot,
    targets: Mapping[str, Sequence[Target]],
) -> _Judgement:
    """The mass-change guard's verdict on a new generation against the current one."""
    new_ids = {key: {t.client_id for t in found} for key, found in targets.items()}
    new_mapped = {
        key: {t.client_id for t in found if t.immy_tenant_id is not None}
        for key, found in targets.items()
    }
    sets: dict[str, set[int]] = dict(new_ids)
    if snapshot.immybot:
        sets |= {f"mapped|{key}": ids for key, ids in new_mapped.items()}
    digest = fingerprint(sets)
    rejects = reject_verdict(read, rejected)
    if current is None:
        return _Judgement(combined_verdict(rejects=rejects), digest)
    manifest, _ = read_manifest(store, current.generation)
    old_ids: dict[str, set[int]] = {}
    old_mapped: dict[str, set[int]] = {}
    for key in targets:
        if key in manifest.rules:
            ids, mapped = read_target_sets(store, current.generation, manifest.rules[key].partition)
            old_ids[key], old_mapped[key] = ids, mapped
    mapped_targets = tenants = None
    if manifest.immybot.configured and snapshot.immybot:
        mapped_targets = guard_verdict(old_mapped, new_mapped, settings.sync_max_drop)
        before = {m.tenant_id for m in read_matches(store, current.generation).values()}
        after = {m.tenant_id for m in snapshot.matches.values()}
        tenants = tenants_verdict(
            {t for t in before if t is not None},
            {t for t in after if t is not None},
            settings.sync_max_drop,
        )
    verdict = combined_verdict(
        targets=guard_verdict(old_ids, new_ids, settings.sync_max_drop),
        mapped_targets=mapped_targets,
        mapped_tenants=tenants,
        rejects=rejects,
        empty=empty_verdict(manifest.read, read),
    )
    return _Judgement(verdict, digest)


@dataclass(frozen=True, slots=True)
class _ImmyRead:
    tenants: list[ImmyTenant] | None
    computers: list[ImmyComputer]
    error: ImmyError | None
    links: HaloLinks = field(default_factory=HaloLinks)


async def _read_immybot(immy: ImmyClient, link_id: int | None) -> _ImmyRead:
    try:
        tenants, computers, links = await asyncio.gather(
            immy.tenants(), immy.computers(), read_halo_links(immy, link_id)
        )
    except ImmyError as error:
        return _ImmyRead(None, [], error)
    return _ImmyRead(tenants, computers, None, links)


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
    tenants, computers, note, links = read.tenants, read.computers, None, read.links.links
    if tenants is None:
        pointer = store.current()
        previous = read_manifest(store, pointer.generation)[0] if pointer else None
        if pointer is None or previous is None or not previous.immybot.configured:
            raise read.error or ImmyError("ImmyBot could not be read")
        tenants = read_tenants(store, pointer.generation)
        computers = read_computers(store, pointer.generation)
        links = links_of(read_matches(store, pointer.generation).values())
        note = (
            f"ImmyBot unavailable ({read.error}); "
            f"tenants and computers from generation {pointer.generation}"
        )
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    matches = map_clients(snapshot.clients.values(), tenants, explicit, links)
    state = ImmyState(
        configured=True,
        tenants=len(tenants),
        computers=len(computers),
        note=note,
        halo_link=read.links.note,
    )
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


def count_rejects(rejects: Iterable[Reject]) -> dict[str, dict[str, int]]:
    """Rejects counted per record type, then per cause."""
    counts: dict[str, dict[str, int]] = {}
    for reject in rejects:
        per_kind = counts.setdefault(reject.kind, {})
        per_kind[reject.cause] = per_kind.get(reject.cause, 0) + 1
    return counts
