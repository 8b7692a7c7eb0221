"""Session fixtures for real components: Azurite (Table Storage) and the HaloPSA sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.processes import AZURITE, Azurite, azurite_table


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Real Azurite table storage, in memory, on a free loopback port, for the whole session."""
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} is missing: run `make setup` (npm ci installs azurite@3.35.0)")
    with azurite_table() as running:
        yield running


@pytest.fixture
def halo_sandbox():
    """Start HaloPSA sandboxes on free loopback ports; every one is stopped after the test."""
    from sandbox.halo import HaloSandbox

    started: list[HaloSandbox] = []

    def start(data, **kwargs) -> HaloSandbox:
        server = HaloSandbox(data, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
