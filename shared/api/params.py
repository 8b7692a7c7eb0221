"""What the HTTP API accepts in a query or a route: a value, or a 400 problem naming it.

The rules themselves (patterns, id bounds) are shared.core.text's; this adds the HTTP answer.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from shared.api.problems import ApiError, problem
from shared.core.text import INT32_MAX, LOOKUP_MAX, LOOKUP_PATTERN, matches, parse_id

# What lookup_value accepts (leading, trailing and repeated spaces are then collapsed), as the
# document states it.
Lookup = Annotated[
    str, StringConstraints(min_length=1, max_length=LOOKUP_MAX, pattern=LOOKUP_PATTERN)
]


def lookup_value(name: str, raw: str, max_length: int = LOOKUP_MAX) -> str:
    """A query value naming something to look up, whitespace collapsed; else a 400 saying why."""
    if len(raw) > max_length or not matches(LOOKUP_PATTERN, raw):
        raise ApiError(
            problem(
                400,
                "bad-query",
                f"{name} must be 1-{max_length} characters, not all spaces, without control "
                "characters",
            )
        )
    return " ".join(raw.split())


def record_id(raw: str, name: str, slug: str = "bad-id") -> int:
    """A positive 32-bit record id written in ASCII digits; else a 400 saying why."""
    value = parse_id(raw)
    if value is None:
        raise ApiError(problem(400, slug, f"{name} must be a whole number from 1 to {INT32_MAX}"))
    return value
