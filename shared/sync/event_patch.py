"""An event's publish that reads and writes only what the changed clients need.

A client's targets depend on its own records, the items, its mapping and the day; a rule's
targets are the union over clients. So with the changed clients' records read (one range read
each) and compared, the current generation's part that does not grow with the records
(shared.store.patching: manifest, indexes, items, catalogue, tenants, matches, each rule's
targets) is enough: the changed clients are mapped again, each rule resolved for them alone, and
their targets put in place of the old ones. Everything else is the current generation's, as a
whole rebuild would find it, as long as:
- the current generation was resolved today, and the rules are the ones it was resolved with;
- no changed client's name (old or new) is one several ImmyBot tenants share (then every
  client's mapping may depend on it);
- the current generation has its shared partitions' indexes.
Otherwise `publish_clients` reads the whole current generation (shared.sync.event_publish).

A contract or invoice that moved to a changed client from another stays with the other client's
stored records until that client's own event or the next sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.core.catalog import patch_catalog
from shared.core.changes import Cause, RuleTargets
from shared.core.client_patch import patch_targets, patched_read, same_records, snapshot_of
from shared.core.generation import (
    CATALOG,
    IMMY_NAMES,
    MANIFEST,
    MATCHES,
    META,
    ClientRecord,
    Manifest,
    rule_entry,
)
from shared.core.mapping import (
    ExplicitMapping,
    TenantMatch,
    links_of,
    map_clients,
    normalise_name,
    renamed,
    shared_names,
)
from shared.core.rules import Rule
from shared.core.targets import Target, resolve
from shared.records.parsing import Reject
from shared.settings import Settings
from shared.store.generations import (
    client_entities,
    read_manifest,
    read_snapshot,
    target_entities,
    unmapped_entities,
)
from shared.store.matches import Names, match_entities, names_entities
from shared.store.patching import BasePart, patched_shared, read_base_part, read_old_clients
from shared.store.repository import Store, document_entities, new_generation
from shared.store.state import Pointer
from shared.sync.after_current import load_rules
from shared.sync.changes import record_changes
from shared.sync.event_publish import (
    UNCHANGED,
    Base,
    Fresh,
    Published,
    finish,
    publish_whole,
    target_changes,
    tenants_of,
)
from shared.sync.judge import Before, judge_against
from shared.sync.read import count_rejects

Swap = Callable[[str], None]


def publish_clients(
    settings: Settings,
    store: Store,
    pointer: Pointer,
    fresh: Fresh,
    *,
    run_id: str,
    now: datetime,
    before_swap: Swap | None = None,
) -> Published:
    """Publish `fresh` in place of those clients' records: from their part of the current
    generation where that is exact, else from the whole of it."""
    manifest, _ = read_manifest(store, pointer.generation)
    old = read_old_clients(store, pointer.generation, [r.client.id for r in fresh.records])
    changed = [r for r in fresh.records if not same_records(old[r.client.id], r)]
    if not changed:
        return Published("unchanged", note=UNCHANGED)
    rules, problems = load_rules(store)
    part = _patchable(store, manifest, rules, now.date(), pointer.generation)
    why = part if isinstance(part, str) else "a shared tenant name, and no list of its clients"
    if not isinstance(part, str):
        done = _patched(settings, store, pointer, part, fresh, old, changed, rules, run_id, now,
                        before_swap)  # fmt: skip
        if done is not None:
            done.warnings[:0] = problems
            return done
    base = Base.read(store, pointer)
    done = publish_whole(
        settings, store, base, fresh, run_id=run_id, now=now, before_swap=before_swap
    )
    if done.built:
        done.built = f"whole: {why}"
    return done


def _patchable(
    store: Store, manifest: Manifest, rules: Sequence[Rule], today: date, generation: str
) -> BasePart | str:
    """The current generation's part to build on, or why only the whole will do."""
    if manifest.today != today or any(e.resolved_on != today for e in manifest.rules.values()):
        return "resolved on another day"  # coverage depends on the day: all are resolved again
    if {r.key: r for r in rules} != {k: e.rule for k, e in manifest.rules.items()}:
        return "rules edited since"  # every client is resolved again
    part = read_base_part(store, generation, manifest)
    return "a generation without indexes" if part is None else part


@dataclass(frozen=True, slots=True)
class Remap:
    """The changed clients mapped again: every client's mapping after, the clients a shared name
    ties to them (mapped again too, their records as stored), and the shared names after."""

    matches: dict[int, TenantMatch]
    tied: list[ClientRecord]
    names: Names | None


