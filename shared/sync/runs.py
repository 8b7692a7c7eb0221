"""What a sync run records and what the status endpoint shows: outcomes, run reports, status.

Outcomes (docs/operations.md explains them to operators):
- `succeeded`: the run's generation became current (warnings may list clean-up that failed after).
- `failed`: the run ended before its generation became current; the previous one still serves.
- `held`: the generation is stored but the mass-change guard keeps it waiting for an admin.
- `skipped`: another run held the sync lease.
- `abandoned`: the run stopped without finishing (process killed, host timeout); a later run noticed
  its expired lease and recorded it. The pages it read are staged: the next run continues them.
- `resumable`: reading HaloPSA reached the run's time limit (SYNC_TIME_LIMIT_SECONDS), or a 429 asked
  to wait past it; the pages read are staged (shared.sync.stage) and the next run continues them.
  The previous generation still serves.

A run that cannot write its record (storage down) keeps it in this process, and the next run here
that reaches storage writes it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.store.base import CHUNK_CHARS
from shared.store.generations import read_manifest
from shared.store.repository import Store

log = logging.getLogger("halo_immy.sync")


class Outcome(StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HELD = "held"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"
    RESUMABLE = "resumable"


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
    read_mode: str | None = None
    # The report read's proof against a REST sample (shared.halo.proof), or why REST was read.
    read_proof: dict[str, Any] | None = None
    halo_lines_by_id: int = 0  # recurring invoices listed without lines, then read by id
    read: dict[str, int] = field(default_factory=dict)
    # Per record type (clients, sites, contracts, invoices, invoice_lines, items), per cause.
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    reject_samples: list[str] = field(default_factory=list)
    targets: dict[str, int] = field(default_factory=dict)
    entities_written: int = 0
    transactions: int = 0
    transactions_minimum: int = 0
    largest_entity: int = 0
    largest_property: int = 0
    guard: dict[str, Any] | None = None
    immybot: dict[str, Any] | None = None
    # What shared.sync.tags planned or did to ImmyBot's tags (only after the generation is current).
    immy_tags: dict[str, Any] | None = None
    assets: dict[str, Any] | None = None  # asset population's counts (shared.sync.assets)
    # Staged HaloPSA answers (shared.sync.stage): the generation, how many this run staged and
    # how many it reused from earlier runs instead of requesting them again.
    stage: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None
    # Problems after the generation became current (clean-up, rule catch-up, hooks): the run still
    # succeeded, since what serves is what it wrote.
    warnings: list[str] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        """The report as Table Storage properties (nested values as JSON strings).

        Every property stays valid JSON under the 64 KiB property limit, however many rules or
        rejects a run has: long values are shortened, never cut mid-document.
        """
        data = asdict(self)
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                out[key] = bounded_json(value)
            elif isinstance(value, StrEnum):
                out[key] = str(value)
            elif isinstance(value, str):
                out[key] = value[:MAX_TEXT]
            else:
                out[key] = value
        return out

    @property
    def rejected_total(self) -> int:
        """How many records were rejected, all types and causes together."""
        return sum(sum(causes.values()) for causes in self.rejected.values())

    def log_line(self) -> str:
        """One structured line: counts and ids only, no customer text."""
        fields = {
            "event": "sync_run",
            "run_id": self.run_id,
            "outcome": str(self.outcome),
            "generation": self.generation,
            "seconds": self.phases.get("total"),
            "halo_requests": self.halo_requests,
            "read_mode": self.read_mode,
            "read_findings": (self.read_proof or {}).get("findings"),
            "halo_lines_by_id": self.halo_lines_by_id,
            "read": self.read,
            "rejected": self.rejected,
            "targets": self.targets,
            "entities": self.entities_written,
            "transactions": self.transactions,
            "guard": sorted(self.guard) if self.guard else None,
            "warnings": len(self.warnings),
            "assets": self.assets,
            "stage": {k: v for k, v in (self.stage or {}).items() if k != "note"} or None,
            "error": self.error,
        }
        return json.dumps(fields, default=str, sort_keys=True)


class RunSummary(BaseModel):
    """One recorded sync run, as the status endpoint shows it."""

    run_id: str
    outcome: str
    started_at: datetime
    ended_at: datetime | None = None
    generation: str | None = None
    seconds: float | None = None
    halo_requests: int = 0
    halo_lines_by_id: int = Field(
        default=0, description="Recurring invoices listed without lines and read by id."
    )
    read_mode: str | None = Field(
        default=None, description="How HaloPSA was read: report (SQL reports) or rest."
    )
    read_proof: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A report read's proof against a REST sample: records compared per type, the "
            "findings (ids and both values), and why the run read through REST if it did."
        ),
    )
    read: dict[str, int] = Field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Rejected records per record type, per cause."
    )
    targets: dict[str, int] = Field(default_factory=dict)
    guard: dict[str, Any] | None = None
    immybot: dict[str, Any] | None = None
    immy_tags: dict[str, Any] | None = None
    assets: dict[str, Any] | None = Field(
        default=None, description="Asset population: mode, outcome, totals, written, requests."
    )
    stage: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Staged HaloPSA answers: generation, resumed, staged (written by this run), reused "
            "(staged by earlier runs, not requested again), age_seconds, note."
        ),
    )
    note: str | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)


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
            reason=_reason(held.reason),
        )
        if held
        else None,
        last_runs=[_summary(entity) for entity in store.recent_runs(runs)],
    )


def _summary(entity: Mapping[str, Any]) -> RunSummary:
    def parsed(key: str) -> Any:
        value = entity.get(key)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return None  # cut mid-JSON by an older version: show the run without it

    phases = parsed("phases") or {}
    return RunSummary(
        run_id=entity["run_id"],
        outcome=entity.get("outcome", "unknown"),
        started_at=entity["started_at"],
        ended_at=entity.get("ended_at"),
        generation=entity.get("generation"),
        seconds=phases.get("total"),
        halo_requests=entity.get("halo_requests", 0),
        halo_lines_by_id=entity.get("halo_lines_by_id", 0),
        read_mode=entity.get("read_mode"),
        read_proof=parsed("read_proof") if isinstance(parsed("read_proof"), dict) else None,
        read=_counts(parsed("read")),
        rejected=_rejected(parsed("rejected")),
        targets=_counts(parsed("targets")),
        guard=parsed("guard") if isinstance(parsed("guard"), dict) else None,
        immy_tags=parsed("immy_tags") if isinstance(parsed("immy_tags"), dict) else None,
        assets=parsed("assets") if isinstance(parsed("assets"), dict) else None,
        stage=parsed("stage") if isinstance(parsed("stage"), dict) else None,
        note=entity.get("note"),
        error=entity.get("error"),
        warnings=[str(w) for w in parsed("warnings") or [] if isinstance(w, str)],
    )


def _reason(text: str) -> dict[str, Any]:
    # Held entries written before reasons were bounded were cut at 2,000 characters.
    try:
        reason = json.loads(text)
    except ValueError:
        return {MORE: "the stored reason was cut short; see the run's guard"}
    return reason if isinstance(reason, dict) else {MORE: reason}


def _counts(value: Any) -> dict[str, int]:
    # A shortened property carries a "..." marker with a count; keep only the real counts.
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int)}


def _rejected(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict):
        return {}
    # Records written before rejects had causes hold a plain count per type.
    return {
        str(kind): _counts(causes) if isinstance(causes, dict) else {"invalid": int(causes)}
        for kind, causes in value.items()
        if isinstance(causes, dict | int)
    }


MAX_TEXT = 4_000
MORE = "..."


def bounded_json(value: Any, limit: int = CHUNK_CHARS) -> str:
    """`value` as JSON of at most `limit` characters, still valid JSON.

    A dict or list too long keeps as many leading entries as fit plus a `"..."` marker saying how
    many were left out; anything else too long becomes `{"...": "<n> characters left out"}`.
    """
    text = json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    if isinstance(value, dict | list):
        entries = list(value.items()) if isinstance(value, dict) else list(value)
        low, high = 0, len(entries)
        best = _shortened(value, entries, 0)
        while low <= high:  # the most entries that fit
            middle = (low + high) // 2
            candidate = _shortened(value, entries, middle)
            if len(candidate) <= limit:
                best, low = candidate, middle + 1
            else:
                high = middle - 1
        if len(best) <= limit:
            return best
    return json.dumps({MORE: f"{len(text)} characters left out"})


def _shortened(value: Any, entries: list[Any], keep: int) -> str:
    left_out = f"{len(entries) - keep} more left out"
    if isinstance(value, dict):
        return json.dumps({**dict(entries[:keep]), MORE: left_out}, default=str)
    return json.dumps([*entries[:keep], f"{MORE} {left_out}"], default=str)


# -- runs that could not be recorded ---------------------------------------------------------------

_unrecorded: list[SyncReport] = []
_unrecorded_lock = threading.Lock()


def record_run(store: Store, report: SyncReport) -> bool:
    """Write a run's record; if storage fails, keep it for the next run here. True if written."""
    try:
        settle_unrecorded(store)
        store.record_run(report.run_id, report.started_at, report.properties())
    except Exception as error:
        log.error(
            "could not record sync run %s (%s): kept for the next run",
            report.run_id,
            type(error).__name__,
        )
        with _unrecorded_lock:
            _unrecorded.append(report)
        return False
    return True


def settle_unrecorded(store: Store) -> None:
    """Write the records of earlier runs here that storage refused, and free their leases.

    Raises the storage error if storage still fails (the records stay kept).
    """
    with _unrecorded_lock:
        waiting = list(_unrecorded)
    for report in waiting:
        # It finished, so its lease (if its release failed too) must not block anyone.
        store.release_lease(report.run_id)
        store.record_run(report.run_id, report.started_at, report.properties())
        with _unrecorded_lock:
            _unrecorded.remove(report)
        log.info("recorded sync run %s late (storage had failed)", report.run_id)


def unrecorded_runs() -> list[str]:
    """Ids of runs in this process whose record is still waiting for storage."""
    with _unrecorded_lock:
        return [r.run_id for r in _unrecorded]
