"""Benchmark: a full sync that reads HaloPSA through SQL reports (HALO_READ_MODE=report).

For each data set size: HaloPSA requests (token, reports, and the REST sample that proves the
report read), records read, wall time per phase, and how long those requests take within the
default request budget and at the hosted limit, beside the fewest requests a REST read of the same
data needs. The data set is one whose REST answers the SQL tables can hold (as_tables_hold_it), so
the proof finds nothing and the run stays on reports. The sandbox (running the SQL on SQLite) and
Azurite run in their own processes on loopback.

    python bench/report_read.py [--clients 5000 20000] [--max-rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from sandbox.halo import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.halo_report import as_tables_hold_it  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.core.rules import ItemMatch, Rule  # noqa: E402
from shared.halo import report as halo_report  # noqa: E402
from shared.halo.client import HaloClient  # noqa: E402
from shared.halo.report_sql import PROBE_SQL  # noqa: E402
from shared.settings import DEFAULT_HALO_REQUESTS_PER_MINUTE, load_settings  # noqa: E402
from shared.store.repository import Store  # noqa: E402
from shared.sync.read import read_halo  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402
from shared.sync.runs import SyncReport  # noqa: E402

RULES = (
    Rule(software="Huntress", contract_types=["Managed Security"]),
    Rule(software="SentinelOne", items=[ItemMatch(code="S1-COMPLETE")]),
)
HOSTED_LIMIT_PER_MINUTE = 60.0  # 300 per rolling 5 minutes
PAGE_SIZE = 100


def budget_seconds(requests: int, per_minute: float) -> float:
    """Time `requests` take in the app's token bucket (burst first, then the rate)."""
    burst = max(1, min(20, int(per_minute / 6)))
    return max(0, requests - burst) * 60.0 / per_minute


def one(
    clients: int, seed: int, mode: str
) -> tuple[SyncReport, dict[str, int], int, tuple[int, float]]:
    data = as_tables_hold_it(generate(clients, seed=seed))
    lists = [data.clients, data.sites, data.contracts, data.invoices, data.items]
    rest_minimum = 1 + sum(max(1, math.ceil(len(x) / PAGE_SIZE)) for x in lists)
    with tempfile.TemporaryDirectory() as folder, azurite_table() as azurite:
        path = Path(folder) / "halo.json"
        data.dump(path)
        proc, url = start_module("sandbox.halo", "--data", str(path))
        try:
            settings = load_settings(
                halo_base_url=url,
                halo_client_id=DEFAULT_CLIENT_ID,
                halo_client_secret=DEFAULT_CLIENT_SECRET,
                halo_requests_per_minute=1_000_000,  # the sandbox has no rate limit
                halo_page_size=PAGE_SIZE,
                halo_read_mode=mode,
                tables_connection_string=azurite.connection_string,
                tables_endpoint=None,
            )
            store = Store(TableServiceClient.from_connection_string(azurite.connection_string))
            for rule in RULES:
                store.put_rule_document(rule.key, rule.model_dump(mode="json"))

            async def go() -> tuple[SyncReport, dict[str, int], tuple[int, float]]:
                # The sandbox copies its data set into SQLite on the first report: do that before
                # the clock starts, as a real HaloPSA has its database already.
                async with HaloClient.from_settings(settings) as warm:
                    await warm.report(PROBE_SQL)
                # The read alone (HaloPSA's part, whatever Table Storage does next).
                async with HaloClient.from_settings(settings) as reader:
                    started = time.perf_counter()
                    await read_halo(reader, mode)
                    read_only = (reader.stats.total_requests, time.perf_counter() - started)
                async with HaloClient.from_settings(settings) as halo:
                    report = await run_sync(settings, store=store, halo=halo)
                    return report, dict(halo.stats.requests), read_only

            report, by_resource, read_only = asyncio.run(go())
        finally:
            stop_process(proc)
    return report, by_resource, rest_minimum, read_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("report", "auto"), default="report")
    parser.add_argument("--max-rows", type=int, default=halo_report.MAX_ROWS_PER_ANSWER)
    args = parser.parse_args()
    halo_report.MAX_ROWS_PER_ANSWER = args.max_rows

    for clients in args.clients:
        report, by_resource, rest_minimum, read_only = one(clients, args.seed, args.mode)
        requests = report.halo_requests
        print(f"== {clients} clients, HALO_READ_MODE={args.mode} (ran: {report.read_mode})")
        print(f"read alone     : {read_only[0]} requests in {read_only[1]:.2f} s (token included)")
        print(f"outcome        : {report.outcome} {report.error or ''}".rstrip())
        proof = report.read_proof or {}
        print(
            f"proof          : {proof.get('requests', 0)} REST sample requests, compared "
            f"{proof.get('compared', {})}, {proof.get('findings', 0)} findings, "
            f"{proof.get('splits', 0)} ranges split"
        )
        print(f"read           : {report.read}")
        print(
            f"HaloPSA        : {requests} requests {by_resource} (REST needs at least {rest_minimum})"
        )
        print("phases (s)     : " + ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items()))
        default = budget_seconds(requests, DEFAULT_HALO_REQUESTS_PER_MINUTE)
        hosted = budget_seconds(requests, HOSTED_LIMIT_PER_MINUTE)
        rest_default = budget_seconds(rest_minimum, DEFAULT_HALO_REQUESTS_PER_MINUTE)
        print(
            f"request budget : {default:.0f} s at the default {DEFAULT_HALO_REQUESTS_PER_MINUTE:.0f}"
            f"/min, {hosted:.0f} s at the hosted limit; REST's minimum at the default: "
            f"{rest_default / 60:.1f} min"
        )
        print(f"targets        : {report.targets}")


if __name__ == "__main__":
    main()
