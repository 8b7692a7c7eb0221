"""The OpenAPI 3.1 document of the JSON API, generated from the same pydantic models it answers with."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api_models import CatalogResponse, RulesImported, RuleView, TargetsResponse
from shared.asset_sync import AssetPlanView
from shared.immy_tags import TagsView
from shared.mapping import ExplicitMapping
from shared.mapping_admin import MappingsView
from shared.problems import PROBLEM_JSON, Problem
from shared.reconciliation import ReconciliationResponse
from shared.rules import Rule, RuleSet
from shared.sync import SyncStatus

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
    Problem,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Missing, conflicting or malformed parameters or body",
        404: "Unknown software, contract type, item or rule",
        409: "Nothing to act on",
        413: "Body too large",
        503: "No snapshot yet, storage unavailable, or the app is not configured",
    }
    return {
        str(s): {"description": reasons[s], "content": {PROBLEM_JSON: {"schema": _ref(Problem)}}}
        for s in statuses
    }


def _param(
    name: str, description: str, where: str = "query", required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }


SOFTWARE_PATH = _param("software", "The rule's software name (case-insensitive).", "path", True)


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document; built once per process."""
    _, schemas = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "halo-immy",
            "version": "1.0.0",
            "description": "Deployment targets from HaloPSA billing data, for ImmyBot.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}],
        "paths": {
            "/targets": {
                "get": {
                    "operationId": "getTargets",
                    "summary": "Clients entitled to a software, contract type or item, and why",
                    "parameters": [
                        _param("software", "A rule's software name."),
                        _param("contract_type", "Ad hoc: a HaloPSA contract type name."),
                        _param("item", "Ad hoc: a recurring item's name, code or id."),
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
                        "200": {
                            **_json(TargetsResponse, "The targets"),
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "Unchanged since the ETag given"},
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
            "/rules": {
                "get": {
                    "operationId": "exportRules",
                    "summary": "Every rule, in the import format",
                    "responses": {"200": _json(RuleSet, "The rule set"), **_problems(503)},
                },
                "put": {
                    "operationId": "importRules",
                    "summary": "Replace every rule with a rule set",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(RuleSet)}},
                    },
                    "responses": {
                        "200": _json(RulesImported, "What changed"),
                        **_problems(400, 413, 503),
                    },
                },
            },
            "/rules/{software}": {
                "parameters": [SOFTWARE_PATH],
                "get": {
                    "operationId": "getRule",
                    "responses": {"200": _json(RuleView, "The rule"), **_problems(404, 503)},
                },
                "put": {
                    "operationId": "putRule",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(Rule)}},
                    },
                    "responses": {
                        "200": _json(RuleView, "Replaced"),
                        "201": _json(RuleView, "Created"),
                        **_problems(400, 413, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteRule",
                    "responses": {"204": {"description": "Deleted"}, **_problems(404, 503)},
                },
            },
            "/reconciliation": {
                "get": {
                    "operationId": "getReconciliation",
                    "summary": "Billed quantity against deployed computers, per client",
                    "parameters": [
                        _param("software", "A rule's software name.", required=True),
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
                "parameters": [_param("halo_client_id", "The HaloPSA client id.", "path", True)],
                "put": {
                    "operationId": "putMapping",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ExplicitMapping)}},
                    },
                    "responses": {
                        "200": _json(ExplicitMapping, "Replaced"),
                        "201": _json(ExplicitMapping, "Created"),
                        **_problems(400, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteMapping",
                    "responses": {"204": {"description": "Deleted"}, **_problems(404, 503)},
                },
            },
            "/immybot/tags": {
                "get": {
                    "operationId": "getImmyBotTags",
                    "summary": "Per rule: its ImmyBot tag, tenants carrying it, tenants that "
                    "should, the planned changes and the last apply result",
                    "responses": {"200": _json(TagsView, "The tags"), **_problems(503)},
                }
            },
            "/sync/status": {
                "get": {
                    "operationId": "getSyncStatus",
                    "responses": {"200": _json(SyncStatus, "Sync status"), **_problems(503)},
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
            },
        },
    }
