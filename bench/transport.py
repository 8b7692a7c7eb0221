"""Client CPU per Table call: the app's transport (urllib3 pools) against azure-core's
RequestsTransport as it comes (reading the environment on every request) and with a session that
does not (the app's transport before this one), on the same Azurite, in alternating rounds so the
machine's drift is shared.

Prints, per call kind, the median CPU milliseconds per call of each transport over the rounds.
Usage: python bench/transport.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient

from sandbox.processes import azurite_table
from shared.store.batch import submit_upserts
from shared.store.service import pooled_transport

ROW = {"PartitionKey": "p", "RowKey": "r", "d": "x" * 200}


def calls(table: TableClient) -> dict[str, Callable[[], object]]:
    """The call kinds measured, each one Table request."""
    batch = [{"PartitionKey": "b", "RowKey": f"{n:03d}", "d": "y" * 200} for n in range(20)]
    return {
        "point read": lambda: table.get_entity("p", "r"),
        "upsert": lambda: table.upsert_entity(ROW),
        "partition query": lambda: list(table.query_entities("PartitionKey eq 'p'")),
        "20-row transaction": lambda: submit_upserts(table, "b", batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with azurite_table() as azurite:
        tables = {}
        settled = requests.Session()
        settled.trust_env = False
        for name, transport in (
            ("urllib3 (app)", pooled_transport()),
            ("requests", RequestsTransport()),
            ("requests, no env", RequestsTransport(session=settled)),
        ):
            service = TableServiceClient.from_connection_string(
                azurite.connection_string, transport=transport
            )
            table = service.create_table_if_not_exists("bench")
            table.upsert_entity(ROW)
            tables[name] = calls(table)
        kinds = list(next(iter(tables.values())))
        spent: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, measured in tables.items():
                for kind in kinds:
                    measured[kind]()  # warm: connection open, code paths loaded
                    started = time.process_time()
                    for _ in range(args.calls):
                        measured[kind]()
                    per_call = (time.process_time() - started) * 1000 / args.calls
                    spent.setdefault((name, kind), []).append(per_call)
    print(f"client CPU ms per call, median of {args.rounds} rounds of {args.calls} calls")
    names = list(tables)
    print(f"{'call':<20}" + "".join(f"{name:>18}" for name in names))
    for kind in kinds:
        medians = [statistics.median(spent[(name, kind)]) for name in names]
        print(f"{kind:<20}" + "".join(f"{m:>18.3f}" for m in medians))


if __name__ == "__main__":
    main()
