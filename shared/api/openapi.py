"""The OpenAPI 3.1 document of the JSON API, generated from the same pydantic models it answers with."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.mappings import MappingsView
from shared.api.models import CatalogResponse, RulesImported, RuleView, TargetsResponse
from shared.api.problems import PROBLEM_JSON, Problem
from shared.api.reconciliation import ReconciliationResponse
from shared.api.setup_models import SetupReport
from shared.api.targets_query import MAX_VALUE, QUERY_KINDS
from shared.core.mapping import ExplicitMapping
from shared.core.rules import MAX_RULES, MAX_SOFTWARE, Rule, RuleSet
from shared.core.text import INT32_MAX, LOOKUP_MAX, LOOKUP_PATTERN, SOFTWARE_PATTERN
from shared.sync.assets import AssetPlanView
from shared.sync.run import SyncStatus
from shared.sync.tags import TagsView

REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (
    TargetsResponse,
    CatalogResponse,
    RuleView,
    RulesImported,
    RuleSet,
    Rule,
    SyncStatus,
    ReconciliationResponse,
    AssetPlanView,
    MappingsView,
    ExplicitMapping,
    TagsView,
    SetupReport,
    Problem,
)


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(model: type[BaseModel] | str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
        **extra,
    }


def _body(model: type[BaseModel] | str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


REASONS = {
    400: "Missing, conflicting or malformed parameters or body",
    404: "Unknown software, contract type, item, rule, mapping or ticket",
    409: "Conflicts: the body names another resource than the URL, a software twice, or "
    "nothing is held to approve",
    413: "Body too large, or more rules than storage holds",
    503: "No snapshot yet, storage unavailable, or the app is not configured (Retry-After)",
}
UNAUTHORIZED = {"401": {"description": "No valid function key (the host answers, with no body)"}}


def _problems(*statuses: int) -> dict[str, Any]:
    problems = {
        str(s): {"description": REASONS[s], "content": {PROBLEM_JSON: {"schema": _ref(Problem)}}}
        for s in statuses
    }
    return {**UNAUTHORIZED, **problems}


def _lookup(name: str, description: str, where: str = "query", required: bool = False) -> Any:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": _lookup_schema(),
    }


def _lookup_schema(max_length: int = LOOKUP_MAX) -> dict[str, Any]:
    # What inputs.lookup_value accepts: leading, trailing and repeated spaces are collapsed.
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": LOOKUP_PATTERN}


def _id_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
    }


SOFTWARE_PATH = {
    "name": "software",
    "in": "path",
    "required": True,
    "description": "The rule's software name (case-insensitive).",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_SOFTWARE,
        "pattern": SOFTWARE_PATTERN,
    },
}

# Exactly one of the three selectors, given as query parameters of their own (form, exploded).
SELECTOR = {
    "name": "selector",
    "in": "query",
    "required": True,
    "style": "form",
    "explode": True,
    "description": "Exactly one of software, contract_type or item, as its own query parameter.",
    "schema": {
        "type": "object",
        "properties": {
            "software": {**_lookup_schema(MAX_VALUE), "description": "A rule's software name."},
            "contract_type": {
                **_lookup_schema(MAX_VALUE),
                "description": "Ad hoc: a HaloPSA contract type name.",
            },
            "item": {
                **_lookup_schema(MAX_VALUE),
                "description": "Ad hoc: a recurring item's name, code, or id (1 and up).",
            },
        },
        "additionalProperties": False,
        "oneOf": [{"required": [kind]} for kind in QUERY_KINDS],
    },
}

HTML = {"text/html": {"schema": {"type": "string"}}}


def _without_required(schema: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """A request body schema: the model's, with the member the URL already gives optional."""
    body = copy.deepcopy(schema)
    body["required"] = [r for r in body.get("required", []) if r != name]
    body["title"] = body.get("title", "") + " (body)"
    body["description"] = description
    return body


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document; built once per process."""
    _, schemas = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    components = schemas["$defs"]
    components["RuleUpdate"] = _without_required(
        components["Rule"],
        "software",
        "A rule, as PUT to /rules/{software}: `software` may be left out; if given it must name "
        "the URL's software (ignoring case and spacing), else the answer is 409.",
    )
    components["MappingUpdate"] = _without_required(
        components["ExplicitMapping"],
        "halo_client_id",
        "A mapping, as PUT to /mappings/{halo_client_id}: `halo_client_id` may be left out; if "
        "given it must be the URL's, else the answer is 409.",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "halo-immy",
            "version": "1.0.0",
            "description": "Deployment targets from HaloPSA billing data, for ImmyBot. Every "
            "route takes a function key (header x-functions-key, or query code); /sync, "
            "/sync/approve and /setup/check take the master (admin) key.",
        },
        "servers": [{"url": "/api"}],
        "security": KEYS,
        "paths": {
            "/targets": {
                "get": {
                    "operationId": "getTargets",
                    "summary": "Clients entitled to a software, contract type or item, and why",
                    "parameters": [
                        SELECTOR,
                        {
                            "name": "expand",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["computers"]},
                        },
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json(TargetsResponse, "The targets", headers=ETAG),
                        "304": {"description": "Unchanged since the ETag given", "headers": ETAG},
                        **_problems(400, 404, 503),
                    },
                }
            },
            "/catalog": {
                "get": {
                    "operationId": "getCatalog",
                    "summary": "Contract types and recurring items in the current snapshot",
                    "responses": {"200": _json(CatalogResponse, "The catalogue"), **_problems(503)},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **UNAUTHORIZED,
                    },
                }
            },
            "/rules": {
                "get": {
                    "operationId": "exportRules",
                    "summary": "Every rule, in the import format",
                    "responses": {"200": _json(RuleSet, "The rule set"), **_problems(503)},
                },
                "put": {
                    "operationId": "importRules",
                    "summary": "Replace every rule with a rule set (all or nothing)",
                    "description": f"At most {MAX_RULES} rules, each software once (a second "
                    "one is a 409); rules too large for storage together are a 413, and nothing "
                    "is stored.",
                    "requestBody": _body(RuleSet),
                    "responses": {
                        "200": _json(RulesImported, "What changed"),
                        **_problems(400, 409, 413, 503),
                    },
                },
            },
            "/rules/{software}": {
                "parameters": [SOFTWARE_PATH],
                "get": {
                    "operationId": "getRule",
                    "responses": {"200": _json(RuleView, "The rule"), **_problems(400, 404, 503)},
                },
                "put": {
                    "operationId": "putRule",
                    "requestBody": _body("RuleUpdate"),
                    "responses": {
                        "200": _json(RuleView, "Replaced"),
                        "201": _json(RuleView, "Created", headers=LOCATION),
                        **_problems(400, 409, 413, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteRule",
                    "responses": {"204": {"description": "Deleted"}, **_problems(400, 404, 503)},
                },
            },
            "/reconciliation": {
                "get": {
                    "operationId": "getReconciliation",
                    "summary": "Billed quantity against deployed computers, per client",
                    "parameters": [
                        _lookup("software", "A rule's software name.", required=True),
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["json", "csv"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The report (JSON, or CSV with format=csv)",
                            "content": {
                                "application/json": {"schema": _ref(ReconciliationResponse)},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_problems(400, 404, 503),
                    },
                }
            },
            "/assets/plan": {
                "get": {
                    "operationId": "getAssetPlan",
                    "summary": "The last asset run: creates, updates, links, ambiguities, gone",
                    "parameters": [
                        {
                            "name": "client_id",
                            "in": "query",
                            "required": False,
                            "description": "Only this HaloPSA client's plan.",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "responses": {
                        "200": _json(AssetPlanView, "The plan, per client with anything to do"),
                        "404": {
                            "description": "No asset plan for the current generation",
                            "content": {PROBLEM_JSON: {"schema": _ref(Problem)}},
                        },
                        **_problems(400, 503),
                    },
                }
            },
            "/mappings": {
                "get": {
                    "operationId": "listMappings",
                    "summary": "Explicit client -> tenant mappings and every client's outcome",
                    "responses": {"200": _json(MappingsView, "The mappings"), **_problems(503)},
                }
            },
            "/mappings/{halo_client_id}": {
                "parameters": [_id_param("halo_client_id", "The HaloPSA client id.")],
                "put": {
                    "operationId": "putMapping",
                    "requestBody": _body("MappingUpdate"),
                    "responses": {
                        "200": _json(ExplicitMapping, "Replaced"),
                        "201": _json(ExplicitMapping, "Created"),
                        **_problems(400, 409, 413, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteMapping",
                    "responses": {"204": {"description": "Deleted"}, **_problems(400, 404, 503)},
                },
            },
            "/immybot/tags": {
                "get": {
                    "operationId": "getImmyBotTags",
                    "summary": "Per rule: its ImmyBot tag, tenants carrying it, tenants that "
                    "should, the planned changes and the last apply result",
                    "responses": {
                        "200": _json(TagsView, "The tags"),
                        **_problems(503),
                        **UNAUTHORIZED,
                    },
                }
            },
            "/sync": {
                "post": {
                    "operationId": "startSync",
                    "summary": "Queue one sync now (master key)",
                    "security": ADMIN_KEYS,
                    "responses": {
                        "202": {
                            "description": "Queued; see /sync/status",
                            "headers": LOCATION,
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **UNAUTHORIZED,
                    },
                }
            },
            "/sync/status": {
                "get": {
                    "operationId": "getSyncStatus",
                    "responses": {"200": _json(SyncStatus, "Sync status"), **_problems(503)},
                }
            },
            "/sync/approve": {
                "post": {
                    "operationId": "approveSync",
                    "summary": "Make the held generation current (master key)",
                    "security": ADMIN_KEYS,
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "query",
                            "required": False,
                            "description": "Approve only if this run is the one held.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(SyncStatus, "Approved: the new status"),
                        **_problems(409, 503),
                    },
                }
            },
            "/setup/check": {
                "get": {
                    "operationId": "checkSetup",
                    "summary": "Check every setting, permission and connection once (master key)",
                    "description": "One line per requirement (ok, missing, failed, skipped) with "
                    "how to fix it, and the HaloPSA Custom Tab URL. Always 200: `ok` says whether "
                    "every required check passed.",
                    "security": ADMIN_KEYS,
                    "responses": {
                        "200": _json(SetupReport, "The checks"),
                        **UNAUTHORIZED,
                    },
                }
            },
            "/technician-tab/ticket/{ticket_id}": {
                "parameters": [_id_param("ticket_id", "The HaloPSA ticket id ($FAULTID).")],
                "get": {
                    "operationId": "getTechnicianTab",
                    "summary": "The HTML page HaloPSA shows in a ticket's Custom Tab",
                    "responses": {
                        "200": {"description": "The tab", "content": HTML},
                        **UNAUTHORIZED,
                        **{
                            str(status): {"description": why, "content": HTML}
                            for status, why in (
                                (400, "Bad ticket id (an HTML page)"),
                                (
                                    403,
                                    "Not in TAB_ALLOWED_GROUP, or App Service Authentication "
                                    "is off while TAB_ALLOWED_GROUP is set (an HTML page)",
                                ),
                                (404, "No such ticket in HaloPSA (an HTML page)"),
                                (503, "Not configured or storage unavailable (an HTML page)"),
                            )
                        },
                    },
                },
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


KEYS: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]
# The same header or query parameter, holding the master key.
ADMIN_KEYS = KEYS
ETAG = {"ETag": {"schema": {"type": "string"}, "required": True}}
LOCATION = {"Location": {"schema": {"type": "string"}, "required": True}}
