"""Resumable REST syncs against real Azurite and the HaloPSA sandbox: staged pages, time limit."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.halo import Faults
from sandbox.halo_data import generate
from shared.halo.client import HaloClient
from shared.outbound.budget import RequestBudget, RetryPolicy
from shared.settings import Settings
from shared.store.base import StoreError
from shared.store.repository import Store
from shared.sync.lease import LEASE_TTL
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from shared.sync.stage import STAGE_FORMAT, STAGE_PARTITION, staged
from shared.sync.status import sync_status
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

Hook = Callable[[httpx.Request], httpx.Response | None]


class Tap(httpx.AsyncBaseTransport):
    """The real transport to the sandbox, recording every request; `hook` may answer instead."""

    def __init__(self, hook: Hook | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.hook = hook
        self.sent: list[tuple[str, int]] = []  # (path, page_no or 0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path, int(request.url.params.get("page_no", 0))))
        answer = self.hook(request) if self.hook is not None else None
        if answer is not None:
            return answer
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def pages(self) -> set[tuple[str, int]]:
        return {(path, page) for path, page in self.sent if page}


def client(settings: Settings, tap: Tap) -> HaloClient:
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2)
    return HaloClient.from_settings(
        settings,
        transport=tap,
        retry=retry,
        max_concurrency=1,
        budget=RequestBudget(settings.halo_requests_per_minute),
    )


def sync(settings: Settings, store: Store, tap: Tap, **kwargs) -> SyncReport:
    async def go() -> SyncReport:
        async with client(settings, tap) as halo:
            return await run_sync(settings, store=store, halo=halo, **kwargs)

    return asyncio.run(go())


def throttle_long(path: str, after: int) -> Hook:
    """A 429 asking to wait an hour, on the request to `path` after `after` earlier ones."""
    seen = Counter[str]()

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != path:
            return None
        seen[path] += 1
        if seen[path] <= after:
            return None
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={"error": "slow down"})

    return hook


def staged_rows(store: Store, generation: str) -> list[str]:
    if generation not in store.generations():
        return []
    return [str(e["RowKey"]) for e in store.read_partition(generation, STAGE_PARTITION)]


def staged_pages(store: Store, generation: str) -> set[tuple[str, int]]:
    """(path, page_no) of every list page staged: row keys are `<resource>|<query hash>|<page>`."""
    pages = set()
    for row in staged_rows(store, generation):
        resource, which, number = row.split("|")[:3]
        if which != "id":
            pages.add((f"/api/{resource}", int(number)))
    return pages


_prefixes = itertools.count()


@pytest.fixture
def setup(halo_sandbox, azurite):
    service = azurite_service(azurite)
    store = Store(service, prefix=f"stage{next(_prefixes)}x")
    sandbox = halo_sandbox(generate(300, seed=3, today=TODAY))
    settings = settings_for(sandbox, azurite, sync_time_limit_seconds=600)
    put_rules(store, HUNTRESS, SENTINELONE)
    return sandbox, settings, store


def test_retry_after_past_the_time_limit_is_resumable_and_the_next_run_reads_only_the_rest(
    setup,
):
    _sandbox, settings, store = setup
    # Three invoice pages are read, then HaloPSA asks to wait an hour; the run has 10 minutes.
    first_tap = Tap(throttle_long("/api/RecurringInvoice", after=3))
    first = sync(settings, store, first_tap)
    assert first.outcome is Outcome.RESUMABLE, first.error
    assert first.error is None and "next run continues" in (first.note or "")
    assert store.current() is None  # nothing serves yet, and nothing was half-made current
    assert first.stage is not None and first.stage["staged"] > 0 and not first.stage["resumed"]
    generation = first.stage["generation"]
    assert len(staged_rows(store, generation)) == first.stage["staged"]
    kept = staged_pages(store, generation)
    assert kept <= first_tap.pages()

    second_tap = Tap()
    second = sync(settings, store, second_tap)
    assert second.outcome is Outcome.SUCCEEDED, second.error
    assert second.generation == generation
    assert second.stage is not None and second.stage["resumed"]
    assert second.stage["reused"] == first.stage["staged"]
    # Not one page the first run staged is requested again.
    assert not kept & second_tap.pages()
    assert staged_rows(store, generation) == []  # cleaned once the generation serves
    assert staged(store) is None

    # The same answers as one uninterrupted run gives.
    resumed = answers(store)
    third_tap = Tap()
    third = sync(settings, store, third_tap)
    assert third.outcome is Outcome.SUCCEEDED and not third.stage["resumed"]
    # Between them the two runs requested each page of a whole read exactly once.
    assert second_tap.pages() == third_tap.pages() - kept
    assert len(second_tap.pages()) == len([p for p in second_tap.sent if p[1]])
    fresh = answers(store)
    resumed.pop("generation"), fresh.pop("generation")
    assert resumed == fresh

    runs = sync_status(store, datetime.now(UTC), immybot_configured=False).last_runs
    shown = {run.run_id: run for run in runs}
    assert shown[first.run_id].outcome == "resumable"
    assert shown[first.run_id].stage["staged"] == first.stage["staged"]
    assert shown[second.run_id].stage["reused"] == first.stage["staged"]


def test_a_killed_run_is_continued_without_reading_its_staged_pages_again(setup):
    _sandbox, settings, store = setup
    enough = asyncio.Event()
    tap = Tap()

    def kill_after_five_contract_pages(request: httpx.Request) -> None:
        pages = [p for p in tap.sent if p[0] == "/api/ClientContract"]
        if len(pages) >= 5:
            enough.set()

    tap.hook = kill_after_five_contract_pages  # type: ignore[assignment]

    async def killed() -> None:
        async with client(settings, tap) as halo:
            run = asyncio.create_task(run_sync(settings, store=store, halo=halo))
            await enough.wait()
            run.cancel()  # the host kills the process: no record, the lease is left to expire
            with pytest.raises(asyncio.CancelledError):
                await run

    asyncio.run(killed())
    stage = staged(store)
    assert stage is not None
    kept = staged_rows(store, stage.generation)
    kept_pages = staged_pages(store, stage.generation)
    assert kept and store.current() is None
    assert {p for p, _ in kept_pages} >= {"/api/Client", "/api/ClientContract"}
    dead = store.lease()
    assert dead is not None

    later = datetime.now(UTC) + LEASE_TTL + timedelta(seconds=1)
    second_tap = Tap()
    report = sync(settings, store, second_tap, now=lambda: later)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.generation == stage.generation
    assert report.stage["reused"] == len(kept)
    # Every page the killed run staged is reused: this run asks only for the others, once each.
    requested = [(path, page) for path, page in second_tap.sent if page]
    assert len(requested) == len(set(requested))
    assert not set(requested) & kept_pages
    assert kept_pages | set(requested) >= tap.pages()
    assert len(kept_pages | set(requested)) == len(kept_pages) + len(requested)
    runs = {r.run_id: r for r in sync_status(store, later, immybot_configured=False).last_runs}
    assert runs[dead.owner].outcome == "abandoned"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"halo_page_size": 50}, "page size was 100, now 50"),
        ({"now": 25}, "h ago, over the"),
    ],
)
def test_a_stage_of_another_page_size_or_too_old_is_discarded_and_the_run_starts_over(
    setup, change, why
):
    _sandbox, settings, store = setup
    first = sync(settings, store, Tap(throttle_long("/api/RecurringInvoice", after=2)))
    assert first.outcome is Outcome.RESUMABLE
    old = first.stage["generation"]
    kwargs = {}
    if "now" in change:
        later = datetime.now(UTC) + timedelta(hours=change["now"])
        kwargs["now"] = lambda: later
    else:
        settings = settings.model_copy(update=change)
    tap = Tap()
    report = sync(settings, store, tap, **kwargs)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert not report.stage["resumed"] and report.stage["reused"] == 0
    assert why in report.stage["note"] and old in report.stage["note"]
    assert report.generation != old
    assert old not in store.generations()  # the abandoned stage went with its generation
    # Everything was read afresh: the first page of every list again.
    assert ("/api/RecurringInvoice", 1) in tap.pages() and ("/api/Client", 1) in tap.pages()


def test_a_storage_fault_while_staging_fails_the_run_and_keeps_what_serves(setup):
    _sandbox, settings, store = setup
    first_tap = Tap()
    assert sync(settings, store, first_tap).outcome is Outcome.SUCCEEDED
    before = answers(store)
    calls = Counter[str]()

    def fail_staging(partition: str, sequence: int) -> None:
        # The first staging write carries the first page alone (the writer starts on it while
        # the read goes on to the next); every write after it fails.
        if partition == STAGE_PARTITION:
            calls[partition] += 1
            if calls[partition] > 1:
                raise StoreError("injected storage failure")

    faulty = Store(store.service, prefix=store.prefix, transaction_hook=fail_staging)
    report = sync(settings, faulty, Tap())
    assert report.outcome is Outcome.FAILED
    assert "could not stage HaloPSA answer" in report.error
    assert "injected storage failure" in report.error
    assert answers(store) == before

    # The next run continues from the pages staged before the fault: at least those the failed
    # run counted (a batch the fault cut may have landed some whole pages it could not count).
    assert report.stage["staged"] > 0
    again_tap = Tap()
    again = sync(settings, store, again_tap)
    assert again.outcome is Outcome.SUCCEEDED
    assert again.stage["resumed"] and again.stage["reused"] >= report.stage["staged"]
    first_pages = len(first_tap.pages())
    assert len(again_tap.pages()) == first_pages - again.stage["reused"]
    assert staged(store) is None


def test_a_stage_left_behind_by_a_run_that_swapped_is_never_continued(setup):
    _sandbox, settings, store = setup
    first = sync(settings, store, Tap())
    assert first.outcome is Outcome.SUCCEEDED
    before = answers(store)
    # The run swapped but could not drop its stage (a storage blip after the swap).
    store.table("SyncState").upsert_entity(
        {
            "PartitionKey": "sync",
            "RowKey": "stage",
            "generation": first.generation,
            "created_at": datetime.now(UTC),
            "page_size": settings.halo_page_size,
            "read_mode": settings.halo_read_mode,
            "format": STAGE_FORMAT,
        }
    )
    report = sync(settings, store, Tap())
    assert report.outcome is Outcome.SUCCEEDED
    assert not report.stage["resumed"] and "already became current" in report.stage["note"]
    assert report.generation != first.generation
    assert first.generation in store.generations()  # kept for rollback, not written into
    after = answers(store)
    after.pop("generation"), before.pop("generation")
    assert after == before


def test_invoices_read_by_id_are_staged_too(setup):
    sandbox, settings, store = setup
    sandbox.set_faults(Faults(omit_lines=0.25, seed=3))

    def crash(generation: str) -> None:
        raise SimulatedCrash(generation)

    with pytest.raises(SimulatedCrash):
        sync(settings, store, Tap(), before_swap=crash)  # killed after the whole read
    later = datetime.now(UTC) + LEASE_TTL + timedelta(seconds=1)
    tap = Tap()
    report = sync(settings, store, tap, now=lambda: later)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.halo_lines_by_id > 0  # invoices HaloPSA listed without lines...
    assert tap.sent == []  # ...are not read by id again, nor is anything else
    # Everything a whole read requests (its pages and its by-id reads), less the token, was reused.
    fresh_tap = Tap()
    fresh = sync(settings, store, fresh_tap)
    assert fresh.halo_lines_by_id == report.halo_lines_by_id
    assert report.stage["reused"] == len(fresh_tap.sent) - 1
