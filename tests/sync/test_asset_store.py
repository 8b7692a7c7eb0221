"""The stored asset plan against real Azurite: a reader sees a whole plan or none."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from shared.core.asset_plan import ClientAssetPlan, Unresolved
from shared.store.repository import Store
from shared.sync.asset_store import AssetPlanView, AssetRunSummary, read_plan, store_plan
from tests.conftest import azurite_service

pytestmark = pytest.mark.integration

_names = itertools.count()


def test_a_plan_is_seen_only_once_every_client_row_is_stored(azurite):
    service = azurite_service(azurite)
    seen: list[AssetPlanView | None] = []

    def look(partition: str, sequence: int) -> None:
        # Before each transaction of the plan, a reader's view of it.
        if partition == "assets":
            seen.append(read_plan(store, "g1"))

    # One transaction at a time, so the order the rows reach the table is the order written.
    store = Store(service, prefix=f"a{next(_names)}x", concurrency=1, transaction_hook=look)
    store.write_generation("g1", {"meta": [{"RowKey": "stand-in"}]})
    summary = AssetRunSummary(
        mode="plan", outcome="planned", run_id="r1", generation="g1", computed_at=datetime.now(UTC)
    )
    # 150 clients: more rows than one transaction takes.
    plans = [
        ClientAssetPlan(
            client_id=n,
            tenant_id=n,
            unresolved=[Unresolved(computer_id=n, reason="the client has no site")],
        )
        for n in range(1, 151)
    ]
    store_plan(store, "g1", summary, plans)
    # Clients seen with a summary before the last transaction: a partial plan served as whole.
    assert len(seen) >= 2 and [v and len(v.clients) for v in seen] == [None] * len(seen)
    stored = read_plan(store, "g1")
    assert stored is not None and len(stored.clients) == 150
