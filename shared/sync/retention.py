"""Which generations a store keeps: an admin's approval of a held one, and dropping the rest.

Kept: the current generation, the previous one (rollback), the held one, the one whose pages are
staged for the next run to continue (shared.sync.stage), and every generation whose table holds
rows one of those shares (shared.store.sharing: an unchanged client's records stay where they
were first written). Everything else is dropped.
"""

from __future__ import annotations

import logging

from shared.store.base import StoreError
from shared.store.repository import Store
from shared.store.sharing import in_use
from shared.store.state import Pointer
from shared.sync.stage import staged

log = logging.getLogger("halo_immy.sync")


class NothingHeld(StoreError):
    """No held sync run to approve (or not the one named)."""


def approve_held(store: Store, *, run_id: str | None = None) -> Pointer:
    """Make the held generation current (an admin's decision); NothingHeld if none is held."""
    held = store.held()
    if held is None or (run_id is not None and held.run_id != run_id):
        raise NothingHeld("no held sync run to approve" + (f" with id {run_id}" if run_id else ""))
    pointer = store.swap(
        held.generation, run_id=held.run_id, synced_at=held.synced_at, expected=store.current()
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
