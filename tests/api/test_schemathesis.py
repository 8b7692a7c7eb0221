"""Schemathesis against `make run`'s devhost: the OpenAPI document is the contract the app keeps.

Every operation in /api/openapi.json, every check (server errors, undocumented
statuses and content types, schema-valid requests refused, schema-invalid ones accepted, ignored
auth, undeclared methods, stateful links), with a fixed seed and a bounded number of examples so
the run is repeatable. Each phase is a test of its own, so the phases run side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SEED = 20261202
MAX_EXAMPLES = 3
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Keeps Hypothesis's build of each pattern for the run (see the module: most of the run's time).
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
# The run's configuration:
# - A rule set of more rules than storage holds is refused with 413, as the document says: a
#   rejection like any 4xx, though Schemathesis's default list of rejecting statuses lacks it.
# - /setup/check answers the Custom Tab URL, a same-origin URL with HaloPSA's `$FAULTID`
#   placeholder in place of the ticket id. Schemathesis's stateful phase turns same-origin URLs in
#   bodies into links and would follow this one as a "schema-valid" ticket id, which the tab
#   rightly answers with 400. The route has no inputs for a link to feed, so it sits out that
#   phase only (every other phase still runs it); the stateful phase of every other operation is
#   as before.
# - A PATCH's schema states each member it may set, but not what the rule they make with the
#   stored one must be (a contract type or an item): a valid patch whose result is no valid rule
#   is a 422 (RFC 5789 section 2.2), a status of that operation alone.
# - The hooks module keeps each pattern's strategy once built (VisibleName's took 1.3 s a time).
# - HaloPSA's webhook takes no function key but a secret of its own, which this run does not
#   hold: every request would be a 401. It is fuzzed with the secret (tests/api/test_fuzz.py) and
#   tested against the real queue (tests/api/test_halo_webhook.py) instead.
CONFIG = f"""
hooks = {json.dumps(str(HOOKS))}

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5xx"]

[[operations]]
include-path = "/setup/check"
phases.stateful.enabled = false

[[operations]]
include-operation-id = "patchRule"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409",
                                                     "422", "429", "5xx"]

[[operations]]
include-path = "/halo/events"
enabled = false
"""


# Slices of one whole run, so pytest-xdist runs them side by side: every phase, and the coverage
# phase (most of the time) by groups of paths. Together they are the run the document asks for.
# The last member is Schemathesis's worker threads: the admin slice runs on one, since with two
# its operations' generators parse Python source in both threads at once, which CPython 3.11's
# ast module does not survive ("AST constructor recursion depth mismatch", python/cpython
# gh-106905: one recursion counter per interpreter); it takes about 10 s either way.
SLICES = {
    "coverage-rules": ("coverage", "^/rules$", 2),
    "coverage-rule": ("coverage", "^/rules/", 2),
    "coverage-admin": ("coverage", "^/(mappings|sync|setup)", 1),
    "coverage-reads": ("coverage", "^/(?!rules|mappings|sync|setup)", 2),
    "examples-fuzzing": ("examples,fuzzing", ".*", 2),
    "stateful": ("stateful", ".*", 2),
}


@pytest.fixture(scope="session")
def hypothesis_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Hypothesis storage directory for every run of the session, on every xdist worker.

    Hypothesis keeps what it learns about Unicode there and builds it afresh where it finds none:
    the code points a codec encodes (about 5 s of CPU for UTF-8 by its own loop, which is why the
    hooks module now finds them by block instead) and its table of code points by category
    (about 0.15 s). Shared, the slices build each once rather than in each fresh working directory.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "hypothesis"


@pytest.mark.parametrize("part", list(SLICES))
def test_schemathesis_finds_no_failures(devhost, tmp_path, hypothesis_storage, part):
    phases, paths, workers = SLICES[part]
    if not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None:
        pytest.fail("schemathesis is missing: run `make setup` (requirements-dev.txt pins it)")
    url, keys = devhost
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{url}/api/openapi.json",
        "--url",
        f"{url}/api",
        # The master key opens every route, the admin ones too; without it Schemathesis
        # checks that each route refuses the request (401), as the document says.
        "--header",
        f"x-functions-key: {keys['master']}",
        "--phases",
        phases,
        "--include-path-regex",
        paths,
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        # The storage directory is shared; its example database must not be: each run starts
        # from none, as it did in a fresh working directory (an empty one replays nothing).
        "--generation-database",
        "none",
    ]
    environment = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(hypothesis_storage)}
    # cwd: Schemathesis writes its reports beside it.
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if line.startswith("=")][-1:]
    print("\n".join(summary))  # the summary line, for the record (pytest -s shows it)
    assert run.returncode == 0, output[-6000:]
    assert "failure" not in (summary[0] if summary else output), output[-6000:]
