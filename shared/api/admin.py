"""The admin areas one function serves (so one key opens them): rules and mappings, by method."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from shared.api.mappings import delete_mapping, list_mappings, put_mapping
from shared.api.models import RuleWritten
from shared.api.problems import problem
from shared.api.replies import Reply, json_reply, problem_reply
from shared.api.rules import (
    delete_rule,
    export_rules,
    get_rule,
    import_rules,
    patch_rule,
    put_rule,
)
from shared.store.repository import Store


@dataclass(frozen=True, slots=True)
class AdminCall:
    """An admin request: which area and key the route names, the method, the body and its type."""

    area: str
    key: str | None
    method: str
    body: bytes
    content_type: str | None = None


def admin_reply(store: Store, call: AdminCall, today: date) -> Reply:
    """Rules: `GET|PUT /api/rules`, `GET|PUT|PATCH|DELETE /api/rules/{software}`.
    Mappings: `GET /api/mappings`, `PUT|DELETE /api/mappings/{halo_client_id}`."""
    method, key, body = call.method, call.key, call.body
    if call.area == "mappings":
        return _mappings(store, method, key, body, today)
    if key is None:
        if method == "GET":
            return json_reply(export_rules(store))
        if method == "PUT":
            return json_reply(import_rules(store, body, today))
        return _not_allowed("GET, PUT")
    if method == "GET":
        return json_reply(get_rule(store, key))
    if method == "PUT":
        written, created = put_rule(store, key, body, today)
        return _rule_reply(written, created)
    if method == "PATCH":
        return json_reply(patch_rule(store, key, body, call.content_type, today))
    delete_rule(store, key, today)
    return Reply(204)


def _mappings(store: Store, method: str, key: str | None, body: bytes, today: date) -> Reply:
    if key is None:
        if method != "GET":
            return _not_allowed("GET")
        return json_reply(list_mappings(store))
    if method == "PUT":
        mapping, created = put_mapping(store, key, body, today)
        return json_reply(mapping, 201 if created else 200)
    if method == "DELETE":
        delete_mapping(store, key, today)
        return Reply(204)
    return _not_allowed("PUT, DELETE")


def _not_allowed(allow: str) -> Reply:
    # One function serves several paths: a method it takes may not suit this one.
    return problem_reply(
        problem(405, "method-not-allowed", f"this path takes {allow}"), {"Allow": allow}
    )


def _rule_reply(written: RuleWritten, created: bool) -> Reply:
    if created:
        location = {"Location": f"/api/rules/{quote(written.rule.software)}"}
        return json_reply(written, 201, location)
    return json_reply(written)
