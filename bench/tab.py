"""Benchmark: the technician tab with HaloPSA and ImmyBot each adding 50 ms to every call.

Both sandboxes run in their own processes with `--latency-ms` (ImmyBot with at least
`--min-computers` computers per tenant); a generated data set is synced into Azurite, then the tab
is rendered through the registered handler for tickets of clients that have an ImmyBot tenant, on
one event loop as the Functions worker runs them: snapshot only (ImmyBot not configured for the
tab: the ticket and the coverage), and live (the ticket, then the tenant's computers from ImmyBot
beside their stored inventory; no per-computer request).

    python bench/tab.py [--clients 2000] [--calls 200] [--latency-ms 50] [--min-computers 5]
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

from bench.harness import percentile, use_sandboxes  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.immybot_data import immy_data_for  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.api.rules import import_rules  # noqa: E402
from shared.runtime.process import get_settings, get_store  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402


def timed(
    handler: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]],
    ticket_ids: list[int],
    expect: str,
) -> tuple[list[float], int]:
    """Render each ticket's tab on one event loop (as the Functions worker does): seconds each,
    and how many pages said `expect`."""
    samples, said = [], 0
    with asyncio.Runner() as runner:
        for ticket_id in ticket_ids:
            request = func.HttpRequest(
                "GET",
                f"/api/technician-tab/ticket/{ticket_id}",
                body=b"",
                route_params={"ticket_id": str(ticket_id)},
            )
            started = time.perf_counter()
            response = runner.run(handler(request))
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_body()[:200]
            said += expect in response.get_body().decode()
    return samples, said


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
    parser.add_argument("--min-computers", type=int, default=5)
    args = parser.parse_args()

    data = generate(args.clients, seed=1)
    # Tickets of clients whose ImmyBot tenant has their exact name (most do: see immybot_data).
    tenants = {t["name"] for t in immy_data_for(data, 1).tenants}
    mapped = {c["id"] for c in data.clients if c["name"] in tenants and not c.get("inactive")}
    latency = ["--clients", str(args.clients), "--seed", "1", "--latency-ms", str(args.latency_ms)]
    computers = str(args.min_computers)
    with azurite_table() as azurite:
        halo, halo_url = start_module("sandbox.halo", *latency)
        immy, immy_url = start_module("sandbox.immybot", *latency, "--min-computers", computers)
        try:
            use_sandboxes(halo_url, azurite.connection_string, immy_url)
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
            candidates = [t for t in data.tickets if t.get("client_id") in mapped]
            tickets = [t["id"] for t in rng.sample(candidates, min(args.calls, len(candidates)))]
            # Warm the token caches and the generation's shared reads, as a running instance has.
            timed(handler, tickets[:5], "")
            live, live_views = timed(handler, tickets, "live from ImmyBot")
            for key in ("IMMY_BASE_URL", "IMMY_TENANT_ID", "IMMY_CLIENT_ID", "IMMY_CLIENT_SECRET"):
                os.environ.pop(key)
            get_settings.cache_clear()
            timed(handler, tickets[:5], "ImmyBot is not configured")
            snapshot, _ = timed(handler, tickets, "")
        finally:
            stop_process(halo)
            stop_process(immy)

    print(
        f"data set  : {args.clients} clients, sync {report.outcome} in {report.phases['total']:.1f} s"
    )
    print(f"latency   : HaloPSA and ImmyBot sandboxes each add {args.latency_ms:.0f} ms per call")
    print(
        f"live      : the tenant's computers (at least {computers}) live, their software as "
        f"stored by the sync ({live_views} of {len(live)} views read ImmyBot live)"
    )
    print(line("tab, snapshot only (no ImmyBot)", snapshot))
    print(line("tab, live ImmyBot computer list", live))


if __name__ == "__main__":
    main()
