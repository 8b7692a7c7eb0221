"""A HaloPSA list as it was read: its valid records, its rejects, and how it was read.

The REST client (`shared.halo.client`) and the SQL report read (`shared.halo.report`) both answer
in `Listing`s, so a sync checks, compares and stores either read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from shared.records.parsing import Parsed, parse_records

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Listing(Parsed[M], Generic[M]):
    """A fully paged list: valid records, rejects, and how it was read."""

    pages: int = 0
    duplicates: int = 0
    lines_fetched_by_id: int = 0


def parse_listing(
    model: type[M],
    raw: Iterable[Any],
    kind: str,
    *,
    pages: int = 1,
    duplicates: int = 0,
    lines_fetched_by_id: int = 0,
) -> Listing[M]:
    """Validate raw HaloPSA JSON objects into `model` (a bad one is a reject with its reason, never
    the others' loss), as a Listing read in `pages` pages."""
    parsed = parse_records(model, raw, kind=kind)
    return Listing(
        records=parsed.records,
        rejects=parsed.rejects,
        pages=pages,
        duplicates=duplicates,
        lines_fetched_by_id=lines_fetched_by_id,
    )
