"""`make run`'s demo: every URL it prints answers, every key it prints opens the routes it is
printed for and no other, and the demo shows what sandbox/demo.py says it adds."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

# A value for each route placeholder, and a request per method that passes the key check without
# changing what the demo serves (a malformed body, a rule or mapping that does not exist).
PLACEHOLDERS = {"software": "Huntress", "halo_client_id": "999", "ticket_id": "1"}


def request_for(method: str, path: str) -> tuple[str, bytes]:
    """The path (placeholders filled) and body to send `method` to `path` with."""
    filled = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], path)
    if method == "DELETE":
        filled = filled.replace("/Huntress", "/NoSuchRule")
    return filled, b"{" if method == "PUT" else b""


def test_every_printed_url_answers_200_with_the_key_it_carries(devhost_output):
    assert len(devhost_output.sights) >= 5
    labels = " ".join(label for label, _ in devhost_output.sights)
    for wanted in ("ticket 1", "ticket 5", "ticket 11", "/tags", "reconciliation"):
        assert wanted in labels or any(wanted in url for _, url in devhost_output.sights), wanted
    for label, url in devhost_output.sights:
        parts = urlsplit(url)
        assert parts.netloc == urlsplit(devhost_output.url).netloc, label
        key = parse_qs(parts.query)["code"][0]
        # The key on the URL is one the guide prints for that route.
        route = next(
            r for r in devhost_output.routes if re.fullmatch(pattern(r), "GET " + parts.path)
        )
        assert key in devhost_output.routes[route], (label, route)
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200, (label, response.text[:300])


def pattern(route: str) -> str:
    """A regex for "METHODS /api/path/{x}" that matches "METHOD /api/path/value"."""
    methods, path = route.split(" ", 1)
    return f"({methods}) " + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path))


def test_every_printed_key_opens_its_routes_and_no_other(devhost_output):
    printed = {key for keys in devhost_output.routes.values() for key in keys}
    assert "dev-key-sync_now" not in printed and "dev-key-sync_approve" not in printed
    assert len(devhost_output.routes) >= 14
    for route, keys in devhost_output.routes.items():
        methods, path = route.split(" ", 1)
        # Only the webhook asks for no function key (it checks its own secret: a key is a 401).
        assert keys or path == "/api/halo/events", route
        for method in methods.split("|"):
            target, body = request_for(method, path)
            for key in sorted(printed):
                response = httpx.request(
                    method,
                    devhost_output.url + target,
                    headers={"x-functions-key": key},
                    content=body,
                    timeout=60,
                )
                if key in keys:
                    assert response.status_code not in (401, 405), (method, target, key)
                    assert response.status_code < 500, (method, target, key, response.text)
                else:
                    assert response.status_code == 401, (method, target, key)


def page(devhost_output, ticket: int) -> str:
    url = next(u for _, u in devhost_output.sights if f"/ticket/{ticket}?" in u)
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    return response.text


def test_the_tickets_show_what_their_labels_say(devhost_output):
    covered = page(devhost_output, 1)
    assert "Open this ticket in ImmyBot Technician Tools" in covered
    assert "/technician-pod/psa/1/ticket/1" in covered
    assert "<b><bdi>SentinelOne</bdi></b>" in covered
    assert ">install it from ImmyBot</a>" in covered  # SentinelOne, missing on CONTOSO-LT01
    uncovered = page(devhost_output, 5)
    assert "No deployment rule entitles this client" in uncovered
    assert "TAILSPIN-LT01" in uncovered  # its computers all the same
    assert "This ticket has no client in HaloPSA." in page(devhost_output, 11)
    woodgrove = page(devhost_output, 8)
    assert "<b><bdi>Microsoft 365 Apps</bdi></b>" in woodgrove
    assert "ask an admin to map this client" in woodgrove


def test_the_tags_plan_holds_the_huntress_removal(devhost_output):
    url = next(u for _, u in devhost_output.sights if "/api/immybot/tags" in u)
    rules = {r["software"]: r for r in httpx.get(url, timeout=30).json()["rules"]}
    huntress = rules["Huntress"]
    assert huntress["carrying"] == [2, 3, 6, 7] and huntress["should"] == [2, 3]
    assert huntress["held"]["tenants"] == [6, 7]
    assert huntress["tenant_names"] == {
        "2": "Contoso Limited",
        "3": "Fabrikam Inc",
        "6": "Tailspin Toys LLC",
        "7": "Adventure Works",
    }
    assert [c["remove"] for c in huntress["changes"]] in ([], [[]])
    scoped = rules["Microsoft 365 Apps"]
    # Site-scoped: the tag goes on computers at the rule's sites, here none placed (Woodgrove has
    # no ImmyBot tenant it maps to without doubt).
    assert scoped["tag"] == "Halo: Microsoft 365 Apps" and scoped["level"] == "computer"
    assert [s["client_name"] for s in scoped["site_scope"]] == ["Woodgrove Bank"]


def test_the_mappings_show_immybots_own_links(devhost_output):
    url = next(u for _, u in devhost_output.sights if "/api/mappings" in u)
    outcomes = {o["client_id"]: o for o in httpx.get(url, timeout=30).json()["outcomes"]}
    assert {c for c, o in outcomes.items() if o["kind"] == "immybot_link"} == {2, 4, 5, 8}
    assert outcomes[1]["kind"] == "name" and outcomes[3]["kind"] == "entra_tenant"
    assert outcomes[6]["kind"] == "unmapped" and outcomes[7]["kind"] == "ambiguous"


def test_the_asset_plan_names_its_clients_and_tenants(devhost_output):
    url = next(u for _, u in devhost_output.sights if "/api/assets/plan" in u)
    response = httpx.get(url, timeout=30)
    # A sync another test queued may serve before its asset run stored its plan: the answer is
    # then the last plan stored, of the same demo data, and says it is not the current one's.
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert isinstance(body["current"], bool)
    assert body["summary"]["mode"] == "plan"
    named = {(c["client_name"], c["tenant_name"]) for c in body["clients"]}
    assert ("Contoso Ltd", "Contoso Limited") in named
    assert all(None not in pair for pair in named)
