"""Benchmark: read a whole generated HaloPSA data set through HaloClient from the sandbox.

Prints records read, requests made, the fewest requests that data set and page size allow, and
wall time. The sandbox runs in its own process, as HaloPSA would, on loopback.

    python bench/halo_read.py [--clients 5000] [--page-size 100] [--latency-ms 0] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.halo_data import generate  # noqa: E402
from sandbox.processes import start_module, stop_process  # noqa: E402
from shared.halo.client import HaloClient  # noqa: E402
from shared.outbound.budget import RequestBudget  # noqa: E402

LISTS = {
    "Client": "clients",
    "Site": "sites",
    "ClientContract": "contracts",
    "RecurringInvoice": "invoices",
    "Item": "items",
}


async def read_all(url: str, page_size: int, concurrency: int, per_minute: float | None) -> tuple:
    budget = RequestBudget(per_minute) if per_minute else None
    async with HaloClient(
        url,
        "sandbox-client",
        "sandbox-secret",
        page_size=page_size,
        max_concurrency=concurrency,
        budget=budget,
    ) as halo:
        started = time.perf_counter()
        listings = await asyncio.gather(
            halo.clients(), halo.sites(), halo.contracts(), halo.recurring_invoices(), halo.items()
        )
        wall = time.perf_counter() - started
    # Counts, not the records: at exit Python 3.11's asyncio.run formats the main task (its
    # result included) once, and 70,000 records' reprs cost seconds of the process's time.
    counts = [(len(x.records), len(x.rejects)) for x in listings]
    lines = sum(len(i.lines) for i in listings[3].records)
    return counts, lines, halo.stats, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--per-minute", type=float, default=None, help="client request budget")
    args = parser.parse_args()

    data = generate(args.clients, seed=args.seed)
    counts = {resource: len(getattr(data, key)) for resource, key in LISTS.items()}
    proc, url = start_module(
        "sandbox.halo",
        *("--clients", str(args.clients), "--seed", str(args.seed)),
        *("--latency-ms", str(args.latency_ms)),
    )
    try:
        listings, lines, stats, wall = asyncio.run(
            read_all(url, args.page_size, args.concurrency, args.per_minute)
        )
    finally:
        stop_process(proc)

    read = sum(records + rejects for records, rejects in listings)
    # One token, and every list needs at least ceil(n / page) pages (an empty list still one).
    minimum = 1 + sum(max(1, math.ceil(n / args.page_size)) for n in counts.values())
    print(f"data set        : {args.clients} clients, seed {args.seed}, page size {args.page_size}")
    for (resource, n), listing in zip(counts.items(), listings, strict=True):
        print(
            f"  {resource:<17}{n:>8} in HaloPSA, {listing[0]:>8} read, "
            f"{stats.requests[resource]:>5} requests"
        )
    print(f"records read    : {read} (+ {lines} invoice lines)")
    print(
        f"requests made   : {stats.total_requests} (token {stats.requests['auth/token']}, "
        f"retries {stats.retries})"
    )
    print(f"minimum possible: {minimum}")
    print(f"wall time       : {wall:.2f} s ({read / wall:,.0f} records/s)")


if __name__ == "__main__":
    main()
