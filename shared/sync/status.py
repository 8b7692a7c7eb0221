"""What `GET /api/sync/status` shows: the current and held generations, ImmyBot, the last runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.store.event_state import RECEIVER, REFRESH, pending_keys, read_stats
from shared.store.generations import read_manifest
from shared.store.repository import Store
from shared.sync.runs import MORE

# Pending keys counted for the status at most (a refresh drains them in turns).
PENDING_SHOWN = 1000


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


class EventsStatus(BaseModel):
    """HaloPSA's webhook events (docs/halopsa-webhooks.md): what the receiver took in, what the
    refreshes did, and what went to the poison queue."""

    received: dict[str, int] = Field(
        default_factory=dict,
        description="Deliveries, events per kind (client, contract, invoice, asset, ticket, "
        "unknown), ignored, unusable, and queue messages, since the first event.",
    )
    unknown_event_names: list[str] = Field(
        default_factory=list, description="Names of events of kinds the app does not know."
    )
    last_delivery_at: str | None = None
    refreshes: dict[str, int] = Field(
        default_factory=dict,
        description="Refreshes by outcome (published, unchanged, held, skipped), coalesced "
        "messages (already answered by a later read), deferred ones (left pending for the next "
        "sync: refreshes had spent, since the last sync, the HaloPSA requests of a full sync) and "
        "poison messages.",
    )
    pending: int = Field(default=0, description="Clients waiting for a refresh.")
    last_refreshes: list[dict[str, Any]] = Field(default_factory=list)
    poison: int = Field(default=0, description="Messages given up on (the poison queue).")
    last_poison: list[dict[str, Any]] = Field(
        default_factory=list, description="The last ones: when, which key, why, attempts."
    )


class SyncStatus(BaseModel):
    """`GET /api/sync/status`."""

    immybot: ImmyStatus
    current: CurrentGeneration | None
    held: HeldGeneration | None
    last_runs: list[RunSummary]
    events: EventsStatus | None = Field(
        default=None, description="HaloPSA's webhook events; null before the first one."
    )


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
        events=events_status(store),
    )


def events_status(store: Store) -> EventsStatus | None:
    """What HaloPSA's events did, or None before the first one."""
    received, refreshed = read_stats(store, RECEIVER), read_stats(store, REFRESH)
    if received is None and refreshed is None:
        return None
    received, refreshed = received or {}, refreshed or {}
    counts = _counts(refreshed.get("counts"))
    return EventsStatus(
        received=_counts(received.get("counts")),
        unknown_event_names=[str(n) for n in received.get("unknown_names", [])],
        last_delivery_at=received.get("last_at"),
        refreshes=counts,
        pending=len(pending_keys(store, PENDING_SHOWN)),
        last_refreshes=[r for r in refreshed.get("last", []) if isinstance(r, dict)],
        poison=counts.get("poison", 0),
        last_poison=[r for r in refreshed.get("poison", []) if isinstance(r, dict)],
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
