"""Benchmark: asset population for 2,000 clients with 10,000 ImmyBot computers, half already assets.

Three syncs with `ASSET_SYNC=apply` against real Azurite, the HaloPSA sandbox (its own process) and
the ImmyBot sandbox: the first plans 5,000 creates and is held by `ASSET_MAX_CREATES`; after the
approval the second writes them (and links the 5,000 computers whose human-made assets match by
name); the third finds nothing to change. For each it prints HaloPSA requests of the asset phase
(reads and writes) against the fewest the data and settings allow, and wall time.

    python bench/assets.py [--clients 2000] [--per-client 5] [--page-size 100] [--batch 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.halo_data import HaloDataSet  # noqa: E402
from sandbox.immybot import ImmyBotSandbox  # noqa: E402
from sandbox.immybot_data import ImmyDataSet  # noqa: E402
from sandbox.processes import azurite_table, start_module, stop_process  # noqa: E402
from shared.immybot.auth import forget_applications  # noqa: E402
from shared.runtime.process import get_settings, get_store  # noqa: E402
from shared.sync.asset_hold import approve_asset_hold  # noqa: E402
from shared.sync.run import run_sync  # noqa: E402
from shared.sync.runs import SyncReport  # noqa: E402

NAME_FIELD, SERIAL_FIELD, ID_FIELD, MARKER_FIELD = 101, 117, 150, 151


def build(clients: int, per_client: int) -> tuple[HaloDataSet, ImmyDataSet]:
    """Clients with one or two sites and two users each; `per_client` computers per tenant, every
    other one already a (human-made) asset of the client; one unrelated printer asset per client."""
    halo, immy = HaloDataSet(), ImmyDataSet()
    immy.tenants.append({"id": 1, "name": "MSP", "active": True, "isMsp": True})
    asset_id = user_id = computer_id = 0
    for cid in range(1, clients + 1):
        name = f"Client {cid:05d} Ltd"
        halo.clients.append({"id": cid, "name": name, "inactive": False})
        sites = [cid * 10, cid * 10 + 1] if cid % 3 == 0 else [cid * 10]
        for sid in sites:
            halo.sites.append({"id": sid, "name": f"Site {sid}", "client_id": cid})
        emails = []
        for n in range(2):
            user_id += 1
            email = f"user{user_id}@client{cid}.example.com"
            emails.append(email)
            halo.users.append(
                {"id": user_id, "name": f"User {user_id}", "emailaddress": email,
                 "client_id": cid, "site_id": sites[n % len(sites)], "inactive": False}
            )  # fmt: skip
        tenant_id = cid + 1
        immy.tenants.append({"id": tenant_id, "name": name, "active": True, "isMsp": False})
        for n in range(per_client):
            computer_id += 1
            device = f"C{cid:05d}-PC{n:02d}"
            immy.computers.append(
                {"id": computer_id, "computerName": device, "tenantId": tenant_id,
                 "isOnline": True, "serialNumber": f"SN{computer_id:08d}",
                 "primaryUserEmail": emails[n % 2] if n % 3 else None}
            )  # fmt: skip
            if n % 2 == 0 if cid % 2 else n % 2 == 1:  # half of them, alternating per client
                asset_id += 1
                halo.assets.append(
                    {"id": asset_id, "key_field": device, "client_id": cid, "site_id": sites[0],
                     "assettype_id": 1, "assettype_name": "Workstation", "inactive": False}
                )  # fmt: skip
        asset_id += 1
        halo.assets.append(
            {"id": asset_id, "key_field": f"C{cid:05d}-PRN", "client_id": cid,
             "site_id": sites[0], "assettype_id": 5, "assettype_name": "Printer",
             "inactive": False}
        )  # fmt: skip
    return halo, immy


def sandbox_counts(url: str) -> dict[str, int]:
    """Requests the HaloPSA sandbox has answered, per resource."""
    with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=10) as answer:  # noqa: S310
        return dict(json.load(answer)["requests"])


def row(label: str, report: SyncReport, before: dict[str, int], after: dict[str, int]) -> None:
    """Print one run's figures."""
    assets = report.assets or {}
    totals = assets.get("totals", {})
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in ("Asset", "Users")}
    print(
        f"{label:<22} outcome={assets.get('outcome')!s:<8} "
        f"creates={totals.get('creates', 0):>5} links={totals.get('links', 0):>5} "
        f"updates={totals.get('updates', 0):>3} written={sum(assets.get('written', {}).values()):>5}"
    )
    print(
        f"{'':<22} reads={assets.get('reads', 0):>4} writes={assets.get('writes', 0):>4} "
        f"(sandbox saw Asset {sent['Asset']}, Users {sent['Users']}) "
        f"asset phase {report.phases.get('assets', 0.0):.2f}s, whole sync "
        f"{report.phases.get('total', 0.0):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--batch", type=int, default=25)
    args = parser.parse_args()

    halo_data, immy_data = build(args.clients, args.per_client)
    computers = len(immy_data.computers) - 0
    present = sum(1 for a in halo_data.assets if a["assettype_id"] == 1)
    creates = computers - present
    reads_min = math.ceil(len(halo_data.assets) / args.page_size) + math.ceil(
        len(halo_data.users) / args.page_size
    )
    reads_min_after = math.ceil((len(halo_data.assets) + creates) / args.page_size) + math.ceil(
        len(halo_data.users) / args.page_size
    )
    print(
        f"{args.clients} clients, {computers} computers, {present} already assets "
        f"(+{args.clients} unrelated), {len(halo_data.users)} users; page size {args.page_size}, "
        f"{args.batch} assets per POST"
    )
    print(
        f"minimum: reads {reads_min} before the creates, {reads_min_after} after; writes "
        f"{math.ceil(creates / args.batch)} for {creates} creates + "
        f"{math.ceil(present / args.batch)} for {present} links, 0 once done"
    )
    forget_applications()
    with tempfile.TemporaryDirectory() as folder, azurite_table() as azurite:
        data_file = Path(folder) / "halo.json"
        halo_data.dump(data_file)
        proc, url = start_module("sandbox.halo", "--data", str(data_file))
        immy = ImmyBotSandbox(immy_data).start()
        try:
            os.environ.update(
                {
                    "HALO_BASE_URL": url,
                    "HALO_CLIENT_ID": "sandbox-client",
                    "HALO_CLIENT_SECRET": "sandbox-secret",
                    "HALO_REQUESTS_PER_MINUTE": "1000000",  # the sandbox has no limit to respect
                    "HALO_PAGE_SIZE": str(args.page_size),
                    "TABLES_CONNECTION_STRING": azurite.connection_string,
                    "IMMY_BASE_URL": immy.url,
                    "IMMY_TENANT_ID": immy.entra_tenant,
                    "IMMY_CLIENT_ID": "immy-client",
                    "IMMY_CLIENT_SECRET": "immy-secret",
                    "IMMY_AUTHORITY_HOST": immy.url,
                    "ASSET_SYNC": "apply",
                    "ASSET_TYPE_ID": "1",
                    "ASSET_NAME_FIELD": str(NAME_FIELD),
                    "ASSET_SERIAL_FIELD": str(SERIAL_FIELD),
                    "ASSET_ID_FIELD": str(ID_FIELD),
                    "ASSET_MARKER_FIELD": str(MARKER_FIELD),
                    "ASSET_WRITE_BATCH": str(args.batch),
                }
            )
            get_settings.cache_clear()
            get_store.cache_clear()
            for label in ("1 held (cap 200)", "2 approved, applied", "3 nothing to change"):
                before = sandbox_counts(url)
                started = time.perf_counter()
                report = asyncio.run(run_sync())
                wall = time.perf_counter() - started
                row(label, report, before, sandbox_counts(url))
                if report.outcome.value != "succeeded":
                    print(f"  sync {report.outcome}: {report.error}  ({wall:.1f}s)")
                if label.startswith("1"):
                    approve_asset_hold(get_store())
        finally:
            immy.stop()
            stop_process(proc)
            forget_applications()


if __name__ == "__main__":
    main()
