"""What a store keeps: an admin's approval of a held generation, dropping the other generations,
and the change log's days.

Kept: the current generation, the previous one (rollback), the held one, the one whose pages are
staged for the next run to continue (shared.sync.stage), and every generation whose table holds
rows one of those shares (shared.store.sharing: an unchanged client's records stay where they
were first written). Everything else is dropped. The
change log keeps CHANGES_KEEP_DAYS days; each sync that publishes drops older days.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shared.core.changes import Cause
from shared.store.base import StoreError
from shared.store.changes import prune_changes
from shared.store.repository import Store
from shared.store.sharing import in_use
from shared.store.state import Pointer
from shared.sync.changes import record_publish
from shared.sync.lease import brief
from shared.sync.stage import staged

log = logging.getLogger("halo_immy.sync")


class NothingHeld(StoreError):
    """No held sync run to approve (or not the one named)."""


def approve_held(
    store: Store, *, run_id: str | None = None, now: Callable[[], datetime] | None = None
) -> Pointer:
    """Make the held generation current (an admin's decision); NothingHeld if none is held.

    The approval is a publish: the change log records what it changed, caused by `approval` and
    the held run's id (a failure to record is logged; the generation serves either way).
    """
    held = store.held()
    if held is None or (run_id is not None and held.run_id != run_id):
        raise NothingHeld("no held sync run to approve" + (f" with id {run_id}" if run_id else ""))
    before = store.current()
    pointer = store.swap(
        held.generation, run_id=held.run_id, synced_at=held.synced_at, expected=before
    )
    at = (now or (lambda: datetime.now(UTC)))()
    try:
        record_publish(store, before, held.generation, Cause(kind="approval", id=held.run_id), at)
    except Exception as error:
        log.warning(
            "approval of run %s: the change log was not recorded: %s", held.run_id, brief(error)
        )
    store.set_held(None)
    collect_garbage(store)
    return pointer


def collect_garbage(store: Store) -> None:
    """Drop every generation but the current, the previous (rollback), the held one, the one
    whose pages are staged for the next run to continue, and those their rows are shared from."""
    pointer = store.current()
    held = store.held()
    stage = staged(store)
    keep = in_use(
        store,
        (
            g
            for g in (
                pointer and pointer.generation,
                pointer and pointer.previous,
                held and held.generation,
                stage and stage.generation,
            )
            if g
        ),
    )
    for generation in store.generations():
        if generation not in keep:
            try:
                store.delete_generation(generation)
            except Exception as error:
                log.warning("could not drop generation %s: %s", generation, type(error).__name__)


def prune_change_log(store: Store, keep_days: int, now: datetime) -> int:
    """Drop the change log's days older than `keep_days` before `now`; returns how many changes."""
    return prune_changes(store, (now - timedelta(days=keep_days)).date())
