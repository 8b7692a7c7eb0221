"""The change log of publishes: per rule, who became or stopped being a target at each publish, and
why (shared.core.changes decides what a change is; shared.store.changes stores it).

A publish moves the pointer readers follow: a sync's swap, an admin's approval of a held
generation, and an event refresh of one client. Each records right after the pointer moved, with
a cause (`sync` and the run id, `approval` and the approved run's id, `event`). A rule edit
re-resolves the rule in the generation that serves, so it records too (`rule` and the edit's
id), through `rule_targets` before and after the edit: `record_publish`
diffs whole generations (the pointer as it was before against the new one), `record_changes`
diffs what the caller holds in memory (an event refresh: one client's targets per rule, before
and after). The record is best effort: the generation already serves, so
a failure here is a warning (on the run; logged for an approval) and nothing more. The next
publish records its own diff, against what served before it; the changes of the publish whose
record failed are missing from the log, never carried into another publish's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from shared.core.changes import Cause, RuleTargets, diff_targets
from shared.core.generation import Manifest
from shared.core.targets import Target
from shared.store.changes import write_changes
from shared.store.generations import read_manifest, read_targets
from shared.store.repository import Store
from shared.store.state import Pointer


def rule_targets(
    store: Store,
    generation: str,
    keys: Collection[str] | None = None,
    manifest: Manifest | None = None,
) -> dict[str, RuleTargets]:
    """The rules' targets in a stored generation, by rule key: every rule, or those of `keys`
    the generation holds (`manifest`: its manifest, if the caller has just read it)."""
    if manifest is None:
        manifest, _ = read_manifest(store, generation)
    return {
        key: RuleTargets(entry.software, read_targets(store, generation, entry.partition))
        for key, entry in manifest.rules.items()
        if keys is None or key in keys
    }


def published(
    manifest: Manifest, targets: Mapping[str, Sequence[Target]]
) -> dict[str, RuleTargets]:
    """A run's resolved targets (by rule key) as the change log compares them."""
    return {key: RuleTargets(manifest.rules[key].software, found) for key, found in targets.items()}


def record_publish(
    store: Store,
    before: Pointer | None,
    generation: str,
    cause: Cause,
    at: datetime,
    targets: Mapping[str, RuleTargets] | None = None,
) -> int:
    """Record what making `generation` current changed against `before` (None: the first publish,
    so every target became one); returns how many changes.

    `targets` are the new generation's, when the caller has them in memory; else they are read.
    """
    old = rule_targets(store, before.generation) if before is not None else {}
    new = targets if targets is not None else rule_targets(store, generation)
    return record_changes(store, old, new, generation=generation, cause=cause, at=at)


def record_changes(
    store: Store,
    before: Mapping[str, RuleTargets],
    after: Mapping[str, RuleTargets],
    *,
    generation: str,
    cause: Cause,
    at: datetime,
) -> int:
    """Record the changes between two sides the caller holds (rule key -> targets; both sides
    with the same clients, e.g. one client's); returns how many."""
    changes = diff_targets(before, after, at=at, cause=cause, generation=generation)
    write_changes(store, changes)
    return len(changes)
