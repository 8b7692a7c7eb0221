"""What a sync run records: its outcome and report, kept in this process when storage refuses it.

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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.core.guard import VerdictRecord
from shared.runtime.pending import unrecorded_runs
from shared.store.base import CHUNK_CHARS
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
    # Rows of unchanged clients and tenants' computers shared from earlier generations, not written.
    entities_shared: int = 0
    transactions: int = 0
    transactions_minimum: int = 0
    largest_entity: int = 0
    largest_property: int = 0
    guard: VerdictRecord | None = None  # the stored form of the guard's Verdict
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
            "entities_shared": self.entities_shared,
            "transactions": self.transactions,
            "guard": sorted(self.guard) if self.guard else None,
            "warnings": len(self.warnings),
            "assets": self.assets,
            "stage": {k: v for k, v in (self.stage or {}).items() if k != "note"} or None,
            "error": self.error,
        }
        return json.dumps(fields, default=str, sort_keys=True)


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
        unrecorded_runs.add(report)
        return False
    return True


def settle_unrecorded(store: Store) -> None:
    """Write the records of earlier runs here that storage refused, and free their leases.

    Raises the storage error if storage still fails (the records stay kept).
    """
    for report in unrecorded_runs.snapshot():
        # It finished, so its lease (if its release failed too) must not block anyone.
        store.release_lease(report.run_id)
        store.record_run(report.run_id, report.started_at, report.properties())
        unrecorded_runs.remove(report)
        log.info("recorded sync run %s late (storage had failed)", report.run_id)
