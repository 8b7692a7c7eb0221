"""Shared by the benchmarks: a generated HaloPSA data set synced into a real Azurite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from azure.data.tables import TableServiceClient

from sandbox.immybot import DEFAULT_ENTRA_TENANT
from sandbox.processes import azurite_table, start_module, stop_process
from shared.core.rules import Rule
from shared.runtime.process import get_settings, get_store
from shared.settings import Settings, load_settings
from shared.store.repository import Store
from shared.sync.run import run_sync
from shared.sync.runs import SyncReport


@dataclass(frozen=True)
class Synced:
    """A store holding one synced generation, and what the sync reported."""

    store: Store
    settings: Settings
    report: SyncReport
    tables: str = ""  # Azurite's connection string
    immy_url: str | None = None  # the ImmyBot sandbox, when one runs


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux `/proc/<pid>/stat`)."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces) in parentheses; utime and stime
        # are the 14th and 15th of the whole line.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `samples` (share in 0..1)."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def use_sandboxes(
    halo_url: str, tables_connection_string: str, immy_url: str | None = None, **extra: str
) -> None:
    """Point the app's settings (the environment) at the sandboxes and Azurite, with no request
    budget to speak of (the sandbox has no rate limit to respect); `extra` adds settings."""
    for key in [k for k in os.environ if k.startswith("IMMY_")]:
        del os.environ[key]
    os.environ.pop("TABLES_ENDPOINT", None)
    os.environ.update(
        {
            "HALO_BASE_URL": halo_url,
            "HALO_CLIENT_ID": "sandbox-client",
            "HALO_CLIENT_SECRET": "sandbox-secret",
            "HALO_REQUESTS_PER_MINUTE": "1000000",
            "TABLES_CONNECTION_STRING": tables_connection_string,
            **extra,
        }
    )
    if immy_url is not None:
        os.environ.update(
            {
                "IMMY_BASE_URL": immy_url,
                "IMMY_TENANT_ID": DEFAULT_ENTRA_TENANT,
                "IMMY_CLIENT_ID": "immy-client",
                "IMMY_CLIENT_SECRET": "immy-secret",
                "IMMY_AUTHORITY_HOST": immy_url,
            }
        )
    get_settings.cache_clear()
    get_store.cache_clear()


@contextmanager
def synced(
    clients: int,
    rules: Sequence[Rule],
    seed: int = 1,
    page_size: int = 100,
    *,
    immybot: bool = False,
    concurrency: int = 8,
    read_timeout: float = 300,
    store_wrapper: Callable[[Store], Store] | None = None,
    read_mode: str = "rest",
) -> Iterator[Synced]:
    """Azurite and a sandbox process with `clients` generated clients, synced once with `rules`.

    With `immybot`, an ImmyBot sandbox generated from the same seed (tenants for most clients)
    runs too and the app is configured for it. The app's settings are also put in the
    environment, so handlers called in the block read the same store.
    """
    with azurite_table() as azurite:
        proc, url = start_module("sandbox.halo", "--clients", str(clients), "--seed", str(seed))
        immy_proc = None
        try:
            immy_url = None
            if immybot:
                immy_proc, immy_url = start_module(
                    "sandbox.immybot", "--clients", str(clients), "--seed", str(seed)
                )
            use_sandboxes(
                url,
                azurite.connection_string,
                immy_url,
                HALO_PAGE_SIZE=str(page_size),
                HALO_READ_MODE=read_mode,
            )
            settings = load_settings()
            # Azurite answers one request at a time: with many transactions in flight each waits
            # for all the others, so a large write needs fewer in flight and a longer read timeout
            # than Table Storage (azure-core's default is 300 s).
            service = TableServiceClient.from_connection_string(
                azurite.connection_string, read_timeout=read_timeout
            )
            store = Store(service, concurrency=concurrency)
            if store_wrapper is not None:
                store = store_wrapper(store)
            for rule in rules:
                store.put_rule_document(rule.key, rule.model_dump(mode="json"))
            report = asyncio.run(run_sync(settings, store=store))
            yield Synced(store, settings, report, azurite.connection_string, immy_url)
        finally:
            stop_process(proc)
            if immy_proc is not None:
                stop_process(immy_proc)
