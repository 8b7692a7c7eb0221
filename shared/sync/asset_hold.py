"""The asset hold: a run whose creates exceed `ASSET_MAX_CREATES` waits for an admin's approval.

Kept in `SyncState/assets_held`; `POST /api/sync/approve` approves it and the next run then writes
up to the approved number of creates.
"""

from __future__ import annotations

from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from pydantic import BaseModel, ConfigDict

from shared.store.base import STATE_PK, decode_data, encode_data
from shared.store.repository import Store

HOLD_ROW = "assets_held"


class AssetHold(BaseModel):
    """A run whose creates exceeded `ASSET_MAX_CREATES`, waiting for (or given) approval."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    generation: str
    creates: int
    held_at: datetime
    approved: bool = False


def guard_creates(
    store: Store, *, run_id: str, generation: str, creates: int, at: datetime, max_creates: int
) -> AssetHold | None:
    """The hold that applies to a run's `creates`: None when under the cap (clearing a stale
    hold), the approved hold when it covers them, else a new hold (recorded)."""
    current = asset_hold(store)
    if creates <= max_creates:
        if current is not None:
            set_hold(store, None)
        return None
    if current is not None and current.approved and creates <= current.creates:
        return current
    hold = AssetHold(run_id=run_id, generation=generation, creates=creates, held_at=at)
    set_hold(store, hold)
    return hold


def asset_hold(store: Store) -> AssetHold | None:
    """The asset run waiting for approval (or approved and not yet applied), if any."""
    try:
        entity = store.table("SyncState").get_entity(STATE_PK, HOLD_ROW)
    except ResourceNotFoundError:
        return None
    return AssetHold.model_validate_json(decode_data(entity))


def set_hold(store: Store, hold: AssetHold | None) -> None:
    """Record (or with None, clear) the asset hold."""
    table = store.table("SyncState")
    if hold is None:
        try:
            table.delete_entity(STATE_PK, HOLD_ROW)
        except ResourceNotFoundError:
            pass
        return
    table.upsert_entity(
        {"PartitionKey": STATE_PK, "RowKey": HOLD_ROW, **encode_data(hold.model_dump_json())},
        mode=UpdateMode.REPLACE,
    )


def approve_asset_hold(store: Store, *, run_id: str | None = None) -> AssetHold | None:
    """Approve the held asset run (its creates go out on the next sync); None if none is held
    (or, given `run_id`, not that run's)."""
    hold = asset_hold(store)
    if hold is None or (run_id is not None and hold.run_id != run_id):
        return None
    approved = hold.model_copy(update={"approved": True})
    set_hold(store, approved)
    return approved
