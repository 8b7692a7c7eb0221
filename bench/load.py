"""Benchmark: the targets API and the technician tab under 1 and 20 concurrent callers, over HTTP.

A generated data set is synced into Azurite with a rule whose recurring item is billed to the
number of clients nearest 1,800 (so one answer holds ~1,800 targets), then the app is served by
`sandbox/devhost.py --existing` in its own process and called over loopback HTTP by 1 and by 20
concurrent callers: `GET /api/targets?software=...` and `GET /api/technician-tab/ticket/{id}`
(the ticket, the tenant's computers and their detected software read live, as every view
does). The HaloPSA and ImmyBot sandboxes, each in its own process, add `--latency-ms` to every
call.

Every tab call is for a ticket no earlier call asked for: the warm-up, the 1-caller run and the
20-caller run each draw `--calls` tickets of their own from the data set, so no answer is served
from what an earlier view of the same ticket left in the caches (a handful of tickets viewed over
and over would measure the caches, not the tab). Several tickets can still share a client.

How the devhost mirrors the Azure Functions Python worker: one worker process (the default
FUNCTIONS_WORKER_PROCESS_COUNT=1), async handlers (the tab) on one event loop that lives as long
as the process, plain handlers (targets) in a thread pool of PYTHON_THREADPOOL_THREAD_COUNT
threads (unset: min(32, CPUs + 4), 6 on this 2-CPU machine). What it does not mirror: the host's
own HTTP front end (Kestrel, gRPC to the worker) is a Python ThreadingHTTPServer here, a thread per
connection in the same process and GIL as the handlers; and the load generator, Azurite and the
sandboxes share the same 2 CPUs, so figures are noisy and pessimistic for a real instance.

`--profile` also runs the targets handler in this process under cProfile (one thread, warm
caches, then with the answer cache cleared before every call) and prints where the time goes.

    python bench/load.py [--clients 5000] [--calls 400] [--latency-ms 50] [--profile]
                         [--routes both|targets|tab]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import cpu_seconds, percentile, use_sandboxes  # noqa: E402
from sandbox.devhost import function_key  # noqa: E402
from sandbox.halo_data import generate  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from sandbox.worker import default_threads  # noqa: E402
from shared.api.rules import import_rules, put_rule  # noqa: E402
from shared.runtime.process import get_store  # noqa: E402
from shared.store.generations import read_catalog  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402

TARGETS_WANTED = 1800
CONCURRENCY = (1, 20)
WARM_CALLS = 40


def distinct_tickets(
    tickets: Sequence[Mapping[str, Any]], warm: int, calls: int
) -> list[list[str]]:
    """Tab paths for the warm-up (`warm` tickets) and for each concurrency (`calls` each), no
    ticket in two lists and none twice in one."""
    wanted = warm + calls * len(CONCURRENCY)
    if wanted > len(tickets):
        raise SystemExit(f"{wanted} distinct tickets wanted, the data set has {len(tickets)}")
    drawn = random.Random(7).sample(list(tickets), wanted)
    paths = [f"/api/technician-tab/ticket/{t['id']}" for t in drawn]
    sizes = [warm] + [calls] * len(CONCURRENCY)
    starts = [sum(sizes[:n]) for n in range(len(sizes))]
    return [paths[start : start + size] for start, size in zip(starts, sizes, strict=True)]


async def load(
    base: str, paths: list[str], key: str, callers: int, calls: int
) -> tuple[list[float], float]:
    """`calls` GETs spread over `callers` concurrent callers, the n-th call to `paths[n % len]`;
    per-call seconds and the wall time."""
    samples: list[float] = []
    queue = iter(range(calls))
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(
        base_url=base, headers={"x-functions-key": key}, limits=limits, timeout=60
    ) as http:

        async def caller() -> None:
            for n in queue:
                started = time.perf_counter()
                response = await http.get(paths[n % len(paths)])
                samples.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{paths[n % len(paths)]}: {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return samples, time.perf_counter() - started


def line(label: str, samples: list[float], wall: float) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<26} n={len(ms):<4} p50 {percentile(ms, 0.50):7.1f} ms   "
        f"p95 {percentile(ms, 0.95):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms   "
        f"max {max(ms):7.1f} ms   {len(ms) / wall:6.1f} req/s"
    )


def cpu_line(pids: Mapping[str, int], before: Mapping[str, float], calls: int) -> str:
    """CPU milliseconds per call each process spent, and the calls per second the servers'
    total allows on this machine's CPUs (the load generator, this process, shown apart: it shares
    the CPUs but is no part of the app): a figure the other engineers' load on a shared machine
    moves far less than the latencies."""
    spent = {name: (cpu_seconds(pid) - before[name]) * 1000 / calls for name, pid in pids.items()}
    total = sum(spent.values())
    generator = (time.process_time() - before["load generator"]) * 1000 / calls
    cpus = os.cpu_count() or 1
    return (
        f"{'':<26} CPU per call: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in spent.items())
        + f"; {total:.1f} ms in all, at most {1000 * cpus / max(total, 0.001):.0f} calls/s "
        f"on {cpus} CPUs; the load generator {generator:.1f} ms"
    )


def profile(software: str, calls: int) -> str:
    """cProfile of the targets handler in this process: warm, then with the answer cache cold."""
    import azure.functions as func

    import function_app
    from shared.api.current import clear_caches

    handler = next(
        f.get_user_function()
        for f in function_app.app.get_functions()
        if f.get_function_name() == "targets"
    )
    request = func.HttpRequest("GET", "/api/targets", body=b"", params={"software": software})
    out = io.StringIO()
    runs: list[tuple[str, Callable[[], None]]] = [
        ("warm", lambda: None),
        ("answer cache and pointer cleared before each call", clear_caches),
    ]
    for label, before in runs:
        handler(request)
        profiler = cProfile.Profile()
        spent = 0.0
        for _ in range(calls):
            before()
            profiler.enable()
            started = time.perf_counter()
            assert handler(request).status_code == 200
            spent += time.perf_counter() - started
            profiler.disable()
        out.write(f"\nprofile, targets handler, {label}: {spent / calls * 1000:.2f} ms per call\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(14)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=400, help="calls per route and concurrency")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--routes", choices=("both", "targets", "tab"), default="both", help="what to call"
    )
    args = parser.parse_args()

    data = generate(args.clients, seed=1)
    sandbox_args = ["--clients", str(args.clients), "--seed", "1"]
    latency = ["--latency-ms", str(args.latency_ms)]
    results: list[str] = []
    with azurite_table() as azurite:
        halo, halo_url = start_module("sandbox.halo", *sandbox_args, *latency)
        immy, immy_url = start_module("sandbox.immybot", *sandbox_args, *latency)
        devhost = None
        try:
            use_sandboxes(halo_url, azurite.connection_string, immy_url, HALO_READ_MODE="rest")
            store = get_store()
            today = datetime.now(UTC).date()
            import_rules(store, (ROOT / "sandbox" / "demo_rules.json").read_bytes(), today)
            report = asyncio.run(run_sync())
            generation = store.current().generation  # type: ignore[union-attr]
            items = read_catalog(store, generation).items
            item = min(items, key=lambda i: abs(i.clients - TARGETS_WANTED))
            software = f"Bench {item.name}"
            rule = json.dumps({"items": [{"name": item.name}]}).encode()
            view, _ = put_rule(store, software, rule, today)

            devhost, base = start_module("sandbox.devhost", "--existing")
            pids = {
                "devhost": devhost.pid,
                "HaloPSA": halo.pid,
                "ImmyBot": immy.pid,
                "Azurite": azurite.pid,
            }
            targets = [f"/api/targets?{urlencode({'software': software})}"]
            tickets = distinct_tickets(data.tickets, WARM_CALLS, args.calls)
            size = len(
                httpx.get(
                    base + targets[0], headers={"x-functions-key": function_key("targets")}
                ).content
            )
            routes = [("targets", "targets"), ("tab", "technician_tab")]
            for name, key in (r for r in routes if args.routes in ("both", r[0])):
                # Warm: tokens, pools, the generation's manifest; the tab on tickets of its own.
                warm = targets if name == "targets" else tickets[0]
                asyncio.run(load(base, warm, function_key(key), 20, WARM_CALLS))
                for run, callers in enumerate(CONCURRENCY, start=1):
                    paths = targets if name == "targets" else tickets[run]
                    before = {k: cpu_seconds(p) for k, p in pids.items()}
                    before["load generator"] = time.process_time()
                    samples, wall = asyncio.run(
                        load(base, paths, function_key(key), callers, args.calls)
                    )
                    label = f"{name}, {callers} caller(s)"
                    if name == "tab":
                        label += f", {len(set(paths))} tickets"
                    results.append(line(label, samples, wall))
                    results.append(cpu_line(pids, before, len(samples)))
            profiled = profile(software, 200) if args.profile else ""
        finally:
            if devhost is not None:
                stop_process(devhost)
            stop_process(halo)
            stop_process(immy)

    print(
        f"data set  : {args.clients} clients, sync {report.outcome} in {report.phases['total']:.1f} s"
    )
    print(f"rule      : {software!r}, {view.targets} targets, answer {size / 1024:.0f} KiB")
    print(f"latency   : HaloPSA and ImmyBot sandboxes each add {args.latency_ms:.0f} ms per call")
    print(
        f"devhost   : one worker process, one event loop, {default_threads()} threads "
        f"(PYTHON_THREADPOOL_THREAD_COUNT), {os.cpu_count()} CPUs shared with the load generator"
    )
    for result in results:
        print(result)
    if profiled:
        print(profiled)


if __name__ == "__main__":
    main()
