"""Benchmark: what importing the function app costs a cold instance, as the host's worker pays it.

Runs `python -X importtime -c "import function_app"` in fresh processes and prints the cumulative
import time of `function_app`: with telemetry off (no APPLICATIONINSIGHTS_CONNECTION_STRING, so the
OpenTelemetry distro is not even imported; the budget of 1.5 s applies here) and on (a loopback
ingestion endpoint; what the distro adds is printed).

    python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 1.5
TELEMETRY_ON = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/"
    )
}


def import_seconds(extra_env: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    env.update(extra_env)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"\|\s*(\d+)\s*\|\s*function_app\s*$", result.stderr, re.MULTILINE)
    assert match, result.stderr[-500:]
    return int(match.group(1)) / 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    off = [import_seconds({}) for _ in range(args.runs)]
    on = [import_seconds(TELEMETRY_ON) for _ in range(args.runs)]
    verdict = "within" if max(off) < BUDGET_SECONDS else "OVER"
    print(
        f"import function_app, telemetry off: median {statistics.median(off):.3f} s, "
        f"max {max(off):.3f} s over {args.runs} runs ({verdict} the {BUDGET_SECONDS} s budget)"
    )
    print(
        f"import function_app, telemetry on : median {statistics.median(on):.3f} s, "
        f"max {max(on):.3f} s (the Azure Monitor distro adds "
        f"{statistics.median(on) - statistics.median(off):.3f} s, paid only where it is configured)"
    )


if __name__ == "__main__":
    main()
