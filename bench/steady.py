"""The steady state after a first sync (bench/sync.py --steady): the same data synced again, then
data with 1% of clients changed, each printed with the entities it wrote against the first sync's;
then retention and a rollback checked on what the store keeps.

A generation shares the stored rows of every client (and tenant's computers) that did not change
(shared.store.sharing), so these runs write the generation's small documents, its index and the
changed clients only.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Synced, use_sandboxes
from sandbox.halo_data import HaloDataSet, generate
from sandbox.processes import start_module, stop_process
from shared.settings import load_settings
from shared.store.generations import read_clients
from shared.store.sharing import in_use
from shared.sync.retention import collect_garbage
from shared.sync.run import run_sync
from shared.sync.runs import SyncReport

# Of the first sync's entities, what an unchanged sync and a 1%-changed one may write.
UNCHANGED_SHARE = 0.05
CHANGED_SHARE = 0.10


@dataclass(frozen=True)
class Steady:
    """The two later runs and what the store kept."""

    unchanged: SyncReport
    changed: SyncReport
    changed_clients: int
    kept: list[str]
    rollback_clients: int


def changed_copy(data: HaloDataSet, share: float) -> tuple[HaloDataSet, int]:
    """A copy of `data` with `share` of its clients renamed (their stored records change)."""
    every = max(1, round(1 / share))
    changed = data.copy()
    count = 0
    for position, client in enumerate(changed.clients):
        if position % every == 0:
            client["name"] = f"{client['name']} (renamed)"
            count += 1
    return changed, count


def steady_state(done: Synced, clients: int, seed: int, page_size: int) -> Steady:
    """Sync the same data again, then 1% changed (served by a second sandbox process)."""
    unchanged = asyncio.run(run_sync(done.settings, store=done.store))
    changed_data, count = changed_copy(generate(clients, seed=seed), 0.01)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "changed.json"
        changed_data.dump(path)
        proc, url = start_module("sandbox.halo", "--data", str(path))
    try:
        use_sandboxes(
            url, done.tables, done.immy_url, HALO_PAGE_SIZE=str(page_size), HALO_READ_MODE="rest"
        )
        changed = asyncio.run(run_sync(load_settings(), store=done.store))
    finally:
        stop_process(proc)
    collect_garbage(done.store)
    kept = done.store.generations()
    # Rollback: the previous generation serves again, read whole through the rows it shares.
    pointer = done.store.current()
    assert pointer is not None and pointer.previous is not None
    back = done.store.swap(
        pointer.previous, run_id="rollback", synced_at=pointer.synced_at, expected=pointer
    )
    rollback_clients = len(read_clients(done.store, back.generation))
    return Steady(unchanged, changed, count, kept, rollback_clients)


def print_steady(first: SyncReport, steady: Steady, clients: int, store_kept: set[str]) -> None:
    """The later runs' writes against the first's, and whether retention and rollback held."""
    base = max(1, first.entities_written)
    for name, report, bound in (
        ("unchanged", steady.unchanged, UNCHANGED_SHARE),
        (f"{steady.changed_clients} changed", steady.changed, CHANGED_SHARE),
    ):
        share = report.entities_written / base
        verdict = "under" if share < bound else "NOT under"
        print(
            f"{name + ' sync':<14}: {report.outcome}, {report.entities_written} entities written "
            f"({100 * share:.1f}% of the first's {base}, {verdict} {100 * bound:.0f}%), "
            f"{report.entities_shared} shared, write {report.phases.get('write', 0):.2f} s, "
            f"total {report.phases.get('total', 0):.2f} s"
        )
    missing = store_kept - set(steady.kept)
    print(
        f"retention     : {len(steady.kept)} generations kept, every home in use present: "
        f"{'yes' if not missing else 'NO, missing ' + ', '.join(sorted(missing))}"
    )
    print(
        f"rollback      : previous generation serves {steady.rollback_clients} of {clients} clients"
    )


def homes_in_use(done: Synced) -> set[str]:
    """The generations the kept ones need (themselves and every home they name)."""
    pointer, held = done.store.current(), done.store.held()
    kept = [g for g in (pointer and pointer.generation, pointer and pointer.previous) if g]
    return in_use(done.store, kept + ([held.generation] if held else []))
