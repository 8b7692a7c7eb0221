"""Fixtures of the HaloPSA unit tests: a fake clock and a respx router on the fake HaloPSA."""

from __future__ import annotations

import pytest
import respx

from tests.halo.fakes import BASE, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
