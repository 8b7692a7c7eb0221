"""Publish a state in which only the refreshed clients changed, as a sync publishes one.

Usually only the changed clients' part is read and written (shared.sync.event_patch). Where that
cannot be trusted (another day, rules edited, names several tenants share, a generation without
indexes), `publish_whole` builds the new generation from the whole current one: its records
with the refreshed clients' replaced (shared.core.client_patch), ImmyBot's tenants and computers
carried over and the clients mapped to tenants again, every rule resolved again. Either way it
is written, judged by the same mass-change guard, and held or made current through the same
store functions as a sync's (`Store.write_generation`, `judge`, `Store.set_held`, `Store.swap`:
`finish`). Its `synced_at` stays the current one's: the data of every other client is as old as
that.

Unlike a sync, an event never clears a held generation (it changes one client; an admin's
decision on a fleet-wide hold is still pending), and never runs asset population.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from shared.core.catalog import build_catalog
from shared.core.changes import Cause
from shared.core.client_patch import patched_read, records_of, replace_clients, same_records
from shared.core.generation import ClientRecord, Manifest, rule_entry
from shared.core.guard import VerdictRecord, confirmable
from shared.core.mapping import ExplicitMapping, TenantMatch, links_of, map_clients
from shared.core.targets import Snapshot, Target, resolve
from shared.records.parsing import Reject
from shared.settings import Settings
from shared.store.generations import (
    apply_rules,
    layout,
    read_computers,
    read_manifest,
    read_snapshot,
    read_target_ids,
)
from shared.store.repository import Store, new_generation
from shared.store.sharing import share_unchanged
from shared.store.state import Held, Pointer
from shared.sync.after_current import load_rules
from shared.sync.changes import published, record_publish
from shared.sync.judge import Judgement, judge
from shared.sync.read import count_rejects
from shared.sync.retention import collect_garbage
from shared.sync.runs import bounded_json

log = logging.getLogger("halo_immy.events")

# Client ids listed per rule in a refresh's record of who became or stopped being a target.
MAX_LISTED = 20
UNCHANGED = "HaloPSA holds the same records as the snapshot"


@dataclass(frozen=True, slots=True)
class Fresh:
    """What a refresh read of the clients HaloPSA knows: their records, rejects and counts."""

    records: list[ClientRecord]
    rejects: list[Reject] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Published:
    """What a publish did: `outcome` is `published`, `held` or `unchanged`."""

    outcome: str
    generation: str | None = None
    changed: list[int] = field(default_factory=list)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    guard: VerdictRecord | None = None
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    note: str | None = None
    warnings: list[str] = field(default_factory=list)
    # The ImmyBot tenants of the changed clients, mapped before or after: their tags follow.
    tenants: set[int] = field(default_factory=set)
    # How it was built: from the changed clients' part of the current generation, or (and why)
    # from the whole of it; empty when nothing was built (nothing changed).
    built: str = ""
    # Every rule's targets in the new generation (by rule key), for the tags that follow.
    resolved: Mapping[str, Sequence[Target]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Base:
    """The current generation a refresh builds on."""

    pointer: Pointer
    snapshot: Snapshot
    manifest: Manifest

    @classmethod
    def read(cls, store: Store, pointer: Pointer) -> Base:
        """The current generation's records (with ImmyBot's part) and manifest."""
        manifest, _ = read_manifest(store, pointer.generation)
        return cls(pointer, read_snapshot(store, pointer.generation), manifest)


def publish_whole(
    settings: Settings,
    store: Store,
    base: Base,
    fresh: Fresh,
    *,
    run_id: str,
    now: datetime,
    before_swap: Callable[[str], None] | None = None,
) -> Published:
    """Build, write, judge and hold or swap a generation with `fresh` in place of those clients'
    current records, from the whole current generation (`base`); nothing at all when none of
    them changed. StoreError when storage fails or the pointer moved meanwhile (nothing serves
    differently then)."""
    old = [records_of(base.snapshot, r.client.id) for r in fresh.records]
    changed = [r for r, was in zip(fresh.records, old, strict=True) if not same_records(was, r)]
    if not changed:
        return Published("unchanged", note=UNCHANGED)
    snapshot = _mapped(store, base, replace_clients(base.snapshot, changed))
    rules, problems = load_rules(store)
    today = now.date()
    targets = {rule.key: resolve(snapshot, rule, today) for rule in rules}
    generation = new_generation(now)
    read = patched_read(base.manifest.read, old, fresh.read)
    manifest = Manifest(
        generation=generation,
        synced_at=base.manifest.synced_at,
        today=today,
        read=read,
        rules={r.key: rule_entry(r, targets[r.key], today, snapshot) for r in rules},
        immybot=base.manifest.immybot,
    )
    computers = read_computers(store, base.pointer.generation) if snapshot.immybot else []
    planned = layout(snapshot, targets, manifest, build_catalog(snapshot, today), computers)
    rejected = count_rejects([*fresh.rejects, *planned.too_large])
    changed_ids = sorted(r.client.id for r in changed)
    # The changed clients, and any other a shared name mapped anew with them: their tags follow.
    remapped = {c for c, m in snapshot.matches.items() if base.snapshot.matches.get(c) != m}
    moved = set(changed_ids) | remapped
    done = Published(
        "published",
        generation,
        changed_ids,
        target_changes(_target_ids(store, base), targets, moved),
        rejected=rejected,
        warnings=problems,
        tenants=tenants_of(moved, base.snapshot.matches, snapshot.matches),
        built="whole",
    )
    # Written as a sync writes: only the clients' rows that differ from the current generation's
    # (here the changed ones), the rest named by the index, so the next event can patch it.
    shared = share_unchanged(store, generation, planned.partitions, base.pointer.generation)
    store.write_generation(generation, shared.partitions)
    outcome = judge(store, settings, base.pointer, read, rejected, snapshot, targets)
    done.resolved = targets
    record = partial(_record, store, base.pointer, manifest, targets, now)
    return finish(
        settings, store, base.pointer, done, outcome, manifest, run_id, now, before_swap,
        lambda: snapshot, record,
    )  # fmt: skip


def _target_ids(store: Store, base: Base) -> dict[str, set[int]]:
    """Each rule's target ids in the current generation."""
    return {
        key: read_target_ids(store, base.pointer.generation, entry.partition)
        for key, entry in base.manifest.rules.items()
    }


