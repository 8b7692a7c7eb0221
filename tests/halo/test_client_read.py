"""One client read again from HaloPSA (for an event): against the sandbox, and a lying filter."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from sandbox.halo_data import demo_data
from shared.halo.client import HaloClient
from shared.halo.client_read import read_client
from tests.halo.fakes import BASE

TODAY = date.today()


def client_for(url: str) -> HaloClient:
    return HaloClient(url, "sandbox-client", "sandbox-secret", page_size=100)


async def read(url: str, client_id: int):
    async with client_for(url) as halo:
        return await read_client(halo, client_id), halo.stats.total_requests


@pytest.mark.integration
def test_a_client_and_only_its_records_in_four_requests_and_a_token(halo_sandbox):
    data = demo_data(TODAY)
    sandbox = halo_sandbox(data)
    found, requests = asyncio.run(read(sandbox.url, 2))
    assert found.client is not None and found.client.name == "Fabrikam, Inc."
    assert sorted(c.id for c in found.contracts) == sorted(
        int(c["id"]) for c in data.contracts if int(float(c["client_id"])) == 2
    )
    assert sorted(i.id for i in found.invoices) == [-12, -2]
    assert all(i.lines for i in found.invoices)
    assert {s.client_id for s in found.sites} == {2}
    assert found.foreign == 0 and found.rejects == []
    assert found.read["clients"] == 1 and found.read["invoice_lines"] >= 2
    assert requests == 5


@pytest.mark.integration
def test_a_client_halopsa_does_not_know_is_none_and_nothing_more_is_read(halo_sandbox):
    sandbox = halo_sandbox(demo_data(TODAY))
    found, requests = asyncio.run(read(sandbox.url, 999))
    assert found.client is None and found.contracts == []
    assert requests == 2  # the token and the client


def test_records_of_another_client_from_a_filtered_list_are_left_out(respx_mock):
    contract = {"id": 3, "client_id": 2, "contracttype_name": "Managed Security"}
    stranger = {"id": 4, "client_id": 5, "contracttype_name": "Managed Security"}
    respx_mock.post(f"{BASE}/auth/token").respond(
        json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
    )
    respx_mock.get(f"{BASE}/api/Client/2").respond(json={"id": 2.0, "name": "Fabrikam"})
    respx_mock.get(f"{BASE}/api/Site").respond(json={"record_count": 0, "sites": []})
    respx_mock.get(f"{BASE}/api/ClientContract").respond(
        json={"record_count": 2, "contracts": [contract, stranger]}
    )
    respx_mock.get(f"{BASE}/api/RecurringInvoice").respond(json={"record_count": 0, "invoices": []})
    found, _ = asyncio.run(read(BASE, 2))
    assert [c.id for c in found.contracts] == [3]
    assert found.foreign == 1
    query = respx_mock.routes[3].calls.last.request.url.params
    assert query["client_id"] == "2" and query["includeinactive"] == "true"


def test_an_empty_answer_for_an_unknown_id_is_no_client(respx_mock):
    respx_mock.post(f"{BASE}/auth/token").respond(
        json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
    )
    respx_mock.get(f"{BASE}/api/Client/7").respond(json={"id": 0, "name": ""})
    found, _ = asyncio.run(read(BASE, 7))
    assert found.client is None


def test_an_invalid_client_record_is_a_reject(respx_mock):
    respx_mock.post(f"{BASE}/auth/token").respond(
        json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
    )
    respx_mock.get(f"{BASE}/api/Client/7").respond(json={"id": 7, "inactive": "maybe"})
    found, _ = asyncio.run(read(BASE, 7))
    assert found.client is None
    assert [r.kind for r in found.rejects] == ["clients"]
