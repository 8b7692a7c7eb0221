"""Shared by the benchmarks: a generated HaloPSA data set synced into a real Azurite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from azure.data.tables import TableServiceClient

from sandbox.processes import azurite_table, start_module, stop_process
from shared.rules import Rule
from shared.settings import Settings, get_settings, load_settings
from shared.store import Store, get_store
from shared.sync import SyncReport, run_sync


@dataclass(frozen=True)
class Synced:
    """A store holding one synced generation, and what the sync reported."""

    store: Store
    settings: Settings
    report: SyncReport


def percentile(samples: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `samples` (share in 0..1)."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


@contextmanager
def synced(
    clients: int,
    rules: Sequence[Rule],
    seed: int = 1,
    page_size: int = 100,
    read_mode: str = "rest",
) -> Iterator[Synced]:
    """Azurite and a sandbox process with `clients` generated clients, synced once with `rules`.

    The app's settings are also put in the environment, so handlers called in the block read the
    same store.
    """
    with azurite_table() as azurite:
        proc, url = start_module("sandbox.halo", "--clients", str(clients), "--seed", str(seed))
        try:
            os.environ.update(
                {
                    "HALO_BASE_URL": url,
                    "HALO_CLIENT_ID": "sandbox-client",
                    "HALO_CLIENT_SECRET": "sandbox-secret",
                    # The sandbox has no rate limit to respect.
                    "HALO_REQUESTS_PER_MINUTE": "1000000",
                    "HALO_PAGE_SIZE": str(page_size),
                    "HALO_READ_MODE": read_mode,
                    "TABLES_CONNECTION_STRING": azurite.connection_string,
                }
            )
            get_settings.cache_clear()
            get_store.cache_clear()
            settings = load_settings()
            store = Store(TableServiceClient.from_connection_string(azurite.connection_string))
            for rule in rules:
                store.put_rule_document(rule.key, rule.model_dump(mode="json"))
            report = asyncio.run(run_sync(settings, store=store))
            yield Synced(store, settings, report)
        finally:
            stop_process(proc)
