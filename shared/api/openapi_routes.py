"""Every route of the HTTP API, as typed specs: the read routes here, the admin routes in
shared.api.openapi_admin_routes; ROUTES lists them all, and the paths of the OpenAPI document
(shared.api.openapi) are made from it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from shared.api.asset_plan import AssetPlanAnswer
from shared.api.models import CatalogResponse, TargetsResponse
from shared.api.openapi_admin_routes import (
    MAPPING,
    MAPPINGS,
    RULE,
    RULES,
    SETUP_CHECK,
    SYNC_APPROVE,
    SYNC_NOW,
)
from shared.api.openapi_reports import CALENDAR, CHANGES, RECONCILIATION
from shared.api.openapi_spec import (
    OBJECT,
    TEXT,
    WEBHOOK_KEYS,
    Operation,
    Param,
    Response,
    Route,
    Schema,
    Selector,
)
from shared.api.problems import PROBLEM_JSON, Problem
from shared.api.tags import TagsAnswer
from shared.api.targets_query import MAX_VALUE
from shared.core.events import MAX_DEPTH, MAX_EVENTS
from shared.core.text import LOOKUP_PATTERN, RecordId
from shared.sync.status import SyncStatus

SelectorValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_VALUE, pattern=LOOKUP_PATTERN)
]

HTML = {"text/html": TEXT}
TAB_ERROR: dict[str, Schema] = {PROBLEM_JSON: Problem, "text/html": TEXT}
ETAG = "ETag"

TARGETS = Route(
    "/targets",
    (
        Operation(
            "get",
            "getTargets",
            summary="Clients entitled to a software, contract type or item, and why",
            params=(
                Selector(
                    "selector",
                    "Exactly one of software, contract_type or item, as its own query parameter.",
                    {
                        "software": (SelectorValue, "A rule's software name."),
                        "contract_type": (SelectorValue, "Ad hoc: a HaloPSA contract type name."),
                        "item": (
                            SelectorValue,
                            "Ad hoc: a recurring item's name, code, or id (1 and up).",
                        ),
                    },
                ),
                Param(
                    "expand",
                    "query",
                    Literal["computers"],
                    "`computers`: add each target tenant's ImmyBot computers; for a site-scoped "
                    "rule only those at the targets' sites (`computer_sites` says which site), "
                    "and the computers whose site is unknown (`unplaced`).",
                ),
                Param("If-None-Match", "header", str),
            ),
            answers={
                200: Response.json(TargetsResponse, "The targets", ETAG),
                304: Response("Unchanged since the ETag given", headers=(ETAG,)),
            },
            problems=(400, 404, 503),
        ),
    ),
)

CATALOG = Route(
    "/catalog",
    (
        Operation(
            "get",
            "getCatalog",
            summary="Contract types and recurring items in the current snapshot",
            answers={200: Response.json(CatalogResponse, "The catalogue")},
            problems=(503,),
        ),
    ),
)


OPENAPI = Route(
    "/openapi.json",
    (
        Operation(
            "get",
            "getOpenApi",
            summary="This document",
            answers={200: Response.json(OBJECT, "The OpenAPI 3.1 document")},
        ),
    ),
)


ASSET_PLAN = Route(
    "/assets/plan",
    (
        Operation(
            "get",
            "getAssetPlan",
            summary="The last asset run: creates, updates, links, ambiguities, gone",
            params=(Param("client_id", "query", RecordId, "Only this HaloPSA client's plan."),),
            answers={
                200: Response.json(
                    AssetPlanAnswer,
                    "The plan, per client with anything to do: the current generation's, or "
                    "until it is stored the last one (`current: false`)",
                ),
                404: Response.problem("No stored generation has an asset plan"),
            },
            problems=(400, 503),
        ),
    ),
)


TAGS = Route(
    "/immybot/tags",
    (
        Operation(
            "get",
            "getImmyBotTags",
            summary="Per rule: its ImmyBot tag, tenants carrying it, tenants that should, "
            "the planned changes and the last apply result",
            answers={200: Response.json(TagsAnswer, "The tags")},
            problems=(503,),
        ),
    ),
)

SYNC_STATUS = Route(
    "/sync/status",
    (
        Operation(
            "get",
            "getSyncStatus",
            answers={200: Response.json(SyncStatus, "Sync status")},
            problems=(503,),
        ),
    ),
)


TAB = Route(
    "/technician-tab/ticket/{ticket_id}",
    (
        Operation(
            "get",
            "getTechnicianTab",
            summary="The HTML page HaloPSA shows in a ticket's Custom Tab",
            description="An error is a problem (application/problem+json) unless the request's "
            "Accept names text/html, as a browser framing the tab does: then it is a page "
            "saying the same.",
            answers={
                200: Response("The tab", HTML),
                **{
                    status: Response(f"{why} (a problem, or an HTML page)", TAB_ERROR)
                    for status, why in (
                        (400, "Bad ticket id or query"),
                        (
                            403,
                            "Not in TAB_ALLOWED_GROUP, or App Service Authentication is off while "
                            "TAB_ALLOWED_GROUP is set",
                        ),
                        (404, "No such ticket in HaloPSA"),
                        (503, "Not configured or storage unavailable"),
                    )
                },
            },
        ),
    ),
    params=(
        Param("ticket_id", "path", RecordId, "The HaloPSA ticket id ($FAULTID).", required=True),
    ),
)

HALO_EVENTS = Route(
    "/halo/events",
    (
        Operation(
            "post",
            "receiveHaloEvents",
            summary="HaloPSA's outbound webhook: one queue message per client it names",
            description="No function key: HALO_WEBHOOK_SECRET as the Bearer token or the Basic "
            "password (any user name). The body is one HaloPSA webhook payload or a list of "
            f"them (at most {MAX_EVENTS}, 4 MiB, {MAX_DEPTH} levels deep); events of kinds "
            "the app does not know are counted and ignored (docs/halopsa-webhooks.md).",
            security=WEBHOOK_KEYS,
            body={"anyOf": [OBJECT, {"type": "array", "maxItems": MAX_EVENTS}]},
            answers={
                202: Response("Taken: counts of events, queued messages, ignored, unknown, "
                              "unusable", {"application/json": OBJECT}),
                400: Response.problem("Not JSON, not an event or a list, or nested too deeply"),
                401: Response.problem("No valid HALO_WEBHOOK_SECRET (WWW-Authenticate)"),
                404: Response.problem("The webhook is off: HALO_WEBHOOK_SECRET is unset"),
                413: Response.problem("Over 4 MiB, or more events than a delivery may hold"),
            },
        ),
    ),
)  # fmt: skip

# In the order the document lists them.
ROUTES: tuple[Route, ...] = (
    TARGETS,
    CATALOG,
    OPENAPI,
    RULES,
    RULE,
    RECONCILIATION,
    CALENDAR,
    CHANGES,
    ASSET_PLAN,
    MAPPINGS,
    MAPPING,
    TAGS,
    SYNC_NOW,
    SYNC_STATUS,
    SYNC_APPROVE,
    SETUP_CHECK,
    TAB,
    HALO_EVENTS,
)
