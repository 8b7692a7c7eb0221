"""`POST /api/sync/approve`: an admin's approval of what a sync held back."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply, problem_reply
from shared.api.rules import stored_rules
from shared.core.rules import closest, normalise
from shared.store.repository import Store
from shared.sync.asset_hold import approve_asset_hold
from shared.sync.retention import NothingHeld, approve_held
from shared.sync.status import SyncStatus
from shared.sync.tag_store import approve_tag_removal


def approve(store: Store, params: Mapping[str, str], status: Callable[[], SyncStatus]) -> Reply:
    """`?tag=SOFTWARE`: approve that rule's held ImmyBot tag removal (the next run makes it).
    Else make the held generation current and let the next sync write held asset creates."""
    if "tag" in params:
        # Present but empty is a mistake, never "approve everything held".
        return _approve_tag(store, lookup_value("tag", params["tag"]))
    run_id = params.get("run_id") or None
    # Asset creates over ASSET_MAX_CREATES wait on the same approval (applied next run).
    assets = approve_asset_hold(store, run_id=run_id)
    try:
        approve_held(store, run_id=run_id)
    except NothingHeld as error:
        if assets is None:
            return problem_reply(problem(409, "nothing-held", str(error)))
    return json_reply(status())


def _approve_tag(store: Store, software: str) -> Reply:
    """A rule's held tag removal approved; 404 when no rule has that tag, 409 when it holds
    nothing."""
    rules = stored_rules(store)
    if normalise(software) not in rules:
        known = sorted(r.software for r in rules.values())
        raise ApiError(
            problem(
                404,
                "unknown-tag",
                f"no rule has the tag of {software!r}: nothing to approve",
                known=known,
                closest=closest(software, known),
            )
        )
    try:
        return json_reply(approve_tag_removal(store, software))
    except NothingHeld as error:
        return problem_reply(problem(409, "nothing-held", str(error)))
