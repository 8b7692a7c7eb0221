"""`GET /api/assets/plan`: the last asset run's plan, for every client or one, with names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.api.names import NULL_NAME, Names, current_names
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.asset_plan import ClientAssetPlan
from shared.store.repository import Store
from shared.sync.asset_store import AssetRunSummary, read_plan


class NamedClientPlan(ClientAssetPlan):
    """One client's plan, with the client's and its tenant's names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_name: str | None = Field(description=NULL_NAME)
    tenant_name: str | None = Field(description=NULL_NAME)


class AssetPlanAnswer(BaseModel):
    """`GET /api/assets/plan`: the last asset run's summary and its plan per client."""

    summary: AssetRunSummary
    clients: list[NamedClientPlan]


def plan_client(client_id: str | None) -> int | None:
    """The `client_id` asked for (None: every client), or a 400."""
    raw = (client_id or "").strip()
    if raw and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
        raise ApiError(problem(400, "bad-query", "client_id must be a positive integer"))
    return int(raw) if raw else None


def asset_plan_reply(store: Store, client_id: int | None) -> Reply:
    """The plan of the current generation (of one client with `client_id`), or a 404."""
    pointer = store.current()
    view = read_plan(store, pointer.generation, client_id) if pointer else None
    if view is None:
        raise ApiError(
            problem(404, "no-asset-plan", "no asset plan yet: set ASSET_SYNC and let a sync run")
        )
    names = current_names(store) if view.clients else Names()
    return json_reply(
        AssetPlanAnswer(
            summary=view.summary,
            clients=[
                NamedClientPlan(
                    **plan.model_dump(),
                    client_name=names.client(plan.client_id),
                    tenant_name=names.tenant(plan.tenant_id),
                )
                for plan in view.clients
            ],
        )
    )
