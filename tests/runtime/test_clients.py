"""Process-wide HaloPSA and ImmyBot clients: one per event loop, reused across invocations, built
again after a settings change; against the HaloPSA and ImmyBot sandboxes."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from datetime import date

import pytest

from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.runtime.clients import (
    aclose_loop_clients,
    forget_applications,
    halo_for_tab,
    immy_for_tab,
)
from shared.runtime.process import get_settings
from tests.conftest import immy_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def sandboxes(configure, halo_sandbox):
    data = demo_data(date.today())
    halo = halo_sandbox(data)
    with ImmyBotSandbox(immy_data_for(data)) as immy:
        configure(halo.url, **immy_settings(immy))
        forget_applications()
        yield data, halo, immy
    forget_applications()


def test_invocations_on_one_loop_share_one_client_of_each_kind(sandboxes):
    data, halo, immy = sandboxes
    ticket_id = int(data.tickets[0]["id"])

    async def invocation() -> tuple[object, object, int, int]:
        halo_client, immy_bot = await halo_for_tab(), await immy_for_tab()
        assert immy_bot is not None
        ticket = await halo_client.ticket(ticket_id)
        tenants = await immy_bot.tenants()
        return halo_client, immy_bot, ticket.id, len(tenants)

    async def worker_loop() -> list[tuple[object, object, int, int]]:
        try:
            first = await invocation()
            together = await asyncio.gather(*(invocation() for _ in range(5)))
            return [first, *together]
        finally:
            await aclose_loop_clients()

    results = asyncio.run(worker_loop())
    assert len({id(r[0]) for r in results}) == 1
    assert len({id(r[1]) for r in results}) == 1
    assert {r[2] for r in results} == {ticket_id}
    assert all(r[3] > 0 for r in results)
    # One token each for six views: the clients (and their tokens) outlive an invocation.
    assert halo.stats()["tokens_issued"] == 1
    assert immy.stats()["tokens_issued"] == 1


def test_each_loop_gets_its_own_clients_and_a_closed_loop_lets_go_of_them(sandboxes):
    data, _, _ = sandboxes
    ticket_id = int(data.tickets[0]["id"])
    seen: list[weakref.ref[object]] = []
    pools: list[object] = []  # the clients' connection pools, held so their state can be read

    async def request() -> int:
        client = await halo_for_tab()
        seen.append(weakref.ref(client))
        pools.append(client._http)
        return (await client.ticket(ticket_id)).id

    # asyncio.run per request, as the tests and scripts do: a client of a finished loop would
    # fail on the next loop ("bound to a different event loop"), so each loop has its own.
    assert asyncio.run(request()) == ticket_id
    assert asyncio.run(request()) == ticket_id
    assert pools[0] is not pools[1]
    assert pools[0].is_closed  # closed when its loop ended, not left to the collector
    asyncio.run(request())  # a lookup prunes the closed loops' clients
    gc.collect()
    assert seen[0]() is None and seen[1]() is None


def test_a_settings_change_builds_new_clients(sandboxes, halo_sandbox, monkeypatch):
    data, first, _ = sandboxes
    second = halo_sandbox(data)
    ticket_id = int(data.tickets[0]["id"])

    async def views() -> tuple[object, object]:
        try:
            before = await halo_for_tab()
            await before.ticket(ticket_id)
            monkeypatch.setenv("HALO_BASE_URL", second.url)
            get_settings.cache_clear()
            after = await halo_for_tab()
            await after.ticket(ticket_id)
            return before, after
        finally:
            await aclose_loop_clients()

    before, after = asyncio.run(views())
    assert before is not after
    assert first.stats()["requests"] and second.stats()["requests"]


def test_without_immybot_settings_there_is_no_immybot_client(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url)

    async def view() -> object:
        return await immy_for_tab()

    assert asyncio.run(view()) is None


def test_loops_running_at_once_each_have_their_own_clients(sandboxes):
    data, _, _ = sandboxes
    ticket_id = int(data.tickets[0]["id"])
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()

    async def view() -> tuple[object, int]:
        client = await halo_for_tab()
        return client, (await client.ticket(ticket_id)).id

    async def close() -> None:
        await aclose_loop_clients()

    try:
        theirs, their_ticket = asyncio.run_coroutine_threadsafe(view(), other).result()

        async def here() -> tuple[object, int]:
            try:
                return await view()
            finally:
                await aclose_loop_clients()

        ours, our_ticket = asyncio.run(here())
        again, _ = asyncio.run_coroutine_threadsafe(view(), other).result()
        assert ours is not theirs and again is theirs
        assert our_ticket == their_ticket == ticket_id
        asyncio.run_coroutine_threadsafe(close(), other).result()
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()
