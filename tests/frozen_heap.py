"""A test process's heap after collection: what importing and collecting built lives until the
run ends, so the cyclic garbage collector is told to stop traversing it.

A worker imports the app, the Azure SDK, pydantic's schemas, Hypothesis and every test module
before its first test: hundreds of thousands of objects, which every full collection of the run
walked again. Frozen (`gc.freeze()`, after a collection clears what is garbage already), they
are left out of every later one; objects the tests make are collected as before. Measured on
tests/api, tests/sync and tests/tab with three workers, two paired runs: 7.1% less CPU, 5.8%
less time.
"""

from __future__ import annotations

import gc
import importlib

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what the process holds once collection is done."""
    # Hypothesis, when first imported, registers the PRNGs of libraries already loaded (trio's)
    # and warns when gc.get_referrers finds nothing holding one; it cannot see frozen objects.
    # Its pytest plugin imports it at the latest for the run's summary: import it before.
    # The plugin ships with Hypothesis: where it is loaded, Hypothesis is installed.
    if session.config.pluginmanager.has_plugin("hypothesispytest"):
        importlib.import_module("hypothesis")
    gc.collect()
    gc.freeze()


def pytest_sessionfinish() -> None:
    """Give the frozen objects back to the collector for what runs after the tests."""
    gc.unfreeze()
