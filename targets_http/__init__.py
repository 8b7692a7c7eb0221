"""HTTP blueprint of the JSON API: targets and catalogue (for ImmyBot), reconciliation, the
coverage calendar and the change log, rules admin, HaloPSA's webhook, and the setup check (master
key).

Rules live in a function of their own, so the key ImmyBot holds for `targets` cannot edit them.
"""

import json
import typing
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import azure.functions as func

from shared.api.admin import AdminCall, admin_reply
from shared.api.asset_plan import asset_plan_reply, plan_client
from shared.api.calendar import answer_calendar, calendar_query, calendar_reply
from shared.api.calls import Call, respond, respond_async
from shared.api.catalog import answer_catalog
from shared.api.changes import answer_changes, changes_query, changes_reply
from shared.api.halo_webhook import Delivery, count_delivery, log_delivery, receive
from shared.api.openapi import openapi_document
from shared.api.reconciliation import reconcile, reconciliation_query, reconciliation_reply
from shared.api.replies import JSON, Reply, json_reply
from shared.api.setup import request_host, run_checks
from shared.api.tags import tags_answer
from shared.api.targets import answer_targets
from shared.api.targets_query import parse_targets_query
from shared.core.events import EVENTS_QUEUE
from shared.runtime.background import after_events
from shared.runtime.process import get_settings, get_store

bp = func.Blueprint()


def _respond(
    req: func.HttpRequest, function: str, answer: Callable[[], Reply]
) -> func.HttpResponse:
    reply = respond(Call(function, req.method, req.url, req.params), answer)
    return func.HttpResponse(**reply.as_kwargs())


async def _respond_async(
    req: func.HttpRequest, function: str, answer: Callable[[], Awaitable[Reply]]
) -> func.HttpResponse:
    reply = await respond_async(Call(function, req.method, req.url, req.params), answer)
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
    return _respond(req, "openapi", lambda: Reply(200, json.dumps(openapi_document()).encode()))


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


@bp.function_name("calendar")
@bp.route(route="calendar", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def calendar(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/calendar?days=30[&software=NAME][&format=csv]`: coverage ending in the window."""

    def answer() -> Reply:
        query = calendar_query(req.params)
        today = datetime.now(UTC).date()
        return calendar_reply(answer_calendar(get_store(), query, today), query.output)

    return _respond(req, "calendar", answer)


@bp.function_name("changes")
@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def changes(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/changes[?software=NAME][&since=ISO][&format=csv]`: who became or stopped being a
    target at each publish, why, and what caused it, newest first."""

    def answer() -> Reply:
        query = changes_query(req.params, datetime.now(UTC), get_settings().changes_keep_days)
        return changes_reply(answer_changes(get_store(), query), query.output)

    return _respond(req, "changes", answer)


@bp.function_name("immybot_tags")
@bp.route(route="immybot/tags", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def immybot_tags(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/immybot/tags`: per rule, its ImmyBot tag, carriers, targets, plan, last result."""
    return _respond(
        req, "immybot_tags", lambda: json_reply(tags_answer(get_store(), get_settings()))
    )


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
    host = request_host(req.url, req.headers.get("Host"))

    async def answer() -> Reply:
        report = await run_checks(load=get_settings, host=host)
        return json_reply(report, headers={"Cache-Control": "no-store"})

    return await _respond_async(req, "setup_check", answer)


@bp.function_name("halo_webhook")
@bp.route(route="halo/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.queue_output(arg_name="events", queue_name=EVENTS_QUEUE, connection="AzureWebJobsStorage")
def halo_webhook(
    req: func.HttpRequest,
    # typing.List, not list: the worker's queue converter recognises only typing's generics.
    events: func.Out[typing.List[str]],  # noqa: UP006
) -> func.HttpResponse:
    """`POST /api/halo/events`: HaloPSA's outbound webhook. Anonymous at the host: the route
    checks its own credential (HALO_WEBHOOK_SECRET, Basic or Bearer); 202 with one queue message
    per client the delivery names, 401 without the credential, 404 while it is unset."""
    taken: list[Delivery] = []

    def answer() -> Reply:
        delivery = receive(
            get_settings(), req.headers.get("Authorization"), req.get_body(), datetime.now(UTC)
        )
        taken.append(delivery)
        return delivery.reply

    reply = respond(Call("halo_webhook", req.method, req.url, req.params), answer)
    if taken:
        if taken[0].messages:
            events.set(taken[0].messages)
        after_events.submit(
            "count a HaloPSA webhook delivery", partial(count_delivery, get_store(), taken[0])
        )
    extraction = taken[0].extraction if taken else None
    log_delivery(reply.status, extraction.counts if extraction else {})
    return func.HttpResponse(**reply.as_kwargs())


# One function, so one key, for both admin areas; the key ImmyBot holds for `targets` opens neither.
@bp.function_name("rules")
@bp.route(
    route="{area:regex(^(rules|mappings)$)}/{key?}",
    methods=["GET", "PUT", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
def admin(req: func.HttpRequest) -> func.HttpResponse:
    """Rules: `GET|PUT /api/rules`, `GET|PUT|PATCH|DELETE /api/rules/{software}`.
    Mappings: `GET /api/mappings`, `PUT|DELETE /api/mappings/{halo_client_id}`."""
    call = AdminCall(
        area=req.route_params.get("area", "rules"),
        key=req.route_params.get("key") or None,
        method=req.method,
        body=req.get_body(),
        content_type=req.headers.get("Content-Type"),
    )
    today = datetime.now(UTC).date()

    def answer() -> Reply:
        return admin_reply(get_store(), call, today)

    return _respond(req, "rules", answer)
