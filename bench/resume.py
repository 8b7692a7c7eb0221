"""Benchmark: a large REST sync at the default request budget, completed over two timer runs.

Each run is the real `run_sync` against the HaloPSA sandbox and Azurite, at the default
HALO_REQUESTS_PER_MINUTE and SYNC_TIME_LIMIT_SECONDS. Time is scaled, not the budget: the request
budget's clock runs `--scale` times faster than the wall clock and its sleeps are `--scale` times
shorter, and the run's time limit is measured on that clock. So every request goes at the pace
the default budget allows and the first run stops where it would stop after SYNC_TIME_LIMIT_SECONDS
of real reading; only the waiting between requests is shortened (Azurite writes are not scaled).
The scale must leave the budget, not the machine, as the limit: the printed requests/min of each
read should be the budget's; if lower, use a smaller --scale.

    python bench/resume.py [--clients 20000] [--scale 20]

Prints run 1's outcome (resumable) and pages staged, run 2's outcome (succeeded) and pages reused
against re-read, and all HaloPSA requests of both runs against the minimum of one whole read.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from bench.sync import RULES  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.halo.client import HaloClient  # noqa: E402
from shared.outbound.budget import RequestBudget  # noqa: E402
from shared.settings import Settings, load_settings  # noqa: E402
from shared.store.repository import Store  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402
from shared.sync.runs import SyncReport  # noqa: E402


class ScaledClock:
    """A monotonic clock `scale` times faster than the wall clock, and a sleep to match."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._start = time.monotonic()

    def __call__(self) -> float:
        return self._start + (time.monotonic() - self._start) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scale)


async def one_run(settings: Settings, store: Store, scale: float) -> SyncReport:
    """One timer run with a fresh budget on a scaled clock."""
    clock = ScaledClock(scale)
    budget = RequestBudget(settings.halo_requests_per_minute, clock=clock, sleep=clock.sleep)
    async with HaloClient.from_settings(settings, budget=budget, sleep=clock.sleep) as halo:
        return await run_sync(settings, store=store, halo=halo)


def timing(report: SyncReport, rate: float, scale: float) -> str:
    """The run's requests in minutes at the budget, and how long it ran.

    A run that stops at the time limit only read: its length on the budget clock is what it would
    last for real, and agrees with its requests at the budget when the budget set the pace. A run
    that also writes spends unscaled wall time in Azurite (and loading staged pages) on top.
    """
    total = report.phases.get("total", 0.0)
    minutes = (
        f"{report.halo_requests} requests = {report.halo_requests / rate:.1f} min at the budget"
    )
    if report.outcome == "resumable":
        return f"{minutes}, stopped after {total * scale / 60:.1f} min on the budget clock"
    return f"{minutes}, then {total:.1f} s wall in all (stage load, validation, Azurite writes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=20.0, help="budget clock speed-up")
    parser.add_argument("--read-timeout", type=float, default=600)
    args = parser.parse_args()

    data = generate(args.clients, seed=args.seed)
    lists = [data.clients, data.sites, data.contracts, data.invoices, data.items]
    with azurite_table() as azurite:
        proc, url = start_module(
            "sandbox.halo", "--clients", str(args.clients), "--seed", str(args.seed)
        )
        try:
            for key in [k for k in os.environ if k.startswith(("IMMY_", "HALO_", "SYNC_"))]:
                del os.environ[key]
            settings = load_settings(
                halo_base_url=url,
                halo_client_id="sandbox-client",
                halo_client_secret="sandbox-secret",  # noqa: S106 - the sandbox's published one
                halo_read_mode="rest",
                tables_connection_string=azurite.connection_string,
                tables_endpoint=None,
            )
            service = TableServiceClient.from_connection_string(
                azurite.connection_string, read_timeout=args.read_timeout
            )
            store = Store(service, concurrency=4)
            for rule in RULES:
                store.put_rule_document(rule.key, rule.model_dump(mode="json"))
            first = asyncio.run(one_run(settings, store, args.scale))
            second = asyncio.run(one_run(settings, store, args.scale))
        finally:
            stop_process(proc)

    pages = sum(max(1, math.ceil(len(x) / settings.halo_page_size)) for x in lists)
    minimum = 1 + pages  # one token, every page once
    total = first.halo_requests + second.halo_requests
    one, two = first.stage or {}, second.stage or {}
    # Every page is staged by the run whose request for it succeeded, and only then; a request
    # that staged nothing (in flight when run 1 stopped, or refused) was a page read again.
    page_requests = total - 2 - first.halo_retries - second.halo_retries  # less the two tokens
    re_read = page_requests - one.get("staged", 0) - two.get("staged", 0)
    print(
        f"data set      : {args.clients} clients, {len(data.contracts)} contracts, "
        f"{len(data.invoices)} recurring invoices; {pages} pages of {settings.halo_page_size}"
    )
    print(
        f"budget        : {settings.halo_requests_per_minute:g} requests/min (default), time "
        f"limit {settings.sync_time_limit_seconds} s per run, budget clock x{args.scale:g}"
    )
    print(
        f"one run would : {minimum} requests = {minimum / settings.halo_requests_per_minute:.1f} "
        f"min at the budget (host timeout 30 min)"
    )
    print(
        f"run 1         : {first.outcome}, {one.get('staged', 0)} pages staged, "
        f"{timing(first, settings.halo_requests_per_minute, args.scale)}"
    )
    print(
        f"run 2         : {second.outcome}, {two.get('reused', 0)} pages reused, "
        f"{two.get('staged', 0)} read, {re_read} requested twice (in flight when run 1 "
        f"stopped), {timing(second, settings.halo_requests_per_minute, args.scale)}"
    )
    print(
        f"HaloPSA       : {total} requests over both runs, single-run minimum {minimum} "
        f"({100 * (total / minimum - 1):+.1f}%)"
    )
    print(f"generation    : {second.generation} (run 1 staged {one.get('generation')})")
    print(f"targets       : {second.targets}")


if __name__ == "__main__":
    main()
