"""The three numbers per target client of each rule, for `GET /api/immybot/tags`.

Beside a rule's recorded tag plan (`shared.sync.tag_store`), per client the rule targets: what it
is billed for, how many computers the tag's deployment reaches (for a site-scoped rule, those at
its in-scope sites), and on how many of them ImmyBot's inventory shows the software, from the
current generation with the very function the reconciliation uses
(`shared.core.reconcile.client_row`), so both answers show the same numbers. Nothing here calls
ImmyBot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from shared.core.generation import Manifest
from shared.core.installed import TenantComputers, by_tenant
from shared.core.mapping import MatchKind
from shared.core.reach import SiteScope
from shared.core.reconcile import QuantityStatus, client_row
from shared.core.site_links import SiteLink
from shared.settings import Settings
from shared.store.generations import read_computers, read_manifest, read_targets
from shared.store.repository import Store
from shared.store.site_links import read_site_links


class TagClient(BaseModel):
    """A client a rule targets: its tenant, and billed, targeted and installed side by side
    (meanings and signs as in `GET /api/reconciliation`)."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    mapping: MatchKind
    quantity: float | None = Field(description="Billed quantity; null when not known.")
    quantity_status: QuantityStatus
    targeted: int | None = Field(
        description="Computers the tag's deployment reaches (a site-scoped rule: at the client's "
        "in-scope sites); null when not known."
    )
    installed: int | None = Field(description="Computers with the software; null when not known.")
    installed_unknown: str | None = Field(description="Why installed is null.")
    unplaced: int | None = Field(
        default=None, description="Site-scoped rule: computers whose site is unknown."
    )


@dataclass(frozen=True, slots=True)
class Numbers:
    """Each rule's clients with their numbers (by rule key), and the generation they are from
    (None: no generation serves, or it did not read ImmyBot)."""

    generation: str | None = None
    clients: Mapping[str, list[TagClient]] = field(default_factory=dict)


def rule_numbers(store: Store, settings: Settings, keys: Iterable[str]) -> Numbers:
    """The numbers of every target client of the rules `keys`, as of the current generation."""
    wanted = set(keys)
    pointer = store.current() if wanted else None
    if pointer is None:
        return Numbers()
    manifest = read_manifest(store, pointer.generation)[0]
    tenants: Mapping[int, TenantComputers] | None = None
    if manifest.immybot.configured:
        computers = read_computers(store, manifest.generation)
        tenants = by_tenant(computers, manifest.synced_at, settings.immy_stale_days)
    scoped = any(e.rule.site_ids is not None for k, e in manifest.rules.items() if k in wanted)
    found = read_site_links(store, manifest.generation) if scoped else None
    links = found[1] if found is not None else None
    clients = {
        key: _clients(store, manifest, key, tenants, links)
        for key in sorted(wanted & set(manifest.rules))
    }
    return Numbers(manifest.generation, clients)


def _clients(
    store: Store,
    manifest: Manifest,
    key: str,
    tenants: Mapping[int, TenantComputers] | None,
    links: Mapping[int, SiteLink] | None,
) -> list[TagClient]:
    entry = manifest.rules[key]
    scope = SiteScope(links) if entry.rule.site_ids is not None else None
    clients = []
    for target in read_targets(store, manifest.generation, entry.partition):
        row = client_row(
            target,
            target.immy_tenant_id,
            tenants,
            entry.rule.detect_patterns,
            manifest.immybot.inventory,
            scope,
        )
        clients.append(
            TagClient.model_validate(row.model_dump(include=set(TagClient.model_fields)))
        )
    return clients
