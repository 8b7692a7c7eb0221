"""The asset plan as stored with its generation, and read back for `GET /api/assets/plan`.

The plan lives in the generation's table (partition `assets`): a summary row (`AssetRunSummary`,
what the run planned and did) and one document per client with something to report, split into
parts when a client has thousands of computers. It lives and dies with the generation it was
computed against, like any other snapshot data. A generation serves before its plan is stored (the
asset run follows the swap; events and approvals publish generations without one), so readers
take the last plan another stored generation holds until then (`latest_plan`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.core.asset_plan import AssetCounts, ClientAssetPlan
from shared.store.base import StoreError, client_key, decode_data, encode_data
from shared.store.repository import Store
from shared.sync.asset_hold import AssetHold

PARTITION = "assets"
SUMMARY_ROW = "summary"
# Items per stored document part: a client with thousands of computers spills into parts.
_PART_ITEMS = 1_000


class AssetRunSummary(BaseModel):
    """What one asset run planned and did (the plan's summary row, and the run record's part)."""

    model_config = ConfigDict(frozen=True)

    mode: str
    outcome: str = Field(description="planned, applied, partial, held, failed or skipped")
    run_id: str
    generation: str
    computed_at: datetime
    totals: AssetCounts = Field(default_factory=AssetCounts)
    written: dict[str, int] = Field(default_factory=dict)
    reads: int = 0
    writes: int = 0
    writes_minimum: int = 0
    max_creates: int = 0
    held: AssetHold | None = None
    error: str | None = None
    note: str | None = None

    def record(self) -> dict[str, Any]:
        """The counts a sync run record and its log line carry."""
        return self.model_dump(
            mode="json",
            include={"mode", "outcome", "totals", "written", "reads", "writes", "error", "note"},
            exclude_none=True,
        )


class AssetPlanView(BaseModel):
    """An asset plan as stored: the generation it is stored with, its summary, each client's."""

    generation: str
    summary: AssetRunSummary
    clients: list[ClientAssetPlan]


def store_plan(
    store: Store, generation: str, summary: AssetRunSummary, plans: Sequence[ClientAssetPlan]
) -> None:
    """Store a run's summary and each eventful client's plan with `generation`, replacing what
    an earlier run against it stored."""
    summary_row = {"RowKey": SUMMARY_ROW, **encode_data(summary.model_dump_json())}
    rows: list[dict[str, Any]] = []
    for plan in plans:
        if not plan.eventful:
            continue
        for part, piece in enumerate(_parts(plan)):
            rows.append(
                {"RowKey": f"{client_key(plan.client_id)}-{part:03d}", **encode_data(piece)}
            )
    # A rerun against the same generation replaces the summary; drop the old client rows first.
    store.delete_partition(generation, PARTITION)
    if rows:
        store.write_generation(generation, {PARTITION: rows})
    # The summary last: the clients' rows go in concurrent transactions, and a reader takes a
    # generation with a summary for one whose plan is whole.
    store.write_generation(generation, {PARTITION: [summary_row]})


def _parts(plan: ClientAssetPlan) -> list[str]:
    lists = ("creates", "updates", "links", "ambiguous", "gone", "unresolved")
    data = plan.model_dump(mode="json")
    items = [(name, item) for name in lists for item in data[name]]
    head = {k: v for k, v in data.items() if k not in lists}
    parts = []
    for start in range(0, max(1, len(items)), _PART_ITEMS):
        piece: dict[str, Any] = {**head, **{name: [] for name in lists}}
        for name, item in items[start : start + _PART_ITEMS]:
            piece[name].append(item)
        parts.append(json.dumps(piece, separators=(",", ":")))
    return parts


def read_plan(store: Store, generation: str, client_id: int | None = None) -> AssetPlanView | None:
    """The asset plan stored with a generation (one client's, if asked), or None if there is none."""
    summary = _read_summary(store, generation)
    return None if summary is None else _plan_of(store, generation, summary, client_id)


def _plan_of(
    store: Store, generation: str, summary: AssetRunSummary, client_id: int | None
) -> AssetPlanView | None:
    """The client rows stored with a generation whose `summary` was read, as a plan."""
    prefix = None if client_id is None else client_key(client_id) + "-"
    try:
        entities = store.read_partition(generation, PARTITION, row_prefix=prefix)
    except StoreError:  # retention dropped the generation since its summary was read
        return None
    merged: dict[int, dict[str, Any]] = {}
    for entity in entities:
        if entity["RowKey"] == SUMMARY_ROW:
            continue
        piece = json.loads(decode_data(entity))
        into = merged.get(piece["client_id"])
        if into is None:
            merged[piece["client_id"]] = piece
            continue
        for name in ("creates", "updates", "links", "ambiguous", "gone", "unresolved"):
            into[name] = into[name] + piece[name]
    return AssetPlanView(
        generation=generation,
        summary=summary,
        clients=[ClientAssetPlan.model_validate(merged[k]) for k in sorted(merged)],
    )


def latest_plan(store: Store, current: str, client_id: int | None = None) -> AssetPlanView | None:
    """The plan of the `current` generation, else the last one computed among the other stored
    generations (the current one's is not made yet), or None if no stored generation has one."""
    view = read_plan(store, current, client_id)
    if view is not None:
        return view
    # Only asset runs store plans, and only on a generation while it serves: the plan computed
    # last is the last run's, whichever generation retention still keeps it with (usually the
    # previous one; after HaloPSA events published a few, an older one).
    summaries = [
        (generation, summary)
        for generation in store.generations()
        if generation != current and (summary := _read_summary(store, generation)) is not None
    ]
    summaries.sort(key=lambda found: (found[1].computed_at, found[0]), reverse=True)
    for generation, summary in summaries:
        view = _plan_of(store, generation, summary, client_id)
        if view is not None:
            return view
    return None


def _read_summary(store: Store, generation: str) -> AssetRunSummary | None:
    try:
        document, _ = store.read_document(generation, PARTITION, SUMMARY_ROW)
    except StoreError:  # no plan stored with it (or no such generation)
        return None
    return AssetRunSummary.model_validate(document)
