"""Publish a state in which only the refreshed clients changed, as a sync publishes one.

The new generation is built from the current one: its records with the refreshed clients'
replaced (shared.core.client_patch), ImmyBot's tenants and computers carried over and the
clients mapped to tenants again, every rule resolved again. It is laid out, written, judged by
the same mass-change guard, and held or made current through the same store functions as a
sync's (`layout`, `Store.write_generation`, `judge`, `Store.set_held`, `Store.swap`), so how a
generation is written is decided in one place. Its `synced_at` stays the current one's: the
data of every other client is as old as that.

Unlike a sync, an event never clears a held generation (it changes one client; an admin's
decision on a fleet-wide hold is still pending), and never runs asset population.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core.catalog import build_catalog
from shared.core.client_patch import patched_read, records_of, replace_clients, same_records
from shared.core.generation import ClientRecord, Manifest, rule_entry
from shared.core.guard import VerdictRecord, confirmable
from shared.core.mapping import ExplicitMapping, links_of, map_clients
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
from shared.store.state import Held, Pointer
from shared.sync.after_current import load_rules
from shared.sync.judge import judge
from shared.sync.read import count_rejects
from shared.sync.retention import collect_garbage
from shared.sync.runs import bounded_json

log = logging.getLogger("halo_immy.events")

# Client ids listed per rule in a refresh's record of who became or stopped being a target.
MAX_LISTED = 20


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


def publish_clients(
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
    current records; nothing at all when none of them changed. StoreError when storage fails
    or the pointer moved meanwhile (nothing serves differently then)."""
    old = [records_of(base.snapshot, r.client.id) for r in fresh.records]
    changed = [r for r, was in zip(fresh.records, old, strict=True) if not same_records(was, r)]
    if not changed:
        return Published("unchanged", note="HaloPSA holds the same records as the snapshot")
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
    done = Published(
        "published",
        generation,
        changed_ids,
        _target_changes(store, base, targets, set(changed_ids)),
        rejected=rejected,
        warnings=problems,
        tenants=_tenants_of(set(changed_ids), base.snapshot, snapshot),
    )
    store.write_generation(generation, planned.partitions)
    outcome = judge(store, settings, base.pointer, read, rejected, snapshot, targets)
    if outcome.verdict is not None and not _confirmed(store, settings, outcome.digest, outcome):
        reason = bounded_json(outcome.verdict.record())
        store.set_held(Held(generation, run_id, now, manifest.synced_at, reason, outcome.digest))
        done.outcome, done.guard = "held", outcome.verdict.record()
        _quietly(done, "drop old generations", collect_garbage, store)
        return done
    if before_swap is not None:
        before_swap(generation)
    store.swap(generation, run_id=run_id, synced_at=manifest.synced_at, expected=base.pointer)
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


def _tenants_of(clients: set[int], *snapshots: Snapshot) -> set[int]:
    """The tenants these clients map to in any of the snapshots (a renamed client may leave one
    tenant for another: the old one loses the tag, the new one gains it)."""
    found = {s.matches[c].tenant_id for s in snapshots for c in clients if c in s.matches}
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


def _target_changes(
    store: Store, base: Base, targets: Mapping[str, Sequence[Target]], clients: set[int]
) -> dict[str, dict[str, Any]]:
    """Per rule the refreshed clients moved, which became or stopped being a target."""
    out: dict[str, dict[str, Any]] = {}
    for key, found in targets.items():
        entry = base.manifest.rules.get(key)
        before = (
            read_target_ids(store, base.pointer.generation, entry.partition) if entry else set()
        )
        after = {t.client_id for t in found}
        added, removed = (after - before) & clients, (before - after) & clients
        if not (added or removed):
            continue  # rules the refreshed clients did not move: left out of the record
        out[key] = {
            "before": len(before),
            "after": len(after),
            "added": sorted(added)[:MAX_LISTED],
            "removed": sorted(removed)[:MAX_LISTED],
        }
    return out


def _catch_up_rules(store: Store, generation: str, snapshot: Snapshot, built: Manifest) -> None:
    # A rule edited while the refresh ran was applied to the generation it replaced.
    rules, _ = load_rules(store)
    changed = [r for r in rules if r.key not in built.rules or built.rules[r.key].rule != r]
    removed = [k for k in built.rules if k not in {r.key for r in rules}]
    if changed or removed:
        apply_rules(store, generation, snapshot, changed, built.today, removed=removed)


def _quietly(done: Published, name: str, step: Callable[..., Any], *args: Any) -> None:
    # After the swap (or hold) nothing may undo what serves: a failing clean-up is a warning.
    try:
        step(*args)
    except Exception as error:
        log.warning("event refresh: could not %s: %s", name, type(error).__name__)
        done.warnings.append(f"could not {name}: {type(error).__name__}")
