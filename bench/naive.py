"""A naive HaloPSA (and ImmyBot) sync, the baseline bench/sync.py --naive compares the app with.

What a straightforward integration does: one request at a time; list clients, sites, contracts
and items page by page; list recurring invoices without `includelines` and read each one by id for
its lines; with ImmyBot, list tenants, then each tenant's computers; store every record as its own
entity with one upsert each. It resolves no rules and writes no targets, so it does less than the
app: the ratio it gives is, if anything, in the naive sync's favour.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from azure.data.tables import TableClient, UpdateMode

from shared.immybot.client import ImmyClient
from shared.settings import Settings

LISTS = {"Client": "clients", "Site": "sites", "ClientContract": "contracts", "Item": "items"}


@dataclass(slots=True)
class NaiveResult:
    """What the naive sync did and how long it took."""

    halo_requests: int = 0
    immy_requests: int = 0
    entities: int = 0
    seconds: float = 0.0


async def naive_sync(settings: Settings, table: TableClient, page_size: int = 100) -> NaiveResult:
    """Read HaloPSA (and ImmyBot when configured) naively into `table`; what it cost."""
    result = NaiveResult()
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=settings.halo_base, timeout=60) as http:
        token = await http.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": settings.halo_client_id,
                "client_secret": settings.halo_client_secret.get_secret_value(),
                "scope": "all",
            },
        )
        token.raise_for_status()
        result.halo_requests += 1
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        async def listed(resource: str, key: str, extra: dict[str, str]) -> list[Any]:
            records: list[Any] = []
            page = 1
            while True:
                params = {"pageinate": "true", "page_size": str(page_size), "page_no": str(page)}
                answer = await http.get(
                    f"/api/{resource}", params={**params, **extra}, headers=headers
                )
                answer.raise_for_status()
                result.halo_requests += 1
                rows = answer.json()[key]
                records.extend(rows)
                if len(rows) < page_size:
                    return records
                page += 1

        def store(kind: str, records: list[Any]) -> None:
            for record in records:
                table.upsert_entity(
                    {"PartitionKey": kind, "RowKey": str(record["id"]), "d": json.dumps(record)},
                    mode=UpdateMode.REPLACE,
                )
                result.entities += 1

        for resource, key in LISTS.items():
            store(key, await listed(resource, key, {"includeinactive": "true"}))
        for header in await listed("RecurringInvoice", "invoices", {"includeinactive": "true"}):
            answer = await http.get(f"/api/RecurringInvoice/{header['id']}", headers=headers)
            answer.raise_for_status()
            result.halo_requests += 1
            # One property per record: the sandbox's invoices fit Table Storage's 64 KiB.
            store("invoices", [answer.json()])
    immy = ImmyClient.from_settings(settings)
    if immy is not None:
        async with immy:
            tenants = await immy.tenants()
            store_immy(table, "tenants", [t.model_dump(mode="json") for t in tenants], result)
            for tenant in tenants:
                computers = await immy.computers(tenant.id)
                store_immy(
                    table, "computers", [c.model_dump(mode="json") for c in computers], result
                )
            result.immy_requests = immy.requests
    result.seconds = time.perf_counter() - started
    return result


def store_immy(table: TableClient, kind: str, records: list[Any], result: NaiveResult) -> None:
    """One upsert per ImmyBot record."""
    for record in records:
        table.upsert_entity(
            {"PartitionKey": kind, "RowKey": str(record["id"]), "d": json.dumps(record)},
            mode=UpdateMode.REPLACE,
        )
        result.entities += 1
