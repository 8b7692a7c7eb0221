"""ImmyBot follows an event at once: the changed client's tenant gains or loses the rule's tag,
and no other tenant moves (both sandboxes, Azurite's tables and queue, the real functions).

Demo (tests/sync/test_tags_integration.py): Huntress covers Contoso (client 1, tenant 2),
Fabrikam (client 2, tenant 3) and Wide World Importers (client 6, tenant 8 by ImmyBot's link).
"""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import add_halo_link, immy_data_for
from shared.api.rules import import_rules
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings, get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from shared.sync.status import sync_status
from shared.sync.tag_store import tags_view
from tests.conftest import DEMO_RULES, immy_settings

pytestmark = pytest.mark.integration
SECRET = "an-event-secret-long-enough-0123456789"
SAMPLES = Path(__file__).parents[1] / "fixtures" / "halo-webhooks"
HUNTRESS = "Halo: Huntress"


@pytest.fixture
def both(configure, halo_sandbox, app_host):
    """Both sandboxes synced once with IMMY_TAGS as given; (HaloPSA, ImmyBot, host)."""
    started: list[ImmyBotSandbox] = []

    def begin(mode: str):
        forget_applications()
        halo_data = demo_data(datetime.now(UTC).date())
        data = immy_data_for(halo_data)
        add_halo_link(data, {1: 2, 2: 3, 6: 8, 7: None})
        halo = halo_sandbox(halo_data)
        immy = ImmyBotSandbox(data).start()
        started.append(immy)
        configure(
            halo.url,
            **immy_settings(immy),
            IMMY_TAGS=mode,
            SYNC_MAX_DROP="0.5",
            HALO_WEBHOOK_SECRET=SECRET,
        )
        import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
        report = asyncio.run(run_sync())
        assert report.outcome is Outcome.SUCCEEDED, report.error
        return halo, immy, app_host

    yield begin
    for immy in started:
        immy.stop()
    forget_applications()


def cancel_contracts(halo, *ids: int) -> None:
    data = copy.deepcopy(halo.data)
    for contract in data.contracts:
        if int(contract["id"]) in ids:
            contract["active"] = False
    halo.set_data(data)


def event_for_contract(host, contract_id: int, client_id: int) -> None:
    event = {"event": "Contract Updated", "object_id": contract_id,
             "contract": {"id": contract_id, "client_id": client_id}}  # fmt: skip
    status, _, body = host.dispatch(
        "POST",
        "/api/halo/events",
        {"authorization": f"Bearer {SECRET}"},
        json.dumps(event).encode(),
    )
    assert status == 202, body
    host.queues.drain()


def last_refresh() -> dict:
    found = sync_status(get_store(), datetime.now(UTC), immybot_configured=True)
    assert found.events is not None
    return found.events.last_refreshes[0]


def test_apply_takes_the_tag_off_the_changed_clients_tenant_only(both):
    halo, immy, host = both("apply")
    assert immy.tenant_tags()[HUNTRESS] == {2, 3, 8}
    # Fabrikam's contract is cancelled (event) and Wide World's too (no event yet).
    cancel_contracts(halo, 3, 9)
    event_for_contract(host, 3, 2)
    assert immy.tenant_tags()[HUNTRESS] == {2, 8}  # tenant 8 waits for its event or the sync
    tags = last_refresh()["immy_tags"]
    assert (tags["mode"], tags["removed"], tags["added"], tags["scope"]) == ("apply", 1, 0, [3])
    # The stored plan is planned again after the writes: nothing left for the current state
    # (which still has Wide World's contract as the last sync read it).
    rules = tags_view(get_store(), get_settings()).rules
    huntress = next(r for r in rules if r.software == "Huntress")
    assert huntress.changes == [] and huntress.carrying == [2, 8]
    assert huntress.last_apply is not None and huntress.last_apply.removed == 1


def test_plan_mode_records_the_change_and_writes_nothing(both, monkeypatch):
    halo, immy, host = both("apply")  # the tags exist and are right
    monkeypatch.setenv("IMMY_TAGS", "plan")
    get_settings.cache_clear()
    before = immy.stats()["requests"]
    cancel_contracts(halo, 3)
    event_for_contract(host, 3, 2)
    after = immy.stats()["requests"]
    assert after["add_tags"] == before["add_tags"] and after["remove_tags"] == before["remove_tags"]
    tags = last_refresh()["immy_tags"]
    assert (tags["mode"], tags["removed"]) == ("plan", 1)
    assert immy.tenant_tags()[HUNTRESS] == {2, 3, 8}
