"""Whether a computer has a software: a rule's `detect` patterns against ImmyBot's detected software.

A pattern matches a display name case-insensitively (and width-insensitively, as rule names are
compared), anywhere in the name; `*` stands for any run of characters. So the default pattern, the
software's own name, finds "Huntress Agent" for Huntress, and `Sentinel*Agent` finds SentinelOne's
"Sentinel Agent" whatever the spacing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from shared.core.rules import normalise


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in normalise(pattern).split("*")]
    return re.compile(".*".join(parts), re.DOTALL)


def matches(pattern: str, display_name: str) -> bool:
    """Whether `display_name` contains `pattern` (case-insensitive, `*` any run of characters)."""
    return _compiled(pattern).search(normalise(display_name)) is not None


@dataclass(frozen=True, slots=True)
class Found:
    """The detected software that answered a rule's patterns, and its version ("" if unknown)."""

    name: str
    version: str


class Named(Protocol):
    """A row of inventory: ImmyBot's detected software, or what a generation stores of it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


def find(patterns: Sequence[str], detected: Iterable[Named]) -> Found | None:
    """The first detected software (by name) that any of `patterns` matches, or None."""
    for row in sorted(detected, key=lambda r: (r.name.casefold(), r.version)):
        if any(matches(p, row.name) for p in patterns):
            return Found(row.name, row.version)
    return None
