"""The suite's worker plan (tests/workers.py): how many workers `-n auto` starts, and each
worker importing its share of the test modules first, with collection unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import workers
from tests.workers import module_name, worker_share, workers_for


@pytest.mark.parametrize(("cpus", "expected"), [(0, 1), (1, 1), (2, 3), (4, 6), (8, 12)])
def test_one_and_a_half_workers_per_cpu(cpus, expected):
    assert workers_for(cpus) == expected


def test_auto_counts_the_cpus_this_process_may_use(monkeypatch, pytestconfig):
    monkeypatch.delenv(workers.AUTO_WORKERS_VARIABLE, raising=False)
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert workers.pytest_xdist_auto_num_workers(pytestconfig) == 3


def test_pytest_xdists_own_variable_decides_when_set(monkeypatch, pytestconfig):
    monkeypatch.setenv(workers.AUTO_WORKERS_VARIABLE, "5")
    assert workers.pytest_xdist_auto_num_workers(pytestconfig) is None


def test_shares_interleave_and_hold_each_module_once():
    paths = [Path(f"t/test_{n}.py") for n in "edcbaf"]
    shares = [worker_share(paths, worker, 3) for worker in range(3)]
    assert shares[0] == [Path("t/test_a.py"), Path("t/test_d.py")]
    assert shares[1] == [Path("t/test_b.py"), Path("t/test_e.py")]
    assert sorted(p for share in shares for p in share) == sorted(paths)


def test_module_names_follow_the_packages(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").touch()
    (tmp_path / "pkg" / "sub" / "__init__.py").touch()
    assert module_name(tmp_path / "pkg" / "sub" / "test_x.py") == (tmp_path, "pkg.sub.test_x")
    assert module_name(tmp_path / "pkg" / "test_y.py") == (tmp_path, "pkg.test_y")
    assert module_name(tmp_path / "test_z.py") is None


@pytest.fixture
def project(pytester, tmp_path):
    """Four test modules in package `t` (and one beside it) that log their import to a file."""
    log = tmp_path / "imports.log"
    pytester.makepyfile(**{"t/__init__.py": ""})
    for name in ("a", "b", "c", "d"):
        pytester.makepyfile(
            **{
                f"t/test_{name}.py": f"""
                    with open({str(log)!r}, "a") as log:
                        log.write("{name}\\n")

                    def test_{name}():
                        assert True
                """
            }
        )
    return log


def run_as(pytester, monkeypatch, worker: str, count: int, *args: str):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    return pytester.runpytest_inprocess(
        "-p", "tests.workers", "-p", "no:xdist", "-p", "no:asyncio", "-p", "no:schemathesis", *args
    )


def imports(log: Path) -> list[str]:
    return log.read_text().split()


def test_a_worker_imports_its_share_first_and_collects_the_same(pytester, monkeypatch, project):
    result = run_as(pytester, monkeypatch, "gw1", 2)
    result.assert_outcomes(passed=4)
    assert imports(project) == ["b", "d", "a", "c"]
    assert [line.split("::")[1] for line in collected(pytester, monkeypatch, "gw1", 2)] == [
        "test_a",
        "test_b",
        "test_c",
        "test_d",
    ]


def collected(pytester, monkeypatch, worker: str, count: int) -> list[str]:
    result = run_as(pytester, monkeypatch, worker, count, "--collect-only", "-q")
    return [line for line in result.outlines if "::" in line]


def test_without_workers_the_modules_are_imported_in_collection_order(
    pytester, monkeypatch, project
):
    run_as(pytester, monkeypatch, "", 1).assert_outcomes(passed=4)
    assert imports(project) == ["a", "b", "c", "d"]


def test_an_ignored_module_is_not_imported(pytester, monkeypatch, project):
    run_as(pytester, monkeypatch, "gw0", 2, "--ignore=t/test_c.py").assert_outcomes(passed=3)
    assert imports(project) == ["a", "d", "b"]


def test_a_module_that_fails_to_import_is_reported_by_collection(pytester, monkeypatch, project):
    pytester.makepyfile(**{"t/test_broken.py": "raise RuntimeError('broken at import')\n"})
    result = run_as(pytester, monkeypatch, "gw0", 2)
    # Collection stops the run at an error, after importing every module.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: broken at import*"])
    assert imports(project) == ["a", "d", "b", "c"]


def test_a_module_that_skips_itself_is_skipped_once(pytester, monkeypatch, project):
    pytester.makepyfile(
        **{"t/test_later.py": "import pytest\npytest.skip('not here', allow_module_level=True)\n"}
    )
    # test_later is in gw0's share: a, c, later.
    run_as(pytester, monkeypatch, "gw0", 2).assert_outcomes(passed=4, skipped=1)
