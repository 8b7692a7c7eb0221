"""Every route of the HTTP API, as typed specs: the paths of the OpenAPI document are made from
these (shared.api.openapi)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.api.mappings import MappingsView
from shared.api.models import CatalogResponse, RulesImported, RuleView, TargetsResponse
from shared.api.openapi_spec import OBJECT, TEXT, Operation, Param, Response, Route, Selector
from shared.api.reconciliation import ReconciliationResponse
from shared.api.setup_models import SetupReport
from shared.api.targets_query import MAX_VALUE
from shared.core.mapping import ExplicitMapping
from shared.core.rules import MAX_RULES, MAX_SOFTWARE, RuleSet
from shared.core.text import INT32_MAX, LOOKUP_MAX, LOOKUP_PATTERN, SOFTWARE_PATTERN
from shared.sync.assets import AssetPlanView
from shared.sync.status import SyncStatus
from shared.sync.tags_view import TagsView

# What params.lookup_value accepts: leading, trailing and repeated spaces are collapsed.
Lookup = Annotated[
    str, StringConstraints(min_length=1, max_length=LOOKUP_MAX, pattern=LOOKUP_PATTERN)
]
SelectorValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_VALUE, pattern=LOOKUP_PATTERN)
]
Software = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SOFTWARE, pattern=SOFTWARE_PATTERN)
]
# What params.record_id accepts.
RecordId = Annotated[int, Field(ge=1, le=INT32_MAX)]

HTML = {"text/html": TEXT}
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
            "rules too large for storage together are a 413, and nothing is stored.",
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
            summary="Per client: billed quantity, targeted computers and computers with the "
            "software installed, their differences and the money at stake",
            description="Every number is as of the current sync (ImmyBot's inventory is read by "
            "the sync, never by this call). at_stake = installed_minus_quantity x unit_price: "
            "positive, installs not billed; negative, billed seats with no install. The CSV has "
            "one column per JSON row field, numbers only in number columns (empty: not known; "
            "quantity_status and installed_unknown say why).",
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
