"""How the suite spreads over pytest-xdist workers: how many there are, and how their start-up
shares the work every one of them would otherwise repeat.

Measured on a 2-CPU machine (`make test`, fresh clone): a worker spends about half of its time
waiting on Azurite, a devhost or Schemathesis. Two workers kept about 1.75 of the 2 CPUs busy,
three keep about 1.93; in two paired runs three finished 8% and 14% sooner on the same CPU time.
Four spent 6% more CPU (a fourth Azurite, a fourth collection) and finished 5% later than three.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path

import pytest

# pytest-xdist's own variable for `-n auto`; when it is set, it decides.
AUTO_WORKERS_VARIABLE = "PYTEST_XDIST_AUTO_NUM_WORKERS"


def workers_for(cpus: int) -> int:
    """Workers for `cpus` CPUs: one and a half per CPU, as each waits about half of its time."""
    return max(1, cpus + cpus // 2)


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when xdist is off
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: `workers_for` this machine's CPUs, unless AUTO_WORKERS_VARIABLE says."""
    if os.environ.get(AUTO_WORKERS_VARIABLE):
        return None  # pytest-xdist's own hook reads it
    return workers_for(usable_cpus())


def worker_share(paths: Sequence[Path], worker: int, workers: int) -> list[Path]:
    """The test modules worker number `worker` of `workers` imports first: every `workers`-th of
    them in name order, so the shares interleave and together hold each module once."""
    return sorted(paths)[worker::workers]


def module_name(path: Path) -> tuple[Path, str] | None:
    """Where pytest's default import mode ("prepend") imports the module at `path` from, and
    under which name: its package path up to the first folder without `__init__.py`; None
    outside a package."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        folder = folder.parent
    return (folder, ".".join(reversed(parts))) if len(parts) > 1 else None


def test_modules(config: pytest.Config) -> Iterator[Path]:
    """The files this run collects as test modules, as pytest finds them in its arguments
    (`python_files`, `--ignore`, `norecursedirs`)."""
    patterns = config.getini("python_files")
    root = config.invocation_params.dir
    for arg in config.args:
        start = (root / arg.split("::")[0]).resolve()
        if start.is_file():
            yield start
            continue
        for folder, folders, files in os.walk(start):
            here = Path(folder)
            folders[:] = [
                name
                for name in sorted(folders)
                if not config.hook.pytest_ignore_collect(collection_path=here / name, config=config)
            ]
            for name in sorted(files):
                path = here / name
                if any(fnmatch(name, pattern) for pattern in patterns) and not (
                    config.hook.pytest_ignore_collect(collection_path=path, config=config)
                ):
                    yield path


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """On a worker, import this worker's share of the test modules before collecting.

    Importing a test module rewrites its asserts (about 7 s of CPU for this suite) and caches
    the result in `__pycache__`. On a fresh clone every worker would rewrite every module at
    once; this way each rewrites its share while the others rewrite theirs, and then reads the
    others' from the cache. Collection itself is unchanged: the same modules, the same items.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    config = session.config
    if not worker.startswith("gw") or workers < 2 or config.getoption("importmode") != "prepend":
        return
    for path in worker_share(list(test_modules(config)), int(worker[2:]), workers):
        found = module_name(path)
        if found is None:
            continue
        root, name = found
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))  # as "prepend" does when it imports the module
        try:
            importlib.import_module(name)
        except Exception:
            pass  # collection imports it again and reports the error where it belongs
        except pytest.skip.Exception:
            pass  # a module that skips itself: collection reports that too
