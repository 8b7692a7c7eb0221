"""The ids a rule or a mapping names, checked against the snapshots before anything is stored.

Against the current generation and a held one (an id either holds is known; a held generation is
the newer read). An id that cannot exist is a 409 `unknown-ids` problem naming it, field by field;
one perhaps newer than the snapshot, or one nothing could check (no sync yet, ImmyBot not in the
snapshot), is accepted with a warning. The rule that tells them apart: shared.core.references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.api.current import snapshot_of
from shared.api.problems import ApiError, problem
from shared.core.references import Named, check_ids, refusal, warnings
from shared.core.rules import Rule
from shared.store.repository import Store

CLIENT, SITE, TENANT = "HaloPSA client", "HaloPSA site", "ImmyBot tenant"
NO_SYNC = "no sync has completed yet"
NO_IMMYBOT = "the snapshot holds no ImmyBot data (ImmyBot not configured when it synced)"


@dataclass(frozen=True, slots=True)
class SnapshotIds:
    """The ids the current and held snapshots hold, and when the newer of them synced; None
    where no snapshot holds ids of that kind."""

    clients: frozenset[int] | None
    sites: frozenset[int] | None
    tenants: frozenset[int] | None
    synced_at: datetime | None

    def named(self, field: str, kind: str, ids: Iterable[int]) -> Named:
        """A request field's ids, to check against the ids of `kind`."""
        known = {CLIENT: self.clients, SITE: self.sites, TENANT: self.tenants}[kind]
        why = NO_SYNC if self.synced_at is None else NO_IMMYBOT
        return Named(field, kind, list(ids), known, why)


def snapshot_ids(store: Store) -> SnapshotIds:
    """What the current and any held generation hold (each snapshot read once per manifest,
    as the re-resolution that follows a change reads it too)."""
    pointer, held = store.current(), store.held()
    stamps = [(p.generation, p.synced_at) for p in (pointer, held) if p is not None]
    if not stamps:
        return SnapshotIds(None, None, None, None)
    clients: set[int] = set()
    sites: set[int] = set()
    tenants: set[int] | None = None
    for generation, _ in stamps:
        snapshot = snapshot_of(store, generation)
        clients.update(snapshot.clients)
        sites.update(snapshot.sites)
        if snapshot.immybot:
            tenants = (tenants or set()) | set(snapshot.tenants)
    return SnapshotIds(
        frozenset(clients),
        frozenset(sites),
        None if tenants is None else frozenset(tenants),
        max(synced for _, synced in stamps),
    )


def rule_fields(ids: SnapshotIds, rule: Rule) -> list[Named]:
    """The HaloPSA ids a rule names: clients it excludes and sites it is scoped to."""
    return [
        ids.named("exclude_clients", CLIENT, rule.exclude_clients),
        ids.named("site_ids", SITE, rule.site_ids or []),
    ]


def checked_rules(
    store: Store, rules: Iterable[Rule], *, by_rule: bool = False
) -> dict[str, list[str]]:
    """Each rule's warnings (by key), or a 409 naming every id of every rule that cannot exist:
    `unknown` is field -> ids, or with `by_rule` (a rule set) software -> field -> ids."""
    rules = list(rules)
    if not any(rule.exclude_clients or rule.site_ids for rule in rules):
        return {rule.key: [] for rule in rules}  # nothing to check: no snapshot read
    ids = snapshot_ids(store)
    results = {rule.key: (rule, check_ids(rule_fields(ids, rule))) for rule in rules}
    refused = {rule.software: found for rule, found in results.values() if found.refused}
    if refused:
        detail = "; ".join(
            f"rule {software!r}: {refusal(found, ids.synced_at)}"
            for software, found in refused.items()
        )
        unknown = {software: found.refused for software, found in refused.items()}
        raise _conflict(detail, unknown if by_rule else next(iter(unknown.values())))
    return {key: warnings(found, ids.synced_at) for key, (_, found) in results.items()}


def checked_mapping(store: Store, client_id: int, tenant_id: int) -> list[str]:
    """A mapping's warnings, or a 409 when its client or tenant cannot exist."""
    ids = snapshot_ids(store)
    found = check_ids(
        [
            ids.named("halo_client_id", CLIENT, [client_id]),
            ids.named("immy_tenant_id", TENANT, [tenant_id]),
        ]
    )
    if found.refused:
        raise _conflict(refusal(found, ids.synced_at), found.refused)
    return warnings(found, ids.synced_at)


def _conflict(detail: str, unknown: Mapping[str, object]) -> ApiError:
    # 409: well-formed, but it names what the current data says is not there.
    return ApiError(problem(409, "unknown-ids", detail, unknown=unknown))
