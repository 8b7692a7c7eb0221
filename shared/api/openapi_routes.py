"""Every route of the HTTP API, as typed specs: the paths of the OpenAPI document are made from
these (shared.api.openapi)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from shared.api.mappings import MappingsView
from shared.api.models import (
    CatalogResponse,
    RulesImported,
    RuleView,
    RuleWritten,
    TargetsResponse,
)
from shared.api.openapi_spec import (
    OBJECT,
    TEXT,
    Operation,
    Param,
    Response,
    Route,
    Schema,
    Selector,
    schema_of,
)
from shared.api.problems import PROBLEM_JSON, Problem
from shared.api.reconciliation import ReconciliationResponse
from shared.api.rules import PATCH_TYPES
from shared.api.setup_models import SetupReport
from shared.api.targets_query import MAX_VALUE
from shared.core.mapping import ExplicitMapping
from shared.core.rules import MAX_RULES, MAX_SOFTWARE, RuleSet
from shared.core.text import LOOKUP_MAX, LOOKUP_PATTERN, SOFTWARE_PATTERN, NameSchema, RecordId
from shared.sync.assets import AssetPlanView
from shared.sync.status import SyncStatus
from shared.sync.tags import TagsView

# What params.lookup_value accepts: leading, trailing and repeated spaces are collapsed.
Lookup = Annotated[
    str, StringConstraints(min_length=1, max_length=LOOKUP_MAX, pattern=LOOKUP_PATTERN)
]
SelectorValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_VALUE, pattern=LOOKUP_PATTERN)
]
# What a rule's software may be (shared.core.rules.SoftwareName): GET and DELETE of a name no
# rule can have answer 404.
Software = Annotated[str, NameSchema(MAX_SOFTWARE, SOFTWARE_PATTERN, visible=True)]

HTML = {"text/html": TEXT}
TAB_ERROR: dict[str, Schema] = {PROBLEM_JSON: Problem, "text/html": TEXT}
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
                Param("expand", "query", Literal["computers"]),
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
            f"more than {MAX_RULES} rules, or rules too large for storage together, are a 413, "
            "and nothing is stored.",
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
            summary="Create or replace a rule",
            description="A PUT replaces the whole rule: a member the body leaves out takes its "
            "default. The answer's `replaced` lists each member the rule before it held that is "
            "now dropped or changed, with its value before. To change some members only, PATCH.",
            body="RuleUpdate",
            answers={
                200: Response.json(RuleWritten, "Replaced"),
                201: Response.json(RuleWritten, "Created", LOCATION),
            },
            problems=(400, 409, 413, 503),
        ),
        Operation(
            "patch",
            "patchRule",
            summary="Change some members of a rule (JSON merge patch, RFC 7386)",
            description="A member the patch names takes its value (lists are replaced whole); "
            "null takes it back to its default; the rest stay. The result is validated as a "
            "PUT body is. Content-Type application/merge-patch+json or application/json.",
            body="RulePatch",
            body_types=PATCH_TYPES,
            answers={200: Response.json(RuleWritten, "Changed")},
            problems=(400, 404, 409, 413, 415, 422, 503),
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
            body="MappingUpdate",
            answers={
                200: Response.json(ExplicitMapping, "Replaced"),
                201: Response.json(ExplicitMapping, "Created"),
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


RECONCILIATION = Route(
    "/reconciliation",
    (
        Operation(
            "get",
            "getReconciliation",
            summary="Billed quantity against deployed computers, per client",
            params=(
                Param("software", "query", Lookup, "A rule's software name.", required=True),
                Param("format", "query", Literal["json", "csv"]),
            ),
            answers={
                200: Response(
                    "The report (JSON, or CSV with format=csv)",
                    {"application/json": ReconciliationResponse, "text/csv": TEXT},
                )
            },
            problems=(400, 404, 503),
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
                200: Response.json(AssetPlanView, "The plan, per client with anything to do"),
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
            summary="Per rule: its ImmyBot tag, tenants carrying it, tenants that should, "
            "the planned changes and the last apply result",
            answers={200: Response.json(TagsView, "The tags")},
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
            summary="Make the held generation current, or approve a rule's held tag removal "
            "(master key)",
            admin=True,
            params=(
                Param("run_id", "query", str, "Approve only if this run is the one held."),
                Param(
                    "tag",
                    "query",
                    Lookup,
                    "A rule's software: approve its held ImmyBot tag removal instead (the next "
                    "sync makes it); 404 when no rule has that name.",
                ),
            ),
            answers={
                200: Response(
                    "Approved: the new status, or with tag the removal approved",
                    {
                        "application/json": {
                            "oneOf": [schema_of(SyncStatus), schema_of("HeldRemoval")]
                        }
                    },
                )
            },
            problems=(400, 404, 409, 503),
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

# In the order the document lists them.
ROUTES: tuple[Route, ...] = (
    TARGETS,
    CATALOG,
    OPENAPI,
    RULES,
    RULE,
    RECONCILIATION,
    ASSET_PLAN,
    MAPPINGS,
    MAPPING,
    TAGS,
    SYNC_NOW,
    SYNC_STATUS,
    SYNC_APPROVE,
    SETUP_CHECK,
    TAB,
)
