"""Every route of the HTTP API, as typed specs: the paths of the OpenAPI document are made from
these (shared.api.openapi)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.api.asset_plan import AssetPlanAnswer
from shared.api.mappings import MappingSaved, MappingsView
from shared.api.models import CatalogResponse, RulesImported, RuleView, TargetsResponse
from shared.api.openapi_reports import CALENDAR, CHANGES, RECONCILIATION
from shared.api.openapi_spec import (
    OBJECT,
    TEXT,
    WEBHOOK_KEYS,
    Operation,
    Param,
    Response,
    Route,
    Selector,
)
from shared.api.setup_models import SetupReport
from shared.api.tags import TagsAnswer
from shared.api.targets_query import MAX_VALUE
from shared.core.events import MAX_DEPTH, MAX_EVENTS
from shared.core.rules import MAX_RULES, MAX_SOFTWARE, RuleSet
from shared.core.text import INT32_MAX, LOOKUP_PATTERN, SOFTWARE_PATTERN
from shared.sync.status import SyncStatus

SelectorValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_VALUE, pattern=LOOKUP_PATTERN)
]
Software = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SOFTWARE, pattern=SOFTWARE_PATTERN)
]
# What params.record_id accepts.
RecordId = Annotated[int, Field(ge=1, le=INT32_MAX)]

HTML = {"text/html": TEXT}
UNKNOWN_IDS = (
    "Ids a rule names (exclude_clients, site_ids) that the current snapshot shows cannot exist "
    "(missing, yet at or below the newest id it holds of their kind) are a 409 `unknown-ids` and "
    "nothing is stored; ids above that (perhaps newer than the snapshot), or with no snapshot to "
    "check against, are stored and named in the rule's `warnings`."
)
ETAG, LOCATION = "ETag", "Location"

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

RULES = Route(
    "/rules",
    (
        Operation(
            "get",
            "exportRules",
            summary="Every rule, in the import format",
            answers={200: Response.json(RuleSet, "The rule set")},
            problems=(503,),
        ),
        Operation(
            "put",
            "importRules",
            summary="Replace every rule with a rule set (all or nothing)",
            description=f"At most {MAX_RULES} rules, each software once (a second one is a 409); "
            "rules too large for storage together are a 413, and nothing is stored. " + UNKNOWN_IDS,
            body=RuleSet,
            answers={200: Response.json(RulesImported, "What changed")},
            problems=(400, 409, 413, 503),
        ),
    ),
)

RULE = Route(
    "/rules/{software}",
    (
        Operation(
            "get",
            "getRule",
            answers={200: Response.json(RuleView, "The rule")},
            problems=(400, 404, 503),
        ),
        Operation(
            "put",
            "putRule",
            description=UNKNOWN_IDS,
            body="RuleUpdate",
            answers={
                200: Response.json(RuleView, "Replaced"),
                201: Response.json(RuleView, "Created", LOCATION),
            },
            problems=(400, 409, 413, 503),
        ),
        Operation(
            "delete", "deleteRule", answers={204: Response("Deleted")}, problems=(400, 404, 503)
        ),
    ),
    params=(
        Param(
            "software",
            "path",
            Software,
            "The rule's software name (case-insensitive).",
            required=True,
        ),
    ),
)

MAPPINGS = Route(
    "/mappings",
    (
        Operation(
            "get",
            "listMappings",
            summary="Explicit client -> tenant mappings and every client's outcome",
            answers={200: Response.json(MappingsView, "The mappings")},
            problems=(503,),
        ),
    ),
)

MAPPING = Route(
    "/mappings/{halo_client_id}",
    (
        Operation(
            "put",
            "putMapping",
            description="A HaloPSA client or ImmyBot tenant the current snapshot shows cannot "
            "exist (missing, yet at or below the newest id it holds of its kind) is a 409 "
            "`unknown-ids`; one above that (perhaps newer than the snapshot), or with nothing to "
            "check against, is stored and named in `warnings`.",
            body="MappingUpdate",
            answers={
                200: Response.json(MappingSaved, "Replaced"),
                201: Response.json(MappingSaved, "Created"),
            },
            problems=(400, 409, 413, 503),
        ),
        Operation(
            "delete", "deleteMapping", answers={204: Response("Deleted")}, problems=(400, 404, 503)
        ),
    ),
    params=(Param("halo_client_id", "path", RecordId, "The HaloPSA client id.", required=True),),
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
                200: Response.json(AssetPlanAnswer, "The plan, per client with anything to do"),
                404: Response.problem("No asset plan for the current generation"),
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
            summary="Per rule: its ImmyBot tag, the tenants (or, site-scoped, computers) carrying "
            "it and that should, the planned changes and the last apply result",
            answers={200: Response.json(TagsAnswer, "The tags")},
            problems=(503,),
        ),
    ),
)

SYNC_NOW = Route(
    "/sync",
    (
        Operation(
            "post",
            "startSync",
            summary="Queue one sync now (master key)",
            admin=True,
            answers={
                202: Response("Queued; see /sync/status", {"application/json": OBJECT}, (LOCATION,))
            },
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


SYNC_APPROVE = Route(
    "/sync/approve",
    (
        Operation(
            "post",
            "approveSync",
            summary="Make the held generation current (master key)",
            admin=True,
            params=(Param("run_id", "query", str, "Approve only if this run is the one held."),),
            answers={200: Response.json(SyncStatus, "Approved: the new status")},
            problems=(409, 503),
        ),
    ),
)


SETUP_CHECK = Route(
    "/setup/check",
    (
        Operation(
            "get",
            "checkSetup",
            summary="Check every setting, permission and connection once (master key)",
            description="One line per requirement (ok, missing, failed, skipped) with how to "
            "fix it, and the HaloPSA Custom Tab URL. Always 200: `ok` says whether every "
            "required check passed.",
            admin=True,
            answers={200: Response.json(SetupReport, "The checks")},
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
            answers={
                200: Response("The tab", HTML),
                400: Response("Bad ticket id (an HTML page)", HTML),
                403: Response(
                    "Not in TAB_ALLOWED_GROUP, or App Service Authentication is off while "
                    "TAB_ALLOWED_GROUP is set (an HTML page)",
                    HTML,
                ),
                404: Response("No such ticket in HaloPSA (an HTML page)", HTML),
                503: Response("Not configured or storage unavailable (an HTML page)", HTML),
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