def _record(
    store: Store,
    before: Pointer,
    manifest: Manifest,
    targets: Mapping[str, Sequence[Target]],
    at: datetime,
    cause: Cause,
) -> int:
    """The change log of a whole rebuild: the generation it replaced against its targets."""
    new = published(manifest, targets)
    return record_publish(store, before, manifest.generation, cause, at, new)


def finish(
    settings: Settings,
    store: Store,
    pointer: Pointer,
    done: Published,
    outcome: Judgement,
    manifest: Manifest,
    run_id: str,
    now: datetime,
    before_swap: Callable[[str], None] | None,
    snapshot: Callable[[], Snapshot],
    changes: Callable[[Cause], int],
) -> Published:
    """Hold the written generation (the guard's verdict, unconfirmed) or make it current, then
    record what changed (`changes`, with the refresh as the cause) and tidy up; `snapshot` gives
    the new generation's, should rules edited meanwhile need it."""
    generation = manifest.generation
    if outcome.verdict is not None and not _confirmed(store, settings, outcome.digest, outcome):
        reason = bounded_json(outcome.verdict.record())
        store.set_held(Held(generation, run_id, now, manifest.synced_at, reason, outcome.digest))
        done.outcome, done.guard = "held", outcome.verdict.record()
        _quietly(done, "drop old generations", collect_garbage, store)
        return done
    if before_swap is not None:
        before_swap(generation)
    store.swap(generation, run_id=run_id, synced_at=manifest.synced_at, expected=pointer)
    _quietly(done, "record the change log", changes, Cause(kind="event", id=run_id))
    _quietly(done, "drop old generations", collect_garbage, store)
    _quietly(done, "catch up edited rules", _catch_up_rules, store, generation, snapshot, manifest)
    return done


def _mapped(store: Store, base: Base, snapshot: Snapshot) -> Snapshot:
    """The patched snapshot with ImmyBot's tenants (the current generation's) and every client
    mapped again: a renamed or new client may now match another tenant."""
    if not base.snapshot.immybot:
        return snapshot
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    tenants = list(base.snapshot.tenants.values())
    links = links_of(base.snapshot.matches.values())
    matches = map_clients(snapshot.clients.values(), tenants, explicit, links)
    return snapshot.with_immybot(tenants, matches)


def tenants_of(clients: set[int], *matches: Mapping[int, TenantMatch]) -> set[int]:
    """The tenants these clients map to in any of the mappings (a renamed client may leave one
    tenant for another: the old one loses the tag, the new one gains it)."""
    found = {m[c].tenant_id for m in matches for c in clients if c in m}
    return {t for t in found if t is not None}


def _confirmed(store: Store, settings: Settings, digest: str, outcome: Any) -> bool:
    # SYNC_CONFIRM_BY_REPEAT as a sync applies it: the same outcome as the held one confirms it.
    held = store.held()
    return bool(
        settings.sync_confirm_by_repeat
        and confirmable(outcome.verdict.parts())
        and held is not None
        and held.fingerprint == digest
    )


def target_changes(
    before: Mapping[str, set[int]], targets: Mapping[str, Sequence[Target]], clients: set[int]
) -> dict[str, dict[str, Any]]:
    """Per rule the refreshed clients moved, which became or stopped being a target (`before`:
    each rule's target ids in the current generation)."""
    out: dict[str, dict[str, Any]] = {}
    for key, found in targets.items():
        was = before.get(key, set())
        after = {t.client_id for t in found}
        added, removed = (after - was) & clients, (was - after) & clients
        if not (added or removed):
            continue  # rules the refreshed clients did not move: left out of the record
        out[key] = {
            "before": len(was),
            "after": len(after),
            "added": sorted(added)[:MAX_LISTED],
            "removed": sorted(removed)[:MAX_LISTED],
        }
    return out


def _catch_up_rules(
    store: Store, generation: str, snapshot: Callable[[], Snapshot], built: Manifest
) -> None:
    # A rule edited while the refresh ran was applied to the generation it replaced.
    rules, _ = load_rules(store)
    changed = [r for r in rules if r.key not in built.rules or built.rules[r.key].rule != r]
    removed = [k for k in built.rules if k not in {r.key for r in rules}]
    if changed or removed:
        apply_rules(store, generation, snapshot(), changed, built.today, removed=removed)


def _quietly(done: Published, name: str, step: Callable[..., Any], *args: Any) -> None:
    # After the swap (or hold) nothing may undo what serves: a failing clean-up is a warning.
    try:
        step(*args)
    except Exception as error:
        log.warning("event refresh: could not %s: %s", name, type(error).__name__)
        done.warnings.append(f"could not {name}: {type(error).__name__}")