def _patched(
    settings: Settings,
    store: Store,
    pointer: Pointer,
    part: BasePart,
    fresh: Fresh,
    old: dict[int, ClientRecord | None],
    changed: list[ClientRecord],
    rules: Sequence[Rule],
    run_id: str,
    now: datetime,
    before_swap: Swap | None,
) -> Published | None:
    """Build, write, judge and hold or swap the patched generation; None when the current
    generation does not say which clients share a changed client's name."""
    was = [o for o in (old[r.client.id] for r in changed) if o is not None]
    remap = _remap(store, part, changed, was)
    if remap is None:
        return None
    today, immybot = now.date(), part.manifest.immybot.configured
    ids = {r.client.id for r in [*changed, *remap.tied]}
    mapping = snapshot_of((), ()).with_immybot(part.tenants, remap.matches) if immybot else None
    mini = snapshot_of([*changed, *remap.tied], part.items)
    mini = mini.with_immybot(part.tenants, remap.matches) if immybot else mini
    targets = {r.key: patch_targets(part.targets[r.key], resolve(mini, r, today), ids)
               for r in rules}  # fmt: skip
    read = patched_read(part.manifest.read, [old[r.client.id] for r in fresh.records], fresh.read)
    manifest = Manifest(
        generation=new_generation(now),
        synced_at=part.manifest.synced_at,
        today=today,
        read=read,
        rules={r.key: rule_entry(r, targets[r.key], today, mapping or mini) for r in rules},
        immybot=part.manifest.immybot,
    )
    too_large: list[Reject] = []
    partitions = _partitions(store, part, manifest, changed, was, remap, targets, too_large)
    rejected = count_rejects([*fresh.rejects, *too_large])
    before = _before(part)
    done = Published(
        "published",
        manifest.generation,
        sorted(r.client.id for r in changed),
        target_changes(before.ids, targets, ids),
        rejected=rejected,
        tenants=tenants_of(ids, part.matches, remap.matches),
        built="patched",
        resolved=targets,
    )
    store.write_generation(manifest.generation, partitions)
    after = [m.tenant_id for m in remap.matches.values()] if immybot else None
    outcome = judge_against(settings, before, read, rejected, targets, after)

    return finish(settings, store, pointer, done, outcome, manifest, run_id, now, before_swap,
                  lambda: read_snapshot(store, manifest.generation),
                  _recorder(store, part.targets, targets, ids, manifest, now))  # fmt: skip


def _recorder(
    store: Store,
    before: dict[str, list[Target]],
    after: dict[str, list[Target]],
    ids: set[int],
    manifest: Manifest,
    now: datetime,
) -> Callable[[Cause], int]:
    """What records the refreshed clients' changes in the change log, from both sides held."""

    def side(found: dict[str, list[Target]]) -> dict[str, RuleTargets]:
        return {key: RuleTargets(manifest.rules[key].software,
                                 [t for t in found.get(key, []) if t.client_id in ids])
                for key in after}  # fmt: skip

    def record(cause: Cause) -> int:
        return record_changes(store, side(before), side(after),
                              generation=manifest.generation, cause=cause, at=now)  # fmt: skip

    return record


def _partitions(
    store: Store,
    part: BasePart,
    manifest: Manifest,
    changed: list[ClientRecord],
    was: list[ClientRecord],
    remap: Remap,
    targets: dict[str, list[Target]],
    too_large: list[Reject],
) -> dict[str, list[dict[str, Any]]]:
    """The new generation's entities: the changed clients' rows and what is shared or copied
    (shared.store.patching), the matches and names, each rule's targets, the meta rows."""
    generation, today = manifest.generation, manifest.today
    rows = client_entities(snapshot_of(changed, ()), too_large)
    partitions = patched_shared(store, generation, part, rows)
    if part.manifest.immybot.configured:
        partitions[MATCHES] = match_entities(remap.matches.values(), too_large)
        partitions[IMMY_NAMES] = names_entities(remap.names or {})
    mapping = snapshot_of((), ()).with_immybot(part.tenants, remap.matches)
    for key, found in targets.items():
        entry = manifest.rules[key]
        partitions[entry.partition] = target_entities(found, too_large)
        partitions[entry.unmapped_partition] = unmapped_entities(found, mapping, too_large)
    meta = document_entities(MANIFEST, manifest.model_dump_json())
    if part.catalog is not None:
        now = snapshot_of(changed, part.items)
        catalog = patch_catalog(part.catalog, snapshot_of(was, part.items), now, today)
        meta += document_entities(CATALOG, catalog.model_dump_json())
    partitions[META] = meta
    return partitions


def _remap(
    store: Store, part: BasePart, changed: list[ClientRecord], was: list[ClientRecord]
) -> Remap | None:
    """Every client's mapping with the changed clients mapped again, as mapping every client
    again would find: a name (old or new) several tenants share ties every client named so, and
    they are mapped again together. None when the generation does not say who those are."""
    if not part.manifest.immybot.configured:
        return Remap({}, [], None)
    keys = shared_names(part.tenants)
    touched = {normalise_name(r.client.name) for r in [*changed, *was]} & keys
    if touched and part.names is None:
        return None
    names = part.names or {}
    ids = {r.client.id for r in changed}
    tied_ids = sorted({i for key in touched for i, _ in names.get(key, [])} - ids)
    tied = [r for r in read_old_clients(store, part.generation, tied_ids).values() if r]
    explicit = {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}
    clients = [r.client for r in [*changed, *tied]]
    fresh = map_clients(clients, part.tenants, explicit, links_of(part.matches.values()))
    return Remap({**part.matches, **fresh}, tied, renamed(names, keys, (r.client for r in changed)))


def _before(part: BasePart) -> Before:
    """The guard's view of the current generation, from the part read."""
    ids = {k: {t.client_id for t in found} for k, found in part.targets.items()}
    mapped = {
        k: {t.client_id for t in found if t.immy_tenant_id is not None}
        for k, found in part.targets.items()
    }
    tenants = None
    if part.manifest.immybot.configured:
        tenants = {m.tenant_id for m in part.matches.values() if m.tenant_id is not None}
    return Before(part.manifest.read, ids, mapped, tenants)
