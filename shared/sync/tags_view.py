"""`GET /api/immybot/tags`: every rule's recorded tag plan, and per client the three numbers.

The plan (tag, carriers, planned changes, last apply) is what the last sync recorded
(`shared.sync.tags`). Beside it, per client the rule targets: what it is billed for, how many
computers the tag's deployment reaches in its tenant, and on how many ImmyBot's inventory shows
the software, from the current generation with the very function the reconciliation uses
(`shared.core.reconcile.client_row`), so both answers show the same numbers. Nothing here calls
ImmyBot.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from shared.core.generation import Manifest
from shared.core.installed import TenantComputers, by_tenant
from shared.core.mapping import MatchKind
from shared.core.reconcile import QuantityStatus, client_row
from shared.core.rules import normalise
from shared.core.tag_plan import RuleTags, TagMode
from shared.settings import Settings
from shared.store.generations import read_computers, read_manifest, read_targets
from shared.store.repository import Store
from shared.sync.tags import recorded_plans


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
    targeted: int | None = Field(description="Computers the tag's deployment reaches.")
    installed: int | None = Field(description="Computers with the software; null when not known.")
    installed_unknown: str | None = Field(description="Why installed is null.")


class RuleTagsView(RuleTags):
    """A rule's recorded tag plan, with its clients' numbers from the current generation."""

    numbers_generation: str | None = Field(
        default=None,
        description="The generation the clients' numbers come from (the current one); null when "
        "none serves or the rule is not in it.",
    )
    clients: list[TagClient] = Field(
        default_factory=list, description="The rule's targets, by name, with their numbers."
    )


class TagsView(BaseModel):
    """`GET /api/immybot/tags`."""

    model_config = ConfigDict(frozen=True)

    mode: TagMode
    prefix: str
    rules: list[RuleTagsView]


def tags_view(store: Store, settings: Settings) -> TagsView:
    """Every rule's recorded plan, with each target client's numbers as of the current sync."""
    plans = recorded_plans(store)
    pointer = store.current() if plans else None
    manifest = read_manifest(store, pointer.generation)[0] if pointer is not None else None
    tenants: Mapping[int, TenantComputers] | None = None
    if manifest is not None and manifest.immybot.configured:
        computers = read_computers(store, manifest.generation)
        tenants = by_tenant(computers, manifest.synced_at, settings.immy_stale_days)
    return TagsView(
        mode=TagMode(settings.immy_tags),
        prefix=settings.immy_tag_prefix,
        rules=[_with_numbers(store, plan, manifest, tenants) for plan in plans],
    )


def _with_numbers(
    store: Store,
    plan: RuleTags,
    manifest: Manifest | None,
    tenants: Mapping[int, TenantComputers] | None,
) -> RuleTagsView:
    entry = manifest.rules.get(normalise(plan.software)) if manifest is not None else None
    if manifest is None or entry is None:
        return RuleTagsView(**dict(plan))
    clients = []
    for target in read_targets(store, manifest.generation, entry.partition):
        row = client_row(
            target,
            target.immy_tenant_id,
            tenants,
            entry.rule.detect_patterns,
            manifest.immybot.inventory,
        )
        clients.append(
            TagClient.model_validate(row.model_dump(include=set(TagClient.model_fields)))
        )
    return RuleTagsView(**dict(plan), numbers_generation=manifest.generation, clients=clients)
