"""Recurring invoices HaloPSA listed without their `lines`: each is read again by id.

Lineless would wrongly mean "covers nothing"; the by-id answer always carries the lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shared.halo.errors import HaloNotFound
from shared.halo.paging import first_error
from shared.records.ids import whole_number

log = logging.getLogger("halo_immy.halo")

ReadInvoice = Callable[[int], Awaitable[Mapping[str, Any]]]


async def fill_missing_lines(
    raw: list[Any], read_by_id: ReadInvoice, slots: asyncio.Semaphore
) -> tuple[list[Any], int]:
    """`raw` with every invoice listed without `lines` replaced by its by-id answer (an invoice
    deleted meanwhile is left out), and how many were read by id."""
    missing = [n for n, r in enumerate(raw) if isinstance(r, Mapping) and "lines" not in r]
    if not missing:
        return raw, 0
    filled: list[Any] = list(raw)
    gone: set[int] = set()
    fetched = 0

    async def fetch(position: int) -> None:
        nonlocal fetched
        invoice_id = whole_number(raw[position].get("id"))
        if invoice_id is None:
            return  # validation rejects it for its id, with the reason
        async with slots:
            try:
                body = await read_by_id(invoice_id)
            except HaloNotFound:
                # Deleted between the listing and this read: it bills nothing any more.
                gone.add(position)
                return
            finally:
                fetched += 1
        if "lines" not in body:
            log.warning("HaloPSA recurring invoice read by id came back without lines too")
        filled[position] = body

    try:
        async with asyncio.TaskGroup() as group:
            for position in missing:
                group.create_task(fetch(position))
    except ExceptionGroup as failed:
        raise first_error(failed) from None
    log.info("HaloPSA listed %d recurring invoices without lines; read them by id", fetched)
    return [r for n, r in enumerate(filled) if n not in gone], fetched
