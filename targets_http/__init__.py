"""HTTP blueprint of the JSON API: targets and catalogue (for ImmyBot), rules admin, and the
setup check (master key).

Rules live in a function of their own, so the key ImmyBot holds for `targets` cannot edit them.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from urllib.parse import quote

import azure.functions as func

from shared.api.catalog import answer_catalog
from shared.api.mappings import delete_mapping, list_mappings, put_mapping
from shared.api.models import RuleView
from shared.api.openapi import openapi_document
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.reconciliation import as_csv, reconcile
from shared.api.replies import JSON, Reply, json_reply, log_api_call, observed, problem_reply
from shared.api.rules import delete_rule, export_rules, get_rule, import_rules, put_rule
from shared.api.setup import request_host, run_checks
from shared.api.targets import answer_targets
from shared.api.targets_query import parse_targets_query
from shared.settings import get_settings
from shared.store.repository import Store, get_store
from shared.sync.assets import read_plan
from shared.sync.tags import tags_view

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
    """`GET /api/reconciliation?software=NAME[&format=csv]`: billed vs deployed per client."""

    def answer() -> Reply:
        software = lookup_value("software", req.params.get("software", ""))
        output = req.params.get("format", "json")
        if output not in ("json", "csv"):
            raise ApiError(problem(400, "bad-query", "format may be json or csv"))
        report = reconcile(get_store(), software, get_settings().immy_stale_days)
        if output == "json":
            return json_reply(report)
        # A header value must be ASCII: "Ü".isalnum() is true, and the host refuses it.
        name = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in report.software)
        return Reply(
            200,
            as_csv(report).encode(),
            "text/csv",
            {"Content-Disposition": f'attachment; filename="reconciliation-{name}.csv"'},
        )

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
        raw = (req.params.get("client_id") or "").strip()
        if raw and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
            raise ApiError(problem(400, "bad-query", "client_id must be a positive integer"))
        store = get_store()
        pointer = store.current()
        view = read_plan(store, pointer.generation, int(raw) if raw else None) if pointer else None
        if view is None:
            raise ApiError(
                problem(
                    404, "no-asset-plan", "no asset plan yet: set ASSET_SYNC and let a sync run"
                )
            )
        return json_reply(view)

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
        store = get_store()
        if area == "mappings":
            return _mappings(store, req, key, today)
        if key is None:
            if req.method == "GET":
                return json_reply(export_rules(store))
            if req.method == "PUT":
                return json_reply(import_rules(store, req.get_body(), today))
            return _not_allowed("GET, PUT")
        if req.method == "GET":
            return json_reply(get_rule(store, key))
        if req.method == "PUT":
            view, created = put_rule(store, key, req.get_body(), today)
            return _rule_reply(view, created)
        delete_rule(store, key, today)
        return Reply(204)

    return _respond(req, "rules", answer)


def _mappings(store: Store, req: func.HttpRequest, key: str | None, today: date) -> Reply:
    if key is None:
        if req.method != "GET":
            return _not_allowed("GET")
        return json_reply(list_mappings(store))
    if req.method == "PUT":
        mapping, created = put_mapping(store, key, req.get_body(), today)
        return json_reply(mapping, 201 if created else 200)
    if req.method == "DELETE":
        delete_mapping(store, key, today)
        return Reply(204)
    return _not_allowed("PUT, DELETE")


def _not_allowed(allow: str) -> Reply:
    # One function serves several paths: a method it takes may not suit this one.
    return problem_reply(
        problem(405, "method-not-allowed", f"this path takes {allow}"), {"Allow": allow}
    )


def _rule_reply(view: RuleView, created: bool) -> Reply:
    if created:
        return json_reply(view, 201, {"Location": f"/api/rules/{quote(view.rule.software)}"})
    return json_reply(view)
