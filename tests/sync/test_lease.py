"""The writer lease against real Azurite: short, kept alive by a heartbeat, lost means no publish.

Time is injected: the heartbeat sleeps on `SteppedTime`, which moves the clock only when the test
ends a sleep, so hours of heartbeats take milliseconds and no test waits on a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from sandbox.halo_data import demo_data
from shared.halo.client import HaloClient
from shared.settings import Settings
from shared.store.repository import Store
from shared.sync.lease import LEASE_RENEW, LEASE_TTL, LeaseLost, WriterLease
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from tests.conftest import azurite_service
from tests.sync.sandbox_runs import (
    HUNTRESS,
    SENTINELONE,
    TODAY,
    SimulatedCrash,
    answers,
    put_rules,
    settings_for,
)

pytestmark = pytest.mark.integration

_prefixes = itertools.count()
SECOND = timedelta(seconds=1)


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"l{next(_prefixes)}x")


class SteppedTime:
    """A clock and a sleep for the heartbeat: a sleep ends only when the test says so, and the
    clock then moves by exactly what the sleeper asked for."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.asked = 0.0
        self.sleeper: asyncio.Task | None = None
        self._asleep = asyncio.Event()
        self._wake = asyncio.Event()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.asked, self.sleeper = seconds, asyncio.current_task()
        self._wake.clear()
        self._asleep.set()
        await self._wake.wait()

    async def beat(self) -> None:
        """End the heartbeat's sleep; back once it has renewed and sleeps again, or stopped."""
        await self._asleep.wait()
        self._asleep.clear()
        self.now += timedelta(seconds=self.asked)
        self._wake.set()
        asleep = asyncio.ensure_future(self._asleep.wait())
        await asyncio.wait({asleep, self.sleeper}, return_when=asyncio.FIRST_COMPLETED)
        asleep.cancel()


def lease_of(store: Store, time: SteppedTime, owner: str = "writer-a") -> WriterLease:
    return WriterLease(store, owner, purpose="sync", clock=time.clock, sleep=time.sleep)


# -- the lease alone -------------------------------------------------------------------------------


def test_a_killed_writer_blocks_the_next_for_at_most_two_minutes_and_the_heartbeat_beats_thrice():
    assert LEASE_TTL <= timedelta(minutes=2)
    assert LEASE_RENEW == LEASE_TTL / 3


