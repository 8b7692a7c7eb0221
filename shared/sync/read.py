"""A sync's read of HaloPSA: every record type, validated, with references between them checked.

The read goes through SQL reports or REST pages (HALO_READ_MODE). A report read is proven against a
REST sample of the same instance (shared.halo.proof) every run: in `auto` a disagreement, or a
report path that cannot answer, makes the run read through REST (and a disagreement keeps `auto`
on REST for `DISTRUST_FOR`); in `report` the run fails and says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from shared.core.record_comparison import Finding, Proof
from shared.core.targets import Snapshot
from shared.halo.client import HaloClient
from shared.halo.errors import (
    HaloAuthError,
    HaloNotFound,
    HaloProtocolError,
    HaloRequestError,
    HaloUnavailable,
)
from shared.halo.listing import Listing
from shared.halo.paging import gather_or_cancel
from shared.halo.proof import prove
from shared.halo.report import ReadMode, ReportListings, ReportShortfall, read_via_report
from shared.records.parsing import Cause, Reject
from shared.store.base import StoreError
from shared.store.repository import Store
from shared.store.state import ReportDistrust
from shared.sync.lease import brief
from shared.sync.runs import SyncReport

RECORD_KINDS = ("clients", "sites", "contracts", "invoices", "items")
# After a disproved report read, `auto` reads through REST this long, then tries reports again.
DISTRUST_FOR = timedelta(hours=24)

log = logging.getLogger("halo_immy.sync")


class ReportUntrusted(Exception):
    """HALO_READ_MODE=report and the report read disagreed with REST: the run fails, naming why."""

    def __init__(self, proof: ReadProof, reason: str | None = None) -> None:
        findings = proof.findings
        first = f"; first: {findings[0].text()}" if findings else ""
        said = reason or (
            f"the SQL report read disagrees with HaloPSA's REST API on {len(findings)} "
            f"field(s){first}"
        )
        super().__init__(f"{said}; set HALO_READ_MODE=auto or rest")
        self.proof = proof


@dataclass(slots=True)
class ReadProof:
    """How the read went: the proof of a report read, or why the run read through REST."""

    proof: Proof | None = None
    fallback: str | None = None  # why an auto run read through REST
    distrust: bool = False  # a disagreement: auto stays on REST for DISTRUST_FOR
    report_requests: int = 0
    splits: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """The disagreements found (none when no proof ran)."""
        return self.proof.findings if self.proof else ()

    def record(self) -> dict[str, Any]:
        """What a run record keeps of it."""
        out: dict[str, Any] = self.proof.record() if self.proof else {}
        out.update(report_requests=self.report_requests, splits=self.splits)
        if self.notes:
            out["notes"] = self.notes
        if self.fallback:
            out["fallback"] = self.fallback
        return out


@dataclass(frozen=True, slots=True)
class SyncData:
    """What a run read from HaloPSA, validated."""

    snapshot: Snapshot
    rejects: list[Reject]
    read: dict[str, int]
    read_mode: str = "rest"
    proof: ReadProof | None = None


# A report path that cannot answer (no permission, SQL refused, a deadline it cannot split under).
_REPORT_FAILURES = (
    HaloAuthError,
    HaloNotFound,
    HaloRequestError,
    HaloProtocolError,
    HaloUnavailable,
)


async def read_by_report(
    halo: HaloClient,
    mode: ReadMode,
    *,
    today: date,
    rng: random.Random | None = None,
) -> tuple[ReportListings | None, ReadProof]:
    """The records read through reports and proven against REST, or None (read through REST) with
    the reason. In `report` mode a failure or a disagreement raises."""
    try:
        found = await read_via_report(halo, today=today)
    except ReportShortfall as error:
        finding = Finding(error.kind, "*", "records", str(error.read), str(error.expected))
        short = ReadProof(Proof((finding,)), distrust=True)
        if mode is ReadMode.REPORT:
            raise ReportUntrusted(short, f"the SQL report read came back short: {error}") from None
        short.fallback = f"report read short: {error}"
        return None, short
    except _REPORT_FAILURES as error:
        if mode is ReadMode.REPORT:
            raise
        log.warning("HaloPSA SQL report read failed, reading through REST: %s", error)
        return None, ReadProof(fallback=f"report read failed: {error}")
    found, proof = await prove(halo, found, today=today, rng=rng)
    result = ReadProof(proof, report_requests=found.requests, splits=found.splits)
    result.notes = list(found.notes)
    if not proof.findings:
        return found, result
    if mode is ReadMode.REPORT:
        raise ReportUntrusted(result)
    log.warning(
        "HaloPSA SQL report read disagrees with REST on %d field(s): reading through REST",
        len(proof.findings),
    )
    result.fallback = f"the REST sample disagreed on {len(proof.findings)} field(s)"
    result.distrust = True
    return None, result


async def read_halo(
    halo: HaloClient,
    mode: ReadMode | str = ReadMode.REST,
    *,
    today: date | None = None,
    distrusted_until: datetime | None = None,
    rng: random.Random | None = None,
    on_proof: Callable[[ReadProof], Awaitable[None]] | None = None,
) -> SyncData:
    """Read every record type a sync needs, concurrently, and validate references between them.

    `mode` reads through SQL reports (proven against a REST sample) or REST pages; `auto` reads
    through REST while `distrusted_until` lies ahead, and when reports fail or disagree.
    `on_proof` hears how the report read went before any REST read starts (which may not end)."""
    mode = ReadMode(mode)
    today = today or datetime.now(UTC).date()
    found, proof = None, None
    if mode is ReadMode.AUTO and distrusted_until is not None:
        proof = ReadProof(fallback=f"report reads distrusted until {distrusted_until.isoformat()}")
    elif mode is not ReadMode.REST:
        found, proof = await read_by_report(halo, mode, today=today, rng=rng)
    if proof is not None and on_proof is not None:
        await on_proof(proof)
    if found is not None:
        clients, sites, contracts = found.clients, found.sites, found.contracts
        invoices, items = found.invoices, found.items
    else:
        # All or nothing: when one listing fails, the others stop sending requests.
        clients, sites, contracts, invoices, items = await gather_or_cancel(
            halo.clients(), halo.sites(), halo.contracts(), halo.recurring_invoices(), halo.items()
        )
    listings: dict[str, Listing[Any]] = {
        "clients": clients,
        "sites": sites,
        "contracts": contracts,
        "invoices": invoices,
        "items": items,
    }
    read_mode = ReadMode.REST if found is None else ReadMode.REPORT
    return _validated(listings, str(read_mode), proof)


async def read_for_run(
    halo: HaloClient, store: Store, mode: ReadMode | str, *, now: datetime, report: SyncReport
) -> SyncData:
    """`read_halo` for a sync run: `auto` keeps to REST while an earlier disagreement's distrust
    lasts, records a new one before it reads through REST, and the run record gets the read's
    proof at once (so a run that fails or runs out of time later still says it)."""
    mode = ReadMode(mode)
    if mode is ReadMode.REPORT:
        report.read_mode = str(mode)  # what the run tried, also when it fails
    distrust = await asyncio.to_thread(store.report_distrust) if mode is ReadMode.AUTO else None
    until = distrust.until if distrust is not None and distrust.until > now else None

    async def heard(proof: ReadProof) -> None:
        report.read_proof = proof.record()
        if proof.distrust:
            await _distrust(store, report, proof, now)
        elif distrust is not None and until is None and proof.fallback is None:
            await _forget_distrust(store, report)  # proven again: trusted

    try:
        return await read_halo(halo, mode, today=now.date(), distrusted_until=until, on_proof=heard)
    except ReportUntrusted as error:
        report.read_proof = error.proof.record()
        raise


async def _distrust(store: Store, report: SyncReport, proof: ReadProof, now: datetime) -> None:
    """Keep `auto` on REST for DISTRUST_FOR; a storage fault here costs only the memory of it."""
    until = now + DISTRUST_FOR
    reason = proof.fallback or "the REST sample disagreed"
    try:
        await asyncio.to_thread(
            store.set_report_distrust, ReportDistrust(until, report.run_id, reason)
        )
    except (StoreError, AzureError) as error:
        report.warnings.append(f"the report distrust was not recorded: {brief(error)}")
        return
    report.read_proof = {**(report.read_proof or {}), "distrusted_until": until.isoformat()}


async def _forget_distrust(store: Store, report: SyncReport) -> None:
    try:
        await asyncio.to_thread(store.set_report_distrust, None)
    except (StoreError, AzureError) as error:
        report.warnings.append(f"the ended report distrust was not cleared: {brief(error)}")


def _validated(
    listings: dict[str, Listing[Any]], read_mode: str, proof: ReadProof | None
) -> SyncData:
    clients = listings["clients"]
    rejects = [r for listing in listings.values() for r in listing.rejects]
    known = {c.id for c in clients.records}
    rejected_clients = {r.record_id for r in clients.rejects}

    def linked(kind: str, records: list[Any]) -> list[Any]:
        # A record pointing at a client HaloPSA did not list, or listed but we rejected, cannot be
        # shown or targeted: it is counted under its own cause, never dropped without a trace.
        kept = []
        for record in records:
            if record.client_id in known:
                kept.append(record)
            elif str(record.client_id) in rejected_clients:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client {record.client_id} was rejected",
                        Cause.CLIENT_REJECTED,
                    )
                )
            else:
                rejects.append(
                    Reject(
                        kind,
                        str(record.id),
                        f"client_id {record.client_id} is unknown",
                        Cause.CLIENT_UNKNOWN,
                    )
                )
        return kept

    invoices = listings["invoices"]
    snapshot = Snapshot.build(
        clients.records,
        linked("sites", listings["sites"].records),
        linked("contracts", listings["contracts"].records),
        linked("invoices", invoices.records),
        listings["items"].records,
    )
    read = {kind: len(listing.records) + len(listing.rejects) for kind, listing in listings.items()}
    line_rejects = sum(r.kind == "invoice_lines" for r in invoices.rejects)
    # Line rejects sit in the invoices listing: count them as lines, not as invoices.
    read["invoices"] -= line_rejects
    read["invoice_lines"] = sum(len(i.lines) for i in invoices.records) + line_rejects
    return SyncData(snapshot, rejects, read, read_mode, proof)


def count_rejects(rejects: Iterable[Reject]) -> dict[str, dict[str, int]]:
    """Rejects counted per record type, then per cause."""
    counts: dict[str, dict[str, int]] = {}
    for reject in rejects:
        per_kind = counts.setdefault(reject.kind, {})
        per_kind[reject.cause] = per_kind.get(reject.cause, 0) + 1
    return counts
