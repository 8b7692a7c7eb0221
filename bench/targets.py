"""Benchmark: targets calls through the registered handler against a 5,000-client snapshot.

Syncs a generated data set into Azurite, adds a rule for the recurring item billed to the number of
clients nearest 1,500, then times `GET /api/targets?software=...` through the very handler the
Functions host calls: warm (pointer, manifest and answer cached in the process), cold (read from
Table Storage every call), and conditional (304); and compares with resolving the same answer from
the raw snapshot per call.

    python bench/targets.py [--clients 5000] [--calls 500] [--raw-calls 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

from bench.harness import percentile, synced  # noqa: E402
from shared.api.current import clear_caches  # noqa: E402
from shared.api.models import TargetsResponse  # noqa: E402
from shared.api.rules import put_rule  # noqa: E402
from shared.core.rules import Rule  # noqa: E402
from shared.core.targets import resolve  # noqa: E402
from shared.store.generations import read_catalog, read_snapshot  # noqa: E402


def summary(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<34} n={len(ms):<4} p50 {percentile(ms, 0.50):8.2f} ms   "
        f"p95 {percentile(ms, 0.95):8.2f} ms   p99 {percentile(ms, 0.99):8.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--raw-calls", type=int, default=20)
    args = parser.parse_args()

    with synced(args.clients, []) as done:
        store = done.store
        generation = store.current().generation
        items = read_catalog(store, generation).items
        item = min(items, key=lambda i: abs(i.clients - 1500))
        software = f"Bench {item.name}"
        body = json.dumps({"items": [{"name": item.name}]}).encode()
        view, _ = put_rule(store, software, body, datetime.now(UTC).date())

        import function_app

        handler = next(
            f.get_user_function()
            for f in function_app.app.get_functions()
            if f.get_function_name() == "targets"
        )
        request = func.HttpRequest("GET", "/api/targets", body=b"", params={"software": software})
        first = handler(request)
        assert first.status_code == 200, first.get_body()[:300]
        size = len(first.get_body())

        handled = []
        for _ in range(args.calls):
            started = time.perf_counter()
            response = handler(request)
            handled.append(time.perf_counter() - started)
            assert response.status_code == 200
        cold = []
        for _ in range(min(args.calls, 100)):
            clear_caches()  # every call reads pointer, manifest and the rule's lists from Table Storage
            started = time.perf_counter()
            assert handler(request).status_code == 200
            cold.append(time.perf_counter() - started)
        etag = first.headers["ETag"]
        conditional = func.HttpRequest(
            "GET",
            "/api/targets",
            body=b"",
            params={"software": software},
            headers={"If-None-Match": etag},
        )
        not_modified = []
        for _ in range(min(args.calls, 100)):
            started = time.perf_counter()
            assert handler(conditional).status_code == 304
            not_modified.append(time.perf_counter() - started)

        rule = Rule(software=software, items=view.rule.items)
        raw = []
        for _ in range(args.raw_calls):
            started = time.perf_counter()
            snapshot = read_snapshot(store, generation)
            found = resolve(snapshot, rule, datetime.now(UTC).date())
            TargetsResponse.model_validate_json(first.get_body()).model_copy(
                update={"targets": found}
            )
            raw.append(time.perf_counter() - started)

    print(f"snapshot      : {args.clients} clients, generation {generation}")
    print(
        f"rule          : {software!r} by item name, {view.targets} targets, answer {size / 1024:.0f} KiB"
    )
    print(summary("targets handler (200, warm)", handled))
    print(summary("targets handler (200, cold cache)", cold))
    print(summary("targets handler (304, If-None-Match)", not_modified))
    print(summary("resolve from raw snapshot per call", raw))
    # Against the cold cache: with the answer cached a warm call does almost nothing, so a ratio
    # to it says nothing about the stored targets, which is what this compares.
    print(
        f"speed-up      : {percentile(raw, 0.5) / percentile(cold, 0.5):.0f}x at p50 "
        "(stored targets, every cache cleared, against resolving per call)"
    )


if __name__ == "__main__":
    main()
