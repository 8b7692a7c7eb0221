"""Benchmark: a full sync through HaloPSA faults, into real Azurite, and whether it came out exact.

The sandbox (its own process, on loopback) answers a seeded share of requests with 500 and every
Nth request with a 429 without Retry-After, as hosted HaloPSA does. Prints the outcome, HaloPSA
requests against the fewest the data set allows, retries, 429s and 500s, wall time, and whether
the stored generation holds exactly the data set's records. Exits non-zero unless the run
succeeded, the snapshot is exact and the requests stay within 2x the minimum.

The 429 floor (HALO_BACKOFF_429_SECONDS, 30 s in production) is lowered here: a 429 on every
third request would otherwise make the run last about an hour of pauses.

    python bench/faults.py [--clients 3000] [--error-rate 0.05] [--throttle-every 3]
                           [--backoff-429 0.2] [--omit-lines 0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from sandbox.halo_data import generate  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.core.rules import ItemMatch, Rule  # noqa: E402
from shared.halo.client import HaloClient  # noqa: E402
from shared.settings import load_settings  # noqa: E402
from shared.store.generations import read_snapshot  # noqa: E402
from shared.store.repository import Store  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402
from shared.sync.runs import SyncReport  # noqa: E402

RULES = (
    Rule(software="Huntress", contract_types=["Managed Security"]),
    Rule(software="SentinelOne", items=[ItemMatch(code="S1-COMPLETE")]),
)
KINDS = ("clients", "sites", "contracts", "invoices", "items")


def _whole(value: Any) -> int:
    return int(float(value))


def expected_counts(data: Any) -> dict[str, Any]:
    """Ids per record type and the number of invoice lines in the data set."""
    found: dict[str, Any] = {kind: {_whole(r["id"]) for r in getattr(data, kind)} for kind in KINDS}
    found["lines"] = sum(len(i.get("lines", [])) for i in data.invoices)
    return found


def stored_counts(store: Store, generation: str) -> dict[str, Any]:
    """The same, read back from the stored generation."""
    snapshot = read_snapshot(store, generation)
    return {
        "clients": set(snapshot.clients),
        "sites": set(snapshot.sites),
        "contracts": {c.id for c in snapshot.contracts},
        "invoices": {i.id for i in snapshot.invoices},
        "items": set(snapshot.items),
        "lines": sum(len(i.lines) for i in snapshot.invoices),
    }


async def sync_once(settings: Any, store: Store) -> tuple[SyncReport, Any]:
    async with HaloClient.from_settings(settings) as halo:
        report = await run_sync(settings, store=store, halo=halo)
        return report, halo.stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--error-rate", type=float, default=0.05, help="share of HaloPSA 500s")
    parser.add_argument("--throttle-every", type=int, default=3, help="a 429 every Nth request")
    parser.add_argument("--backoff-429", type=float, default=0.2, help="HALO_BACKOFF_429_SECONDS")
    parser.add_argument("--omit-lines", type=float, default=0.0, help="invoices listed bare")
    parser.add_argument(
        "--read-mode",
        default="rest",
        choices=("rest", "report", "auto"),
        help="HALO_READ_MODE (default rest: the paged reads are what faults hit hardest)",
    )
    args = parser.parse_args()
    # Every retry logs a warning; hundreds of them would bury the figures.
    logging.getLogger("halo_immy").setLevel(logging.ERROR)

    data = generate(args.clients, seed=args.seed)
    expected = expected_counts(data)
    lists = [getattr(data, kind) for kind in KINDS]
    # One token, and per list every page once (a list that fills its last page needs one more,
    # empty page to prove its end; an empty list still one request).
    minimum = 1 + sum(len(x) // args.page_size + 1 for x in lists)

    with azurite_table() as azurite:
        proc, url = start_module(
            "sandbox.halo",
            *("--clients", str(args.clients), "--seed", str(args.seed)),
            *("--error-rate", str(args.error_rate), "--error-status", "500"),
            *("--throttle-every", str(args.throttle_every)),
            *("--omit-lines", str(args.omit_lines)),
        )
        try:
            settings = load_settings(
                halo_base_url=url,
                halo_client_id="sandbox-client",
                halo_client_secret="sandbox-secret",  # noqa: S106 - the sandbox's published one
                # The sandbox has no rate window to respect; its 429s come by count.
                halo_requests_per_minute=1_000_000,
                halo_page_size=args.page_size,
                halo_read_mode=args.read_mode,
                halo_backoff_429_seconds=args.backoff_429,
                tables_connection_string=azurite.connection_string,
                tables_endpoint=None,
            )
            store = Store(TableServiceClient.from_connection_string(azurite.connection_string))
            for rule in RULES:
                store.put_rule_document(rule.key, rule.model_dump(mode="json"))
            started = time.perf_counter()
            report, stats = asyncio.run(sync_once(settings, store))
            wall = time.perf_counter() - started
            server = _server_stats(url)
            stored = stored_counts(store, report.generation) if report.generation else {}
        finally:
            stop_process(proc)

    # A listing without lines costs one more request per invoice, read by id.
    minimum += stats.lines_fetched_by_id
    statuses = server.get("statuses", {})
    exact = stored == expected
    ratio = stats.total_requests / minimum
    print(
        f"data set      : {args.clients} clients, {len(data.sites)} sites, "
        f"{len(data.contracts)} contracts, {len(data.invoices)} recurring invoices "
        f"({expected['lines']} lines), {len(data.items)} items; page size {args.page_size}"
    )
    print(
        f"faults        : {args.error_rate:.0%} HaloPSA 500s (seeded), a 429 on every "
        f"{_ordinal(args.throttle_every)} request, {args.omit_lines:.0%} invoices listed "
        f"without lines"
    )
    print(
        f"429 floor     : {args.backoff_429:g} s (HALO_BACKOFF_429_SECONDS lowered for the "
        f"bench; production default 30 s)"
    )
    ended = f"{report.outcome} {report.error}" if report.error else str(report.outcome)
    print(f"outcome       : {ended} (read mode {report.read_mode})")
    print(
        f"snapshot      : {'exact' if exact else 'MISMATCH'} "
        f"({', '.join(f'{k} {_size(stored.get(k))}/{_size(v)}' for k, v in expected.items())})"
    )
    print(
        f"HaloPSA       : {stats.total_requests} requests, minimum {minimum} "
        f"({ratio:.2f}x; sandbox counted {server.get('total')})"
    )
    print(
        f"retries       : {stats.retries} ({statuses.get('429', 0)} after 429s, "
        f"{statuses.get('500', 0)} after 500s); lines read by id {stats.lines_fetched_by_id}"
    )
    print(f"wall time     : {wall:.2f} s (sync phases: {report.phases})")
    ok = str(report.outcome) == "succeeded" and exact and ratio <= 2.0
    print(f"verdict       : {'PASS' if ok else 'FAIL'} (succeeded, exact, requests <= 2x minimum)")
    return 0 if ok else 1


def _server_stats(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(f"{url}/_sandbox/stats", timeout=10).json())


def _size(value: Any) -> int | None:
    if value is None:
        return None
    return len(value) if isinstance(value, set) else int(value)


def _ordinal(n: int) -> str:
    return {1: "", 2: "second", 3: "third"}.get(n, f"{n}th")


if __name__ == "__main__":
    sys.exit(main())
