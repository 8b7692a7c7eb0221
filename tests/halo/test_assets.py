"""HaloPSA asset I/O against respx: the pager's trust in record_count, fields by type, safe POSTs."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.halo.assets import list_assets, post_assets
from shared.halo.errors import HaloRateLimited, HaloUnavailable
from tests.halo.fakes import TOKEN_A, make_client, token_route


def rows(n: int, *, with_fields: bool = True) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        row = {"id": i, "client_id": 1, "assettype_id": 7, "key_field": f"PC-{i}"}
        if with_fields:
            row["fields"] = [{"id": 150, "name": "ImmyBot", "value": str(i)}]
        out.append(row)
    return out


def capped(records: list[dict], cap: int, seen: list[dict]):
    """HaloPSA answering at most `cap` rows a page whatever page_size asks for."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        size = min(int(params["page_size"]), cap)
        number = int(params["page_no"])
        chunk = records[(number - 1) * size : number * size]
        body = {"page_no": number, "page_size": size, "record_count": len(records), "assets": chunk}
        return httpx.Response(200, json=body)

    return answer


async def test_a_capped_page_size_still_reads_every_asset(mock, clock):
    token_route(mock, TOKEN_A)
    seen: list[dict] = []
    mock.get("/api/Asset").mock(side_effect=capped(rows(23), 5, seen))
    async with make_client(clock, page_size=10) as halo:
        listing = await list_assets(halo, 7)
    assert [a.id for a in listing.assets] == list(range(1, 24))
    assert listing.requests == 5  # 23 rows at 5 a page, not 1 page mistaken for the end
    assert seen[0]["includeinactive"] == "true" and seen[0]["includeassetfields"] == "true"
    assert listing.assets[0].fields == {150: "1"}


async def test_fields_missing_on_our_type_are_read_with_an_assettype_filter(mock, clock):
    token_route(mock, TOKEN_A)

    def answer(request: httpx.Request) -> httpx.Response:
        typed = "assettype_id" in request.url.params
        chunk = rows(3, with_fields=typed)
        return httpx.Response(200, json={"record_count": 3, "assets": chunk})

    route = mock.get("/api/Asset").mock(side_effect=answer)
    async with make_client(clock, page_size=10) as halo:
        listing = await list_assets(halo, 7)
    assert route.call_count == 2
    assert route.calls[1].request.url.params["assettype_id"] == "7"
    assert [a.fields for a in listing.assets] == [{150: "1"}, {150: "2"}, {150: "3"}]


async def test_a_post_that_fails_with_a_5xx_is_not_retried(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.post("/api/Asset").mock(return_value=httpx.Response(500))
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable):
            await post_assets(halo, [{"assettype_id": 7, "site_id": 1}])
    assert route.call_count == 1


async def test_a_post_refused_with_429_is_sent_again_with_the_same_array(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.post("/api/Asset").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json=[{"id": 9}])]
    )
    body = [{"assettype_id": 7, "site_id": 1}, {"id": 3, "fields": [{"id": 150, "value": "2"}]}]
    async with make_client(clock) as halo:
        answer = await post_assets(halo, body)
    assert answer == [{"id": 9}]
    assert route.call_count == 2
    assert [json.loads(c.request.content) for c in route.calls] == [body, body]
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN_A}"


async def test_a_post_that_keeps_getting_429_gives_up(mock, clock):
    token_route(mock, TOKEN_A)
    mock.post("/api/Asset").mock(return_value=httpx.Response(429))
    async with make_client(clock) as halo:
        with pytest.raises(HaloRateLimited):
            await post_assets(halo, [{"id": 1}])


async def test_a_timed_out_post_is_not_retried(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.post("/api/Asset").mock(side_effect=httpx.ReadTimeout("slow"))
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable, match="may have been applied"):
            await post_assets(halo, [{"id": 1}])
    assert route.call_count == 1
