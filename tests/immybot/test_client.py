"""The ImmyBot client's token flow through msal, and its reads, against respx (no network)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
import respx

from shared.immybot.auth import MsalHttpClient
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyAuthError, ImmyProtocolError, ImmyUnavailable
from shared.outbound.budget import RetryPolicy
from shared.records.immybot import ImmyComputer
from shared.runtime.clients import forget_applications

BASE = "https://msp.immy.bot"
TENANT = "11111111-2222-3333-4444-555555555555"
LOGIN = "https://login.microsoftonline.com"
SECRET = "immy-s3cret-value-xyz"
OPENID = {
    "token_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
    "authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize",
    "issuer": f"{LOGIN}/{TENANT}/v2.0",
}


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture(autouse=True)
def fresh_msal():
    forget_applications()
    yield
    forget_applications()


@pytest.fixture
def entra():
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration").respond(json=OPENID)
        yield router


def token_route(router, *tokens: str, expires_in: int = 3599):
    answers = [
        httpx.Response(
            200, json={"token_type": "Bearer", "expires_in": expires_in, "access_token": t}
        )
        for t in tokens
    ]
    return router.post(OPENID["token_endpoint"]).mock(side_effect=answers)


def client(**kwargs) -> ImmyClient:
    return ImmyClient(
        BASE,
        tenant_id=TENANT,
        client_id="app-id",
        client_secret=SECRET,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
        sleep=no_sleep,
        **kwargs,
    )


async def test_token_request_uses_client_credentials_and_the_instance_scope(entra):
    tokens = token_route(entra, "tok-1")
    entra.get(f"{BASE}/api/v1/tenants").respond(json=[{"id": 2, "name": "Contoso Limited"}])
    async with client() as immy:
        tenants = await immy.tenants()
    assert [t.name for t in tenants] == ["Contoso Limited"]
    form = httpx.QueryParams(tokens.calls.last.request.content.decode())
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == "app-id"
    assert form["client_secret"] == SECRET
    assert form["scope"] == f"{BASE}/.default"
    assert entra.calls.last.request.headers["Authorization"] == "Bearer tok-1"


async def test_cached_token_is_reused(entra):
    tokens = token_route(entra, "tok-1", "tok-2")
    entra.get(f"{BASE}/api/v1/tenants").respond(json=[])
    async with client() as immy:
        for _ in range(3):
            await immy.tenants()
    assert tokens.call_count == 1


async def test_a_fresh_token_is_handed_out_without_a_worker_thread(entra, monkeypatch):
    token_route(entra, "tok-1")
    api = entra.get(f"{BASE}/api/v1/tenants").respond(json=[])
    async with client() as immy:
        await immy.tenants()  # the first asks msal, in a worker thread

        async def no_thread(*args, **kwargs):
            raise AssertionError("msal asked again for a token that is still fresh")

        monkeypatch.setattr("shared.immybot.auth.asyncio.to_thread", no_thread)
        await immy.tenants()
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer tok-1"] * 2


async def test_expired_token_is_refreshed(entra):
    # msal refreshes a token with less than five minutes left: one of 60 s is stale at once.
    tokens = token_route(entra, "tok-1", "tok-2", expires_in=60)
    api = entra.get(f"{BASE}/api/v1/tenants").respond(json=[])
    async with client() as immy:
        await immy.tenants()
        await immy.tenants()
    assert tokens.call_count == 2
    assert [c.request.headers["Authorization"] for c in api.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_401_from_immybot_drops_the_token_and_retries_once(entra):
    tokens = token_route(entra, "tok-1", "tok-2")
    entra.get(f"{BASE}/api/v1/tenants").mock(
        side_effect=lambda request: httpx.Response(
            401 if request.headers["Authorization"] == "Bearer tok-1" else 200, json=[]
        )
    )
    async with client() as immy:
        assert await immy.tenants() == []
    assert tokens.call_count == 2


async def test_entra_error_is_a_typed_error_without_the_secret(entra, caplog):
    caplog.set_level(logging.DEBUG)
    entra.post(OPENID["token_endpoint"]).respond(
        401,
        json={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: abc",
            "error_codes": [7000215],
        },
    )
    async with client() as immy:
        with pytest.raises(ImmyAuthError) as caught:
            await immy.tenants()
    text = str(caught.value)
    assert "invalid_client" in text and "AADSTS7000215" in text
    assert SECRET not in text and SECRET not in repr(caught.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_unreachable_authority_is_unavailable(entra):
    entra.get(f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration").mock(
        side_effect=httpx.ConnectError("refused")
    )
    async with client() as immy:
        with pytest.raises(ImmyUnavailable):
            await immy.tenants()


async def test_computers_are_paged_until_skip_reaches_count(entra, monkeypatch):
    monkeypatch.setattr("shared.immybot.client.PAGE_SIZE", 2)
    token_route(entra, "tok-1")
    rows = [
        {
            "id": n,
            "computerName": f"PC{n}",
            "tenantId": 7,
            "isOnline": n % 2 == 0,
            "primaryUserEmail": None,
        }
        for n in range(1, 6)
    ]

    def page(request: httpx.Request) -> httpx.Response:
        skip, take = int(request.url.params["skip"]), int(request.url.params["take"])
        assert request.url.params["includeOffline"] == "true"
        return httpx.Response(200, json={"count": 5, "results": rows[skip : skip + take]})

    route = entra.get(f"{BASE}/api/v1/computers/paged").mock(side_effect=page)
    async with client() as immy:
        computers = await immy.computers()
    assert [c.id for c in computers] == [1, 2, 3, 4, 5]
    assert computers[0].name == "PC1" and computers[0].primary_user_email == ""
    assert route.call_count == 3


async def test_a_server_cap_on_take_does_not_end_the_listing(entra):
    # The server answers 3 per page whatever `take` asks: short pages, but `count` says more.
    token_route(entra, "tok-1")
    rows = [
        {"id": n, "computerName": f"PC{n}", "tenantId": 7, "isDevLab": n == 2, "isSandbox": None}
        for n in range(1, 9)
    ]

    def page(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        return httpx.Response(200, json={"count": 8, "results": rows[skip : skip + 3]})

    route = entra.get(f"{BASE}/api/v1/computers/paged").mock(side_effect=page)
    async with client() as immy:
        computers = await immy.computers()
    assert [c.id for c in computers] == list(range(1, 9))
    assert route.call_count == 3
    assert [c.id for c in computers if not c.deployable] == [2]


async def test_inventory_search_is_one_request_for_every_tenant(entra):
    token_route(entra, "tok-1")
    rows = [
        {
            "computerId": 4, "tenantId": 2, "computer": "CONTOSO-LT02", "tenant": "Contoso",
            "softwareName": "Sentinel Agent", "softwareVersion": "23.4",
        },
        {
            "computerId": 9, "tenantId": 3, "computer": None, "tenant": None,
            "softwareName": None, "softwareVersion": None,
        },
        {"tenantId": 3, "softwareName": "no computer id: skipped"},
    ]  # fmt: skip
    route = entra.get(f"{BASE}/api/v1/computers/all-inventory-software/search-by-name").respond(
        json=rows
    )
    async with client() as immy:
        found = await immy.inventory_search("Sentinel Agent")
    assert [(r.computer_id, r.tenant_id, r.name, r.version) for r in found] == [
        (4, 2, "Sentinel Agent", "23.4"),
        (9, 3, "", ""),
    ]
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert dict(params) == {"q": "Sentinel Agent", "searchMode": "0"}  # no tenantId: all tenants


async def test_an_inventory_answer_that_is_not_a_list_is_a_protocol_error(entra):
    token_route(entra, "tok-1")
    entra.get(f"{BASE}/api/v1/computers/all-inventory-software/search-by-name").respond(
        json={"results": []}
    )
    async with client() as immy:
        with pytest.raises(ImmyProtocolError):
            await immy.inventory_search("Huntress")


async def test_tenants_are_paged_until_an_empty_page(entra, monkeypatch):
    monkeypatch.setattr("shared.immybot.client.TENANT_PAGE_SIZE", 2)
    token_route(entra, "tok-1")
    rows = [
        {"id": n, "name": f"T{n}", "tenantTagIds": [9] if n == 3 else None} for n in range(1, 6)
    ]

    def page(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["Page"]), int(request.url.params["PageSize"])
        return httpx.Response(200, json=rows[(number - 1) * size : number * size])

    route = entra.get(f"{BASE}/api/v1/tenants").mock(side_effect=page)
    async with client() as immy:
        tenants = await immy.tenants()
    assert [t.id for t in tenants] == [1, 2, 3, 4, 5]
    assert tenants[2].tag_ids == (9,) and tenants[0].tag_ids == ()
    assert route.call_count == 4


async def test_tag_writes_send_the_documented_body(entra):
    token_route(entra, "tok-1")
    add = entra.post(f"{BASE}/api/v1/tenants/add-tags").respond(200)
    remove = entra.post(f"{BASE}/api/v1/tenants/remove-tags").respond(200, json=None)
    create = entra.post(f"{BASE}/api/v1/tags").respond(
        200, json={"id": 4, "name": "Halo: X", "description": "d", "color": None}
    )
    async with client() as immy:
        assert await immy.add_tenant_tags([5, 3, 5], [4]) == 1
        assert await immy.remove_tenant_tags([7], [4]) == 1
        tag = await immy.create_tag("Halo: X", "d")
        assert (tag.id, tag.name) == (4, "Halo: X")
        assert immy.writes == 3
    assert json.loads(add.calls[0].request.content) == {"entityIds": [3, 5], "tagIds": [4]}
    assert json.loads(remove.calls[0].request.content) == {"entityIds": [7], "tagIds": [4]}
    assert json.loads(create.calls[0].request.content) == {"name": "Halo: X", "description": "d"}


async def test_computer_tag_writes_send_the_tenant_body_to_the_computer_paths(entra, monkeypatch):
    monkeypatch.setattr("shared.immybot.client.MAX_IDS_PER_WRITE", 2)
    token_route(entra, "tok-1")
    add = entra.post(f"{BASE}/api/v1/computers/add-tags").respond(200)
    remove = entra.post(f"{BASE}/api/v1/computers/remove-tags").respond(200)
    async with client() as immy:
        assert await immy.add_computer_tags([9, 3, 5, 3], [4, 4]) == 2  # 3 ids, 2 per request
        assert await immy.remove_computer_tags([7], [4, 6]) == 1
    assert [json.loads(c.request.content) for c in add.calls] == [
        {"entityIds": [3, 5], "tagIds": [4]},
        {"entityIds": [9], "tagIds": [4]},
    ]
    assert json.loads(remove.calls[0].request.content) == {"entityIds": [7], "tagIds": [4, 6]}


def test_a_computer_lists_the_tags_it_carries():
    row = {"id": 3, "computerName": "PC", "tenantId": 2, "computerTagIds": [4, 6]}
    assert ImmyComputer.model_validate(row).tag_ids == (4, 6)
    assert ImmyComputer.model_validate({**row, "computerTagIds": None}).tag_ids == ()
    assert ImmyComputer.model_validate({"id": 3, "tenantId": 2}).tag_ids == ()


async def test_retryable_failures_are_retried_then_given_up(entra):
    token_route(entra, "tok-1")
    route = entra.get(f"{BASE}/api/v1/tenants").respond(503)
    async with client() as immy:
        with pytest.raises(ImmyUnavailable, match="HTTP 503"):
            await immy.tenants()
    assert route.call_count == 3


async def test_every_call_logs_one_outgoing_line(entra, caplog):
    caplog.set_level(logging.INFO, logger="halo_immy.outgoing")
    token_route(entra, "tok-1")
    entra.get(f"{BASE}/api/v1/computers/paged").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"results": [], "count": 0})]
    )
    entra.get(f"{BASE}/api/v1/tenants").respond(503)
    async with client() as immy:
        await immy.computers(tenant_id=4711)
        with pytest.raises(ImmyUnavailable):
            await immy.tenants()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "halo_immy.outgoing"]
    assert [
        (x["service"], x["method"], x["path"], x["status"], x["retries"], x["throttled"])
        for x in lines
    ] == [
        ("immybot", "GET", "/api/v1/computers/paged", 200, 1, 1),
        ("immybot", "GET", "/api/v1/tenants", 503, 2, 0),
    ]
    assert lines[1]["error"] == "ImmyUnavailable"
    assert all(isinstance(x["ms"], float) for x in lines)
    text = " ".join(r.getMessage() for r in caplog.records if r.name == "halo_immy.outgoing")
    assert "4711" not in text and "tok-1" not in text


def test_loopback_authority_is_mapped_back_to_http():
    seen = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    adapter = MsalHttpClient(
        httpx.Client(transport=httpx.MockTransport(transport)),
        loopback_https=frozenset({"127.0.0.1:9999"}),
    )
    adapter.get("https://127.0.0.1:9999/t/v2.0/.well-known/openid-configuration")
    adapter.post(
        "https://login.microsoftonline.com/t/oauth2/v2.0/token", data={"a": "1", "b": None}
    )
    assert seen == [
        "http://127.0.0.1:9999/t/v2.0/.well-known/openid-configuration",
        "https://login.microsoftonline.com/t/oauth2/v2.0/token",
    ]


async def test_a_created_tag_is_found_by_name_when_the_answer_is_not_the_tag(entra):
    # The OpenAPI document gives POST /api/v1/tags no response schema.
    token_route(entra, "tok-1")
    entra.post(f"{BASE}/api/v1/tags").respond(200)
    entra.get(f"{BASE}/api/v1/tags").respond(
        json=[{"id": 9, "name": "Halo: X", "description": "[halo-immy] x"}]
    )
    async with client() as immy:
        tag = await immy.create_tag("Halo: X", "[halo-immy] x")
    assert (tag.id, tag.name) == (9, "Halo: X")


async def test_concurrent_first_calls_ask_entra_for_one_token(entra):
    """Eight reads at once on a new client (the tab's first views, the sync's parallel reads):
    one token request, not eight; the others wait for it and take it from msal's cache."""
    issued = []

    def slow_token(request: httpx.Request) -> httpx.Response:
        issued.append(request)
        time.sleep(0.1)  # Entra's latency: long enough for every caller to arrive meanwhile
        return httpx.Response(
            200,
            json={"token_type": "Bearer", "expires_in": 3599, "access_token": f"tok-{len(issued)}"},
        )

    entra.post(OPENID["token_endpoint"]).mock(side_effect=slow_token)
    async with client() as immy:
        tokens = await asyncio.gather(*(immy.token() for _ in range(8)))
    assert len(issued) == 1
    assert set(tokens) == {"tok-1"}
