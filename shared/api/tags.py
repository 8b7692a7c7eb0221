"""`GET /api/immybot/tags`: each rule's ImmyBot tag plan as last recorded, with tenant names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.api.names import NULL_NAME, Names, current_names
from shared.core.tag_plan import SITE_SCOPE_NOTE, RuleTags, SiteScoped, TagMode
from shared.settings import Settings
from shared.store.repository import Store
from shared.sync.tags import tags_view


class NamedSiteScoped(BaseModel):
    """A client of a site-scoped rule (not tagged), with its tenant's name."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    immy_tenant_name: str | None = Field(description=NULL_NAME)
    note: str = SITE_SCOPE_NOTE


class NamedRuleTags(RuleTags):
    """A rule's tag plan, with the name of every tenant it names."""

    site_scope: list[NamedSiteScoped] = Field(default_factory=list)  # type: ignore[assignment]
    tenant_names: dict[int, str | None] = Field(
        description="Every tenant id this rule's entry names (carrying, should, changes, held, "
        "offboarding, site_scope) with its name; null when the snapshot does not hold it."
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
    ids = [*plan.carrying, *plan.should, *plan.offboarding]
    ids += [t for change in plan.changes for t in (*change.add, *change.remove)]
    ids += plan.held.tenants if plan.held else []
    ids += [s.immy_tenant_id for s in plan.site_scope if s.immy_tenant_id is not None]
    fields = plan.model_dump(exclude={"site_scope"})
    return NamedRuleTags(
        **fields,
        site_scope=[_scoped(s, names) for s in plan.site_scope],
        tenant_names=names.tenant_names(ids),
    )


def _scoped(client: SiteScoped, names: Names) -> NamedSiteScoped:
    return NamedSiteScoped(
        client_id=client.client_id,
        client_name=client.client_name,
        immy_tenant_id=client.immy_tenant_id,
        immy_tenant_name=names.tenant(client.immy_tenant_id),
        note=client.note,
    )