def test_the_heartbeat_keeps_a_long_writers_lease_and_it_expires_a_ttl_after_the_last_beat(store):
    async def scenario() -> None:
        time = SteppedTime(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
        lease = lease_of(store, time)
        assert await lease.take(time.now)
        async with lease.heartbeat():
            for _ in range(30):  # ten TTLs: a run far longer than its lease
                await time.beat()
                held = store.lease()
                assert held.owner == "writer-a" and held.expires_at == time.now + LEASE_TTL
                assert not store.acquire_lease("writer-b", now=time.now, ttl=LEASE_TTL)
        assert lease.lost is None
        assert time.now == datetime(2026, 5, 1, 9, 20, tzinfo=UTC)
        # Killed here (never released): the lease blocks the next writer one TTL, no longer.
        last = time.now
        refused = store.acquire_lease("writer-b", now=last + LEASE_TTL - SECOND, ttl=LEASE_TTL)
        assert not refused and refused.holder.owner == "writer-a"
        grant = store.acquire_lease("writer-b", now=last + LEASE_TTL + SECOND, ttl=LEASE_TTL)
        assert grant and grant.replaced.owner == "writer-a" and grant.replaced.purpose == "sync"

    asyncio.run(scenario())


def test_a_renewal_that_finds_the_lease_taken_loses_it(store):
    async def scenario() -> None:
        time = SteppedTime(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
        lease = lease_of(store, time)
        assert await lease.take(time.now)
        async with lease.heartbeat():
            # The loop stalled past the TTL and another writer (an event refresh) took over.
            later = time.now + LEASE_TTL + SECOND
            assert store.acquire_lease("refresh-1", now=later, ttl=LEASE_TTL, purpose="refresh")
            await time.beat()
            assert time.sleeper.done()  # it stops renewing
        assert lease.lost == "another writer holds it now"
        with pytest.raises(LeaseLost, match="another writer holds it now"):
            await lease.confirm()
        await lease.release()  # not ours: left alone
        assert store.lease().owner == "refresh-1" and store.lease().purpose == "refresh"

    asyncio.run(scenario())


def test_each_renewal_and_the_release_is_one_write_on_the_last_etag(azurite):
    sent: list[str] = []
    service = azurite_service(
        azurite, raw_request_hook=lambda r: sent.append(r.http_request.method)
    )
    store = Store(service, prefix=f"l{next(_prefixes)}x")

    async def scenario() -> None:
        time = SteppedTime(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
        lease = lease_of(store, time)
        assert await lease.take(time.now)
        sent.clear()
        async with lease.heartbeat():
            await time.beat()
            await lease.confirm()
            await time.beat()
        await lease.confirm()
        await lease.release()

    asyncio.run(scenario())
    # Two beats and two confirmations each write once (MERGE is a PATCH); no read between.
    assert sent == ["PATCH"] * 4 + ["DELETE"]
    assert store.lease() is None


def test_a_renewal_that_storage_refuses_loses_the_lease(store):
    async def scenario() -> None:
        time = SteppedTime(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
        lease = lease_of(store, time)
        assert await lease.take(time.now)

        def refuse(*args, **kwargs):
            raise ServiceRequestError("storage account unreachable (injected)")

        store.renew_lease = refuse
        async with lease.heartbeat():
            await time.beat()
        assert lease.lost.startswith("storage failed while renewing it: ServiceRequestError")
        assert not await lease.still_held()

    asyncio.run(scenario())


# -- a sync run holding it -------------------------------------------------------------------------


class HeldWrite:
    """A store whose first table transaction waits until the test lets it go: a run as long as
    the test wants, with the test running beside it on the same event loop."""

    def __init__(self, store: Store) -> None:
        self.writing = asyncio.Event()
        self.go = threading.Event()
        self._first = itertools.count()
        loop = asyncio.get_running_loop()

        def hook(partition: str, sequence: int) -> None:
            if next(self._first) == 0:
                loop.call_soon_threadsafe(self.writing.set)
                # A guard against a hung test, not a synchronisation: `go` is set by the test.
                if not self.go.wait(timeout=60):
                    raise RuntimeError("the test never let the write go")

        self.store = Store(store.service, prefix=store.prefix, transaction_hook=hook)


async def run_beside(
    settings: Settings,
    store: Store,
    time: SteppedTime,
    meanwhile: Callable[[HeldWrite], Awaitable[None]],
) -> SyncReport:
    """A sync whose generation write is held while `meanwhile` runs beside it."""
    held = HeldWrite(store)
    async with HaloClient.from_settings(settings, max_concurrency=4) as halo:
        run = asyncio.create_task(
            run_sync(settings, store=held.store, halo=halo, now=time.clock, sleep=time.sleep)
        )
        await held.writing.wait()
        try:
            await meanwhile(held)
        finally:
            held.go.set()
        return await run


@pytest.fixture
def demo(halo_sandbox, azurite, store):
    """The demo synced once: (settings, what readers see)."""
    sandbox = halo_sandbox(demo_data(TODAY))
    settings = settings_for(sandbox, azurite)
    put_rules(store, HUNTRESS, SENTINELONE)
    first = asyncio.run(run_sync(settings, store=store))
    assert first.outcome is Outcome.SUCCEEDED, first.error
    return settings, answers(store)


def test_a_long_run_keeps_its_lease_while_others_are_refused_then_publishes(demo, store):
    settings, _before = demo
    start = datetime.now(UTC)
    time = SteppedTime(start)
    refused: list[SyncReport] = []

    async def twenty_minutes(held: HeldWrite) -> None:
        for beat in range(30):
            await time.beat()
            if beat % 10 == 9:  # a timer run every 6 fake minutes finds the lease held
                refused.append(await run_sync(settings, store=store, now=time.clock))

    report = asyncio.run(run_beside(settings, store, time, twenty_minutes))
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert store.current().generation == report.generation
    assert time.now - start == 30 * LEASE_RENEW
    assert [r.outcome for r in refused] == [Outcome.SKIPPED] * 3
    assert all(f"sync {report.run_id}" in r.note for r in refused)
    assert store.lease() is None  # released at the end


def test_a_run_that_loses_its_lease_mid_way_stops_before_the_swap(demo, store):
    settings, before = demo
    time = SteppedTime(datetime.now(UTC))

    async def taken_over(held: HeldWrite) -> None:
        later = time.now + LEASE_TTL + SECOND
        assert store.acquire_lease("refresh-7", now=later, ttl=LEASE_TTL, purpose="refresh")
        await time.beat()

    report = asyncio.run(run_beside(settings, store, time, taken_over))
    assert report.outcome is Outcome.FAILED
    assert "lost the writer lease (another writer holds it now)" in report.error
    assert answers(store) == before  # serving is unchanged
    assert store.held() is None
    assert store.lease().owner == "refresh-7"  # the new holder's lease is left alone


def test_a_renewal_storage_refuses_stops_the_run_before_the_swap(demo, store):
    settings, before = demo
    time = SteppedTime(datetime.now(UTC))

    async def storage_blip(held: HeldWrite) -> None:
        def refuse(*args, **kwargs):
            raise ServiceRequestError("storage account unreachable (injected)")

        held.store.renew_lease = refuse
        await time.beat()

    report = asyncio.run(run_beside(settings, store, time, storage_blip))
    assert report.outcome is Outcome.FAILED
    assert "storage failed while renewing it" in report.error
    assert answers(store) == before
    assert store.lease() is None  # storage answered the release: the next run need not wait


def test_a_killed_runs_lease_blocks_the_next_run_for_one_ttl(demo, store):
    settings, before = demo
    killed_at = datetime.now(UTC)

    def crash(generation: str) -> None:
        raise SimulatedCrash(generation)

    with pytest.raises(SimulatedCrash):
        asyncio.run(run_sync(settings, store=store, now=lambda: killed_at, before_swap=crash))
    dead = store.lease()
    assert dead.expires_at == killed_at + LEASE_TTL

    blocked = asyncio.run(
        run_sync(settings, store=store, now=lambda: killed_at + LEASE_TTL - SECOND)
    )
    assert blocked.outcome is Outcome.SKIPPED
    after = asyncio.run(run_sync(settings, store=store, now=lambda: killed_at + LEASE_TTL + SECOND))
    assert after.outcome is Outcome.SUCCEEDED, after.error
    assert answers(store)["generation"] != before["generation"]
    recorded = {r["run_id"]: r for r in store.recent_runs()}
    assert recorded[dead.owner]["outcome"] == "abandoned"


def test_two_concurrent_runs_one_publishes_and_the_other_skips(demo, store):
    settings, _before = demo
    time = SteppedTime(datetime.now(UTC))
    second: list[SyncReport] = []

    async def another_run(held: HeldWrite) -> None:
        second.append(await run_sync(settings, store=store, now=time.clock))

    first = asyncio.run(run_beside(settings, store, time, another_run))
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert second[0].outcome is Outcome.SKIPPED
    assert f"sync {first.run_id}" in second[0].note
    assert store.current().generation == first.generation
