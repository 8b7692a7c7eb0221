"""The OpenAPI 3.1 document of the JSON API, generated from the same pydantic models it answers
with and from the typed route table (shared.api.openapi_routes)."""

from __future__ import annotations

import copy
import unicodedata
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.asset_plan import AssetPlanAnswer
from shared.api.calendar import CalendarResponse
from shared.api.changes import ChangesResponse
from shared.api.mappings import MappingSaved, MappingsView, NamedMapping
from shared.api.models import (
    CatalogResponse,
    RulesImported,
    RuleView,
    RuleWritten,
    TargetsResponse,
)
from shared.api.openapi_routes import ROUTES
from shared.api.openapi_spec import KEYS, REF
from shared.api.problems import Problem
from shared.api.reconciliation import ReconciliationResponse
from shared.api.setup_models import SetupReport
from shared.api.tags import TagsAnswer
from shared.core.mapping import ExplicitMapping
from shared.core.rules import Rule, RuleSet
from shared.core.text import visible_pattern
from shared.sync.status import SyncStatus

MODELS: tuple[type[BaseModel], ...] = (
    TargetsResponse,
    CatalogResponse,
    RuleView,
    RuleWritten,
    RulesImported,
    RuleSet,
    Rule,
    SyncStatus,
    ReconciliationResponse,
    CalendarResponse,
    ChangesResponse,
    AssetPlanAnswer,
    MappingsView,
    NamedMapping,
    ExplicitMapping,
    TagsAnswer,
    MappingSaved,
    SetupReport,
    Problem,
)
DESCRIPTION = (
    "Deployment targets from HaloPSA billing data, for ImmyBot. Every route takes a function key "
    "(header x-functions-key, or query code); /sync, /sync/approve and /setup/check take the "
    "master (admin) key; /halo/events, HaloPSA's webhook, takes its own secret instead."
)
VISIBLE_NAME = "VisibleName"
VISIBLE_TEXT = (
    "A name that becomes ImmyBot or HaloPSA text holds no control, format (invisible, or "
    "reordering text: U+200B, U+202E), surrogate, private-use or unassigned character (Unicode "
    f"categories Cc, Cf, Cs, Co, Cn, as of Unicode {unicodedata.unidata_version}). Emoji are "
    "assigned characters and pass; the U+200D joining an emoji sequence does not."
)
SECURITY_SCHEMES = {
    "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
    "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
    "webhookBearer": {"type": "http", "scheme": "bearer", "description": "HALO_WEBHOOK_SECRET"},
    "webhookBasic": {"type": "http", "scheme": "basic", "description": "password: the secret"},
}


def _without_required(schema: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """A request body schema: the model's, with the member the URL already gives optional."""
    body = copy.deepcopy(schema)
    body["required"] = [r for r in body.get("required", []) if r != name]
    body["title"] = body.get("title", "") + " (body)"
    body["description"] = description
    return body


def _patch_of(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of a model: any of its members, each its own type or null (which
    takes it back to its default); what the merged whole must be is the model's."""
    properties = {
        name: {"anyOf": [member, {"type": "null"}]}
        for name, member in copy.deepcopy(schema["properties"]).items()
    }
    return {
        "type": "object",
        "title": schema.get("title", "") + " (merge patch)",
        "description": "A JSON merge patch (RFC 7386) of a rule, as PATCH to /rules/{software}.",
        "properties": properties,
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    """Every model's schema, and the PUT bodies that may leave out what the URL names."""
    _, schemas = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    components: dict[str, Any] = schemas["$defs"]
    components["RuleUpdate"] = _without_required(
        components["Rule"],
        "software",
        "A rule, as PUT to /rules/{software}: `software` may be left out; if given it must name "
        "the URL's software (ignoring case and spacing), else the answer is 409.",
    )
    components["RulePatch"] = _patch_of(components["Rule"])
    components["MappingUpdate"] = _without_required(
        components["ExplicitMapping"],
        "halo_client_id",
        "A mapping, as PUT to /mappings/{halo_client_id}: `halo_client_id` may be left out; if "
        "given it must be the URL's, else the answer is 409.",
    )
    return components


def _one_visible_name(node: Any, shared: dict[str, Any]) -> Any:
    """`node` with each name's visible-character pattern (5 KB of character class) replaced by
    a reference to `shared`, the one component that states it."""
    if node == shared:
        return {"$ref": REF.format(model=VISIBLE_NAME)}
    if isinstance(node, dict):
        return {k: _one_visible_name(v, shared) for k, v in node.items()}
    if isinstance(node, list):
        return [_one_visible_name(v, shared) for v in node]
    return node


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document; built once per process."""
    visible = {"pattern": visible_pattern()}
    document = {
        "openapi": "3.1.0",
        "info": {"title": "halo-immy", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/api"}],
        "security": KEYS,
        "paths": {route.path: route.render() for route in ROUTES},
        "components": {"schemas": _schemas(), "securitySchemes": SECURITY_SCHEMES},
    }
    shared: dict[str, Any] = _one_visible_name(document, visible)
    shared["components"]["schemas"][VISIBLE_NAME] = {
        "type": "string",
        **visible,
        "description": VISIBLE_TEXT,
    }
    return shared
