"""The admin areas one function serves (so one key opens them): rules and mappings, by method."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from shared.api.mappings import delete_mapping, list_mappings, put_mapping
from shared.api.models import RuleView
from shared.api.problems import problem
from shared.api.replies import Reply, json_reply, problem_reply
from shared.api.rules import delete_rule, export_rules, get_rule, import_rules, put_rule
from shared.store.repository import Store


def admin_reply(
    store: Store, area: str, method: str, key: str | None, body: bytes, today: date
) -> Reply:
    """Rules: `GET|PUT /api/rules`, `GET|PUT|DELETE /api/rules/{software}`.
    Mappings: `GET /api/mappings`, `PUT|DELETE /api/mappings/{halo_client_id}`."""
    if area == "mappings":
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
        view, created = put_rule(store, key, body, today)
        return _rule_reply(view, created)
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


def _rule_reply(view: RuleView, created: bool) -> Reply:
    if created:
        return json_reply(view, 201, {"Location": f"/api/rules/{quote(view.rule.software)}"})
    return json_reply(view)
