"""The asset plan as stored with its generation, and read back for `GET /api/assets/plan`.

The plan lives in the generation's table (partition `assets`): a summary row (`AssetRunSummary`,
what the run planned and did) and one document per client with something to report, split into
parts when a client has thousands of computers. It lives and dies with the generation it was
computed against, like any other snapshot data.
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
    """`GET /api/assets/plan`: the last asset run's summary and its plan per client."""

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
    prefix = None if client_id is None else client_key(client_id) + "-"
    try:
        summary_doc, _ = store.read_document(generation, PARTITION, SUMMARY_ROW)
    except StoreError:
        return None
    entities = store.read_partition(generation, PARTITION, row_prefix=prefix)
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
        summary=AssetRunSummary.model_validate(summary_doc),
        clients=[ClientAssetPlan.model_validate(merged[k]) for k in sorted(merged)],
    )
