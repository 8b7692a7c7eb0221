"""`GET /api/assets/plan`: the last asset run's plan, for every client or one."""

from __future__ import annotations

from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.store.repository import Store
from shared.sync.assets import read_plan


def plan_client(client_id: str | None) -> int | None:
    """The `client_id` asked for (None: every client), or a 400."""
    raw = (client_id or "").strip()
    if raw and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
        raise ApiError(problem(400, "bad-query", "client_id must be a positive integer"))
    return int(raw) if raw else None


def asset_plan_reply(store: Store, client_id: int | None) -> Reply:
    """The plan of the current generation (of one client with `client_id`), or a 404."""
    pointer = store.current()
    view = read_plan(store, pointer.generation, client_id) if pointer else None
    if view is None:
        raise ApiError(
            problem(404, "no-asset-plan", "no asset plan yet: set ASSET_SYNC and let a sync run")
        )
    return json_reply(view)
