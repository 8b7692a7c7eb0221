"""`GET /api/immybot/tags`: each rule's ImmyBot tag plan as last recorded, with tenant names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.api.names import NULL_NAME, Names, current_names
from shared.core.tag_base import RuleTags, SiteScoped, TagMode
from shared.settings import Settings
from shared.store.repository import Store
from shared.sync.tag_store import RuleTagsView, tags_view


class NamedSiteScoped(SiteScoped):
    """A target client of a site-scoped rule, with its tenant's name."""

    immy_tenant_name: str | None = Field(description=NULL_NAME)


class NamedRuleTags(RuleTagsView):
    """A rule's tag plan, with the name of every tenant it names."""

    site_scope: list[NamedSiteScoped] = Field(default_factory=list)  # type: ignore[assignment]
    tenant_names: dict[int, str | None] = Field(
        description="Every tenant id this rule's entry names (carrying, should, changes, held, "
        "offboarding, site_scope; ids of computers excluded) with its name; null when the "
        "snapshot does not hold it."
    )


class TagsAnswer(BaseModel):
    """`GET /api/immybot/tags`."""

    model_config = ConfigDict(frozen=True)

    mode: TagMode
    prefix: str
    rules: list[NamedRuleTags]


def tags_answer(store: Store, settings: Settings) -> TagsAnswer:
    """Every rule's tag, carriers, targets, planned changes and last result, with names."""
    view = tags_view(store, settings)
    names = current_names(store) if view.rules else Names()
    return TagsAnswer(
        mode=view.mode, prefix=view.prefix, rules=[named_rule(r, names) for r in view.rules]
    )


def named_rule(plan: RuleTags, names: Names) -> NamedRuleTags:
    """A rule's recorded plan with the name of every tenant it mentions."""
    return NamedRuleTags(
        **plan.model_dump(exclude={"site_scope"}),
        site_scope=[_scoped(s, names) for s in plan.site_scope],
        tenant_names=names.tenant_names(_tenant_ids(plan)),
    )


def _tenant_ids(plan: RuleTags) -> list[int]:
    # `carrying`, `should` and a change's ids are computers on a computer-level rule.
    ids = [*plan.offboarding]
    if plan.level == "tenant":
        ids += [*plan.carrying, *plan.should]
    ids += [t for c in plan.changes if c.level == "tenant" for t in (*c.add, *c.remove)]
    ids += [t for held in (plan.held, plan.held_cleanup) if held for t in held.tenants]
    ids += [s.immy_tenant_id for s in plan.site_scope if s.immy_tenant_id is not None]
    return ids


def _scoped(client: SiteScoped, names: Names) -> NamedSiteScoped:
    return NamedSiteScoped(
        **client.model_dump(), immy_tenant_name=names.tenant(client.immy_tenant_id)
    )
