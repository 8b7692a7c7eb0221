"""Benchmark: one full sync of a generated HaloPSA data set into real Azurite.

Prints wall time per phase, HaloPSA requests against the minimum, table transactions against the
minimum (entities / 100 per partition), and peak memory. The sandbox and Azurite run in their own
processes on loopback.

    python bench/sync.py [--clients 5000] [--page-size 100] [--immybot] [--naive] [--steady]

With --immybot an ImmyBot sandbox (tenants for most clients, their computers) runs too, and the
largest entity and property written show the snapshot stays inside Table Storage's limits
(1 MiB per entity, 64 KiB per property) however many clients there are.

With --steady the same data is synced again, then data with 1% of clients changed
(bench/steady.py): each prints the entities it wrote against the first sync's (under 5% and 10%),
then retention and a rollback are checked.

With --naive the same sandboxes are then read by a naive sync (bench/naive.py: sequential, every
recurring invoice read by id, one upsert per record) into the same Azurite, and the ratio is
printed, with the time both sets of HaloPSA requests take at HaloPSA's hosted limit (300 per
rolling 5 minutes) and at the app's default budget (HALO_REQUESTS_PER_MINUTE).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import synced  # noqa: E402
from bench.naive import NaiveResult, naive_sync  # noqa: E402
from bench.steady import Steady, homes_in_use, print_steady, steady_state  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.immybot import MAX_TAKE  # noqa: E402
from shared.core.rules import ItemMatch, Rule  # noqa: E402
from shared.immybot.client import PAGE_SIZE, TENANT_PAGE_SIZE  # noqa: E402
from shared.settings import DEFAULT_HALO_REQUESTS_PER_MINUTE  # noqa: E402
from shared.sync.runs import SyncReport  # noqa: E402

# Hosted HaloPSA: 300 requests per rolling 5 minutes (DESIGN.md section 8).
HOSTED_WINDOW_REQUESTS = 300
HOSTED_WINDOW_MINUTES = 5


def at_hosted_limit(requests: int) -> float:
    """Minutes `requests` take at the hosted limit: 300 at once, the next 300 five minutes on."""
    return (max(0, requests - 1) // HOSTED_WINDOW_REQUESTS) * HOSTED_WINDOW_MINUTES


def at_budget(requests: int) -> float:
    """Minutes `requests` take at the default budget (its burst aside)."""
    return requests / DEFAULT_HALO_REQUESTS_PER_MINUTE


# With detect patterns, so a sync with ImmyBot also reads where the software is (one inventory
# search per pattern).
RULES = (
    Rule(software="Huntress", contract_types=["Managed Security"], detect=["Huntress Agent"]),
    Rule(software="SentinelOne", items=[ItemMatch(code="S1-COMPLETE")], detect=["Sentinel Agent"]),
)


def immybot_requests(report: SyncReport) -> str | None:
    """ImmyBot API requests the sync made against the fewest its API allows, or None without
    ImmyBot: tenant pages plus the empty page that ends them (the list has no count), computer
    pages at the server's cap, the provider link and its clients, one inventory search per
    search text of the rules' detect patterns, and the tags: one read, plus in `apply` mode the
    creates and writes the plan needs (`plan` mode writes nothing)."""
    tags, state = report.immy_tags or {}, report.immybot or {}
    if "immybot_requests" not in tags:
        return None
    made = tags["immybot_requests"]
    tag_requests = tags.get("minimum_requests", 1) if tags.get("mode") == "apply" else 1
    inventory = state.get("inventory") or {}
    searches = len(inventory.get("searched", [])) + len(inventory.get("failed", {}))
    minimum = (
        math.ceil(state.get("tenants", 0) / TENANT_PAGE_SIZE) + 1
        + max(1, math.ceil(state.get("computers", 0) / min(PAGE_SIZE, MAX_TAKE)))
        + 2
        + searches
        + tag_requests
    )  # fmt: skip
    computers = state.get("computers", 0)
    per = f", {1000 * made / computers:.2f} per 1,000 computers read" if computers else ""
    kept = f", {inventory['rows']} inventory rows kept" if inventory else ""
    return (
        f"ImmyBot       : {made} requests, minimum {minimum} ({100 * (made / minimum - 1):+.1f}%)"
        + per
        + kept
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--immybot", action="store_true", help="run an ImmyBot sandbox too")
    parser.add_argument(
        "--naive", action="store_true", help="then run a naive sync of the same data (ratio)"
    )
    parser.add_argument(
        "--steady", action="store_true", help="then an unchanged sync and a 1%%-changed one"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="table transactions in flight (default 8)"
    )
    parser.add_argument(
        "--read-timeout", type=float, default=300, help="seconds to wait for one table answer"
    )
    args = parser.parse_args()

    data = generate(args.clients, seed=args.seed)
    lists = [data.clients, data.sites, data.contracts, data.invoices, data.items]
    pages = 1 + sum(max(1, math.ceil(len(x) / args.page_size)) for x in lists)
    naive: NaiveResult | None = None
    steady: Steady | None = None
    needed: set[str] = set()

    with synced(
        args.clients,
        RULES,
        args.seed,
        args.page_size,
        immybot=args.immybot,
        concurrency=args.concurrency,
        read_timeout=args.read_timeout,
    ) as done:
        report = done.report
        if args.naive:
            table = done.store.table("naivesync")
            naive = asyncio.run(naive_sync(done.settings, table, args.page_size))
        if args.steady:
            steady = steady_state(done, args.clients, args.seed, args.page_size)
            needed = homes_in_use(done)
    # Invoices listed without lines cost one request each, whoever reads them.
    minimum_requests = pages + report.halo_lines_by_id

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"data set      : {args.clients} clients, {len(data.contracts)} contracts, "
        f"{len(data.invoices)} recurring invoices, {sum(len(i['lines']) for i in data.invoices)} lines"
    )
    print(f"outcome       : {report.outcome} {report.error or ''}".rstrip())
    print("phases (s)    : " + ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items()))
    print(f"wall time     : {report.phases['total']:.2f} s")
    print(
        f"HaloPSA       : {report.halo_requests} requests, minimum {minimum_requests} "
        f"({100 * (report.halo_requests / minimum_requests - 1):+.1f}%)"
    )
    print(
        f"Table Storage : {report.transactions} transactions, minimum {report.transactions_minimum} "
        f"({100 * (report.transactions / max(1, report.transactions_minimum) - 1):+.1f}%), "
        f"{report.entities_written} entities"
    )
    print(f"targets       : {report.targets}")
    immybot = immybot_requests(report)
    if immybot is not None:
        print(immybot)
    print(
        f"largest write : entity {report.largest_entity / 1024:.1f} KiB (limit 1024), "
        f"property {report.largest_property / 1024:.1f} KiB (limit 64)"
    )
    print(f"peak memory   : {peak_mib:.0f} MiB (max RSS of this process)")
    if naive is not None:
        print_naive(report, naive)
    if steady is not None:
        print_steady(report, steady, args.clients, needed)


def print_naive(report: SyncReport, naive: NaiveResult) -> None:
    """The naive sync's figures beside the app's, and the ratios."""
    app_total = report.phases["total"]
    print(
        f"naive sync    : {naive.seconds:.2f} s wall, {naive.halo_requests} HaloPSA requests, "
        f"{naive.immy_requests} ImmyBot requests, {naive.entities} single-entity upserts"
    )
    print(f"wall ratio    : naive / app = {naive.seconds / app_total:.1f}x")
    budget = f"{DEFAULT_HALO_REQUESTS_PER_MINUTE:g}/min"
    for name, requests in (("app", report.halo_requests), ("naive", naive.halo_requests)):
        print(
            f"{name:<14}: {requests} HaloPSA requests = {at_hosted_limit(requests):.0f} min at the "
            f"hosted limit (300/5 min), {at_budget(requests):.1f} min at the default budget "
            f"({budget})"
        )
    print(
        f"request ratio : naive / app = {naive.halo_requests / report.halo_requests:.1f}x "
        f"(at the default budget: {at_budget(report.halo_requests):.1f} min against "
        f"{at_budget(naive.halo_requests):.1f} min)"
    )


if __name__ == "__main__":
    main()
