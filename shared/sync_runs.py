"""What a sync run records and what the status endpoint shows: outcomes, run reports, status."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.generation import read_manifest
from shared.store import Store


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
