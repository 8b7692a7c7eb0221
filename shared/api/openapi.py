"""The OpenAPI 3.1 document of the JSON API, generated from the same pydantic models it answers
with and from the typed route table (shared.api.openapi_routes)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.mappings import MappingsView
from shared.api.models import CatalogResponse, RulesImported, RuleView, TargetsResponse
from shared.api.openapi_routes import ROUTES
from shared.api.openapi_spec import KEYS, REF
from shared.api.problems import Problem
from shared.api.reconciliation import ReconciliationResponse
from shared.api.setup_models import SetupReport
from shared.core.mapping import ExplicitMapping
from shared.core.rules import Rule, RuleSet
from shared.sync.assets import AssetPlanView
from shared.sync.status import SyncStatus
from shared.sync.tags_view import TagsView

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
DESCRIPTION = (
    "Deployment targets from HaloPSA billing data, for ImmyBot. Every route takes a function key "
    "(header x-functions-key, or query code); /sync, /sync/approve and /setup/check take the "
    "master (admin) key."
)
SECURITY_SCHEMES = {
    "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
    "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
}


def _without_required(schema: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """A request body schema: the model's, with the member the URL already gives optional."""
    body = copy.deepcopy(schema)
    body["required"] = [r for r in body.get("required", []) if r != name]
    body["title"] = body.get("title", "") + " (body)"
    body["description"] = description
    return body


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
    components["MappingUpdate"] = _without_required(
        components["ExplicitMapping"],
        "halo_client_id",
        "A mapping, as PUT to /mappings/{halo_client_id}: `halo_client_id` may be left out; if "
        "given it must be the URL's, else the answer is 409.",
    )
    return components


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document; built once per process."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "halo-immy", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/api"}],
        "security": KEYS,
        "paths": {route.path: route.render() for route in ROUTES},
        "components": {"schemas": _schemas(), "securitySchemes": SECURITY_SCHEMES},
    }
