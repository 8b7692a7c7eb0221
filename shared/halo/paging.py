"""Reading HaloPSA lists: concurrent pages, lying record counts, duplicates, lists together.

HaloPSA pages with `pageinate=true`, `page_size` and 1-based `page_no`, and puts `record_count`
beside the list; the count can be absent or wrong, so a short page is what ends a list.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, overload

from shared.halo.errors import HaloProtocolError

log = logging.getLogger("halo_immy.halo")

T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")

# Reads page `number` (1-based): its records and the record_count HaloPSA gave, if any.
GetPage = Callable[[int], Awaitable[tuple[list[Any], int | None]]]


class PageStage(Protocol):
    """Where the answers a run has read are kept, so a later run need not read them again.

    Keys are table-key safe strings naming one answer (a list's page under its parameters, or one
    record read by id); `put` takes the answer's JSON as HaloPSA sent it (bytes), `get` gives it
    back decoded, or None when not kept.
    """

    async def get(self, key: str) -> Any | None:
        """The kept answer under `key`, or None."""
        ...

    async def put(self, key: str, value: Any) -> None:
        """Keep `value` under `key`."""
        ...


async def read_all_pages(
    get_page: GetPage,
    *,
    path: str,
    page_size: int,
    max_pages: int,
    slots: asyncio.Semaphore,
) -> tuple[list[Any], int, int]:
    """Every record of a list (deduplicated by id), the pages read and the duplicates dropped.

    Pages after the first are read concurrently, at most as many at once as `slots` allows; the
    first failure cancels the pages still in flight and is raised as itself.
    """
    size = page_size
    first, record_count = await get_page(1)
    if len(first) != size:
        # Short page: that was all. Longer than asked: the endpoint ignores paging and sent all.
        return dedupe(first)[0], 1, 0
    planned = _planned_pages(record_count, size, max_pages, path)
    pages: dict[int, list[Any]] = {1: first}
    first_short = math.inf

    async def fetch(number: int) -> None:
        nonlocal first_short
        async with slots:
            if number > first_short:
                return  # an earlier page already ended the list
            records, _ = await get_page(number)
        pages[number] = records
        if len(records) < size:
            first_short = min(first_short, number)

    try:
        async with asyncio.TaskGroup() as group:
            for number in range(2, planned + 1):
                group.create_task(fetch(number))
    except ExceptionGroup as failed:
        # Callers handle HaloError, not groups: surface the first failure (the rest were
        # cancelled with it).
        raise first_error(failed) from None
    number = planned
    # record_count was too low (or absent): keep walking until HaloPSA sends a short page.
    while first_short == math.inf:
        number += 1
        if number > max_pages:
            raise HaloProtocolError(
                "GET", path, 200, f"more than {max_pages} full pages; refusing to go on"
            )
        await fetch(number)
    records, duplicates = _in_page_order(pages, int(first_short), path)
    return records, len(pages), duplicates


def _planned_pages(record_count: int | None, size: int, max_pages: int, path: str) -> int:
    """The pages `record_count` implies (at least 2: the first was full); over the cap raises."""
    planned = max(2, math.ceil(record_count / size)) if record_count else 2
    if planned > max_pages:
        raise HaloProtocolError(
            "GET",
            path,
            200,
            f"record_count {record_count} implies {planned} pages, over the cap of {max_pages}",
        )
    return planned


def _in_page_order(pages: Mapping[int, list[Any]], last: int, path: str) -> tuple[list[Any], int]:
    """The records of `pages` in page order, deduplicated by id, and the duplicates dropped.

    Records on pages after the `last` (short) one are kept, after the rest, and logged.
    """
    ordered = [record for n in sorted(pages) if n <= last for record in pages[n]]
    late = sum(len(pages[n]) for n in pages if n > last)
    if late:
        log.warning("HaloPSA %s: %d records on pages after the last one", path, late)
        ordered.extend(record for n in sorted(pages) if n > last for record in pages[n])
    records, duplicates = dedupe(ordered)
    if duplicates:
        log.warning("HaloPSA %s: %d duplicate records across pages dropped", path, duplicates)
    return records, duplicates


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def dedupe(records: list[Any]) -> tuple[list[Any], int]:
    """The records with later repeats of an id dropped, and how many were dropped."""
    seen: set[Any] = set()
    unique: list[Any] = []
    duplicates = 0
    for record in records:
        record_id = record.get("id") if isinstance(record, Mapping) else None
        if isinstance(record_id, int | str):
            if record_id in seen:
                duplicates += 1
                continue
            seen.add(record_id)
        unique.append(record)
    return unique, duplicates


@overload
async def gather_or_cancel(a: Awaitable[T1], b: Awaitable[T2], /) -> tuple[T1, T2]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], /
) -> tuple[T1, T2, T3]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], d: Awaitable[T4], /
) -> tuple[T1, T2, T3, T4]: ...
@overload
async def gather_or_cancel(
    a: Awaitable[T1], b: Awaitable[T2], c: Awaitable[T3], d: Awaitable[T4], e: Awaitable[T5], /
) -> tuple[T1, T2, T3, T4, T5]: ...
@overload
async def gather_or_cancel(*awaitables: Awaitable[Any]) -> tuple[Any, ...]: ...
async def gather_or_cancel(*awaitables: Awaitable[Any]) -> tuple[Any, ...]:
    """Await HaloPSA reads concurrently, like `asyncio.gather`, but all or nothing.

    The first failure cancels the others at once (their requests in flight, their back-off waits,
    and every request they had yet to send) and is raised as itself, not as an exception group.
    `asyncio.gather` would raise it too, but leave the others sending requests into a run that has
    already failed, spending the shared budget for nothing.
    """

    async def wait(awaitable: Awaitable[Any]) -> Any:
        return await awaitable

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(wait(awaitable)) for awaitable in awaitables]
    except ExceptionGroup as failed:
        raise first_error(failed) from None
    return tuple(task.result() for task in tasks)
