"""The admin routes of the HTTP API as typed specs (rules, mappings, sync and approval, the setup
check), beside the read routes of shared.api.openapi_routes, which lists them all."""

from __future__ import annotations

from typing import Annotated

from shared.api.mappings import MappingSaved, MappingsView
from shared.api.models import RulesImported, RuleView, RuleWritten
from shared.api.openapi_spec import OBJECT, Operation, Param, Response, Route, schema_of
from shared.api.params import Lookup
from shared.api.rules import PATCH_TYPES
from shared.api.setup_models import SetupReport
from shared.core.rules import MAX_RULES, MAX_SOFTWARE, RuleSet
from shared.core.text import SOFTWARE_PATTERN, NameSchema, RecordId
from shared.sync.status import SyncStatus

# What a rule's software may be (shared.core.rules.SoftwareName): GET and DELETE of a name no
# rule can have answer 404.
Software = Annotated[str, NameSchema(MAX_SOFTWARE, SOFTWARE_PATTERN, visible=True)]
LOCATION = "Location"
UNKNOWN_IDS = (
    "Ids a rule names (exclude_clients, site_ids) that the current snapshot shows cannot exist "
    "(missing, yet at or below the newest id it holds of their kind) are a 409 `unknown-ids` and "
    "nothing is stored; ids above that (perhaps newer than the snapshot), or with no snapshot to "
    "check against, are stored and named in the rule's `warnings`."
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
            "and nothing is stored. " + UNKNOWN_IDS,
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
            "now dropped or changed, with its value before. To change some members only, PATCH. "
            + UNKNOWN_IDS,
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
