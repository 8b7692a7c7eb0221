"""What a caller asks `GET /api/targets` for: exactly one selector, parsed, or a 400 saying why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem

QueryKind = Literal["software", "contract_type", "item"]
QUERY_KINDS: tuple[QueryKind, ...] = ("software", "contract_type", "item")
# `code` carries the function key when a caller cannot send the x-functions-key header.
HOST_PARAMS = frozenset({"code"})
MAX_VALUE = 200


@dataclass(frozen=True, slots=True)
class TargetsQuery:
    """What the caller asked targets for."""

    kind: QueryKind
    value: str
    computers: bool = False


def parse_targets_query(params: Mapping[str, str]) -> TargetsQuery:
    """Exactly one of software, contract_type or item, with a sane value; else a 400."""
    expand = params.get("expand")
    if expand is not None and expand != "computers":
        raise ApiError(problem(400, "bad-query", "expand may only be 'computers'"))
    unknown = sorted(set(params) - set(QUERY_KINDS) - HOST_PARAMS - {"expand"})
    if unknown:
        raise ApiError(
            problem(
                400,
                "bad-query",
                f"unknown parameter(s): {', '.join(unknown)}",
                allowed=list(QUERY_KINDS),
            )
        )
    given = [k for k in QUERY_KINDS if k in params]
    if len(given) != 1:
        detail = "give one of software, contract_type or item" + (
            f", not {len(given)}" if given else ""
        )
        raise ApiError(problem(400, "bad-query", detail))
    kind = given[0]
    return TargetsQuery(kind, lookup_value(kind, params[kind], MAX_VALUE), expand is not None)


def described(query: TargetsQuery) -> dict[str, str]:
    """The query as the answer echoes it."""
    return {query.kind: query.value} | ({"expand": "computers"} if query.computers else {})


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against a list of tags, or `*`."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
