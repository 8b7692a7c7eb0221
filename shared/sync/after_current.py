"""What a run does once its generation is current: clear the held entry, drop staged pages and old
generations, catch up rules edited during the run. Each step's failure is a warning on a run
whose generation serves, never a failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import ValidationError

from shared.core.generation import Manifest
from shared.core.rules import Rule
from shared.core.targets import Snapshot
from shared.store.generations import apply_rules
from shared.store.repository import Store
from shared.sync.lease import brief
from shared.sync.retention import collect_garbage
from shared.sync.runs import SyncReport
from shared.sync.stage import close_stage

log = logging.getLogger("halo_immy.sync")


def load_rules(store: Store) -> tuple[list[Rule], list[str]]:
    """The stored rules that validate, and a message for each that does not."""
    rules, problems = [], []
    for document in store.rule_documents():
        try:
            rules.append(Rule.model_validate(document))
        except ValidationError as error:
            name = document.get("software", "?") if isinstance(document, dict) else "?"
            problems.append(f"rule {str(name)[:100]!r} is invalid: {error.error_count()} errors")
    return rules, problems


async def after_current(
    store: Store,
    generation: str,
    snapshot: Snapshot,
    manifest: Manifest,
    today: date,
    report: SyncReport,
) -> None:
    """Everything a run does once its generation is current; each step's failure is a warning.

    The one place for follow-up work (clearing the held entry, dropping old generations, catching
    up rules edited during the run, and hooks such as ImmyBot tag reconciliation): none of it
    may turn a run whose generation serves into a failed one.
    """
    await step(report, "clear the held generation", store.set_held, None)
    await step(report, "drop staged pages", close_stage, store, generation)
    await step(report, "drop old generations", collect_garbage, store)
    # A rule edited while this run was reading was applied to the old generation; carry it over.
    await step(
        report,
        "catch up edited rules",
        _catch_up_rules,
        store,
        generation,
        snapshot,
        manifest,
        today,
    )


async def step(report: SyncReport, name: str, func: Callable[..., Any], *args: Any) -> None:
    """Run one follow-up step in a thread; its failure is a warning on the run, logged."""
    try:
        await asyncio.to_thread(func, *args)
    except Exception as error:
        log.warning("sync run %s: could not %s: %s", report.run_id, name, brief(error))
        report.warnings.append(f"could not {name}: {brief(error)}")


def _catch_up_rules(
    store: Store, generation: str, snapshot: Snapshot, resolved: Manifest, today: date
) -> None:
    rules, _ = load_rules(store)
    changed = [r for r in rules if r.key not in resolved.rules or resolved.rules[r.key].rule != r]
    removed = [k for k in resolved.rules if k not in {r.key for r in rules}]
    if changed or removed:
        apply_rules(store, generation, snapshot, changed, today, removed=removed)
