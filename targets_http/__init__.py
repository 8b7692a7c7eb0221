"""HTTP blueprint of the JSON API: targets and catalogue (for ImmyBot), rules admin, and the
setup check (master key).

Rules live in a function of their own, so the key ImmyBot holds for `targets` cannot edit them.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import azure.functions as func

from shared.api.admin import admin_reply
from shared.api.asset_plan import asset_plan_reply, plan_client
from shared.api.catalog import answer_catalog
from shared.api.openapi import openapi_document
from shared.api.reconciliation import reconcile, reconciliation_query, reconciliation_reply
from shared.api.replies import JSON, Reply, json_reply, log_api_call, observed
from shared.api.setup import request_host, run_checks
from shared.api.targets import answer_targets
from shared.api.targets_query import parse_targets_query
from shared.settings import get_settings
from shared.store.repository import get_store
from shared.sync.tags_view import tags_view

bp = func.Blueprint()


def _respond(
    req: func.HttpRequest, function: str, answer: Callable[[], Reply]
) -> func.HttpResponse:
    reply = observed(function, req.method, req.params, answer)
    return func.HttpResponse(**reply.as_kwargs())


@bp.function_name("targets")
@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def targets(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/targets?software=` (or `contract_type=` / `item=`): targets with reasons."""

    def answer() -> Reply:
        query = parse_targets_query(req.params)
        result = answer_targets(get_store(), query, req.headers.get("If-None-Match"))
        headers = {"ETag": result.etag, "Cache-Control": "private, no-cache"}
        if result.body is None:
            return Reply(304, headers=headers)
        return Reply(200, result.body, JSON, headers)

    return _respond(req, "targets", answer)


@bp.function_name("catalog")
@bp.route(route="catalog", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def catalog(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/catalog`: contract types and recurring items, with client counts."""
    return _respond(req, "catalog", lambda: json_reply(answer_catalog(get_store())))


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/openapi.json`: the OpenAPI 3.1 document of this API."""
    return func.HttpResponse(json.dumps(openapi_document()), mimetype=JSON)


@bp.function_name("reconciliation")
@bp.route(route="reconciliation", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def reconciliation(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/reconciliation?software=NAME[&format=csv]`: billed, targeted and installed per
    client."""

    def answer() -> Reply:
        software, output = reconciliation_query(req.params)
        report = reconcile(get_store(), software, get_settings().immy_stale_days)
        return reconciliation_reply(report, output)

    return _respond(req, "reconciliation", answer)


@bp.function_name("immybot_tags")
@bp.route(route="immybot/tags", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def immybot_tags(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/immybot/tags`: per rule, its ImmyBot tag, carriers, targets, plan, last result."""
    return _respond(req, "immybot_tags", lambda: json_reply(tags_view(get_store(), get_settings())))


@bp.function_name("assets_plan")
@bp.route(route="assets/plan", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def assets_plan(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/assets/plan[?client_id=]`: the last asset run's creates, updates, links,
    ambiguities and gone computers per client."""

    def answer() -> Reply:
        client_id = plan_client(req.params.get("client_id"))
        return asset_plan_reply(get_store(), client_id)

    return _respond(req, "assets_plan", answer)


@bp.function_name("setup_check")
@bp.route(route="setup/check", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def setup_check(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/setup/check` (master key): every requirement checked, one line each, and the
    HaloPSA Custom Tab URL. Always 200: a failed check is a line of the answer, not an error."""
    started = time.perf_counter()
    host = request_host(req.url, req.headers.get("Host"))
    reply = json_reply(
        await run_checks(load=get_settings, host=host), headers={"Cache-Control": "no-store"}
    )
    log_api_call("setup_check", req.method, reply.status, started, req.params)
    return func.HttpResponse(**reply.as_kwargs())


# One function, so one key, for both admin areas; the key ImmyBot holds for `targets` opens neither.
@bp.function_name("rules")
@bp.route(
    route="{area:regex(^(rules|mappings)$)}/{key?}",
    methods=["GET", "PUT", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
def admin(req: func.HttpRequest) -> func.HttpResponse:
    """Rules: `GET|PUT /api/rules`, `GET|PUT|DELETE /api/rules/{software}`.
    Mappings: `GET /api/mappings`, `PUT|DELETE /api/mappings/{halo_client_id}`."""
    area = req.route_params.get("area", "rules")
    key = req.route_params.get("key") or None
    today = datetime.now(UTC).date()

    def answer() -> Reply:
        return admin_reply(get_store(), area, req.method, key, req.get_body(), today)

    return _respond(req, "rules", answer)
