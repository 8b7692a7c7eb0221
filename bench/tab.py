"""Benchmark: the technician tab with HaloPSA and ImmyBot each adding 50 ms to every call.

Both sandboxes run in their own processes with `--latency-ms`; a generated data set is synced into
Azurite, then the tab is rendered through the registered handler for tickets of many clients:
from the snapshot (the normal path) and with live ImmyBot computers (snapshot considered old).

    python bench/tab.py [--clients 2000] [--calls 200] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

from bench.harness import percentile  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.rule_admin import import_rules  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.store import get_store  # noqa: E402
from shared.sync import run_sync  # noqa: E402


def timed(
    handler: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]], ticket_ids: list[int]
) -> list[float]:
    samples = []
    for ticket_id in ticket_ids:
        request = func.HttpRequest(
            "GET",
            f"/api/technician-tab/ticket/{ticket_id}",
            body=b"",
            route_params={"ticket_id": str(ticket_id)},
        )
        started = time.perf_counter()
        response = asyncio.run(handler(request))
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_body()[:200]
    return samples


def line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<40} n={len(ms):<4} p50 {percentile(ms, 0.5):6.1f} ms   "
        f"p95 {percentile(ms, 0.95):6.1f} ms   p99 {percentile(ms, 0.99):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    data = generate(args.clients, seed=1)
    latency = ["--clients", str(args.clients), "--seed", "1", "--latency-ms", str(args.latency_ms)]
    with azurite_table() as azurite:
        halo, halo_url = start_module("sandbox.halo", *latency)
        immy, immy_url = start_module("sandbox.immybot", *latency)
        try:
            os.environ.update(
                {
                    "HALO_BASE_URL": halo_url,
                    "HALO_CLIENT_ID": "sandbox-client",
                    "HALO_CLIENT_SECRET": "sandbox-secret",
                    "HALO_REQUESTS_PER_MINUTE": "1000000",
                    "TABLES_CONNECTION_STRING": azurite.connection_string,
                    "IMMY_BASE_URL": immy_url,
                    "IMMY_TENANT_ID": "11111111-2222-3333-4444-555555555555",
                    "IMMY_CLIENT_ID": "immy-client",
                    "IMMY_CLIENT_SECRET": "immy-secret",
                    "IMMY_AUTHORITY_HOST": immy_url,
                    "IMMY_LIVE_AFTER_MINUTES": "60",
                }
            )
            get_settings.cache_clear()
            get_store.cache_clear()
            import_rules(
                get_store(),
                (ROOT / "sandbox" / "demo_rules.json").read_bytes(),
                datetime.now(UTC).date(),
            )
            report = asyncio.run(run_sync())
            import function_app

            handler = next(
                f.get_user_function()
                for f in function_app.app.get_functions()
                if f.get_function_name() == "technician_tab"
            )
            rng = random.Random(7)
            tickets = [
                t["id"] for t in rng.sample(data.tickets, min(args.calls, len(data.tickets)))
            ]
            timed(handler, tickets[:5])  # warm the token caches, as a running instance has them
            snapshot = timed(handler, tickets)
            os.environ["IMMY_LIVE_AFTER_MINUTES"] = "0"
            get_settings.cache_clear()
            live = timed(handler, tickets)
        finally:
            stop_process(halo)
            stop_process(immy)

    print(
        f"data set  : {args.clients} clients, sync {report.outcome} in {report.phases['total']:.1f} s"
    )
    print(f"latency   : HaloPSA and ImmyBot sandboxes each add {args.latency_ms:.0f} ms per call")
    print(line("tab, computers from the snapshot", snapshot))
    print(line("tab, computers live from ImmyBot", live))


if __name__ == "__main__":
    main()
