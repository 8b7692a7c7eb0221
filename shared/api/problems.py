"""RFC 9457 problem details: the one shape every HTTP error of the app takes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://halo-immy.invalid/problems/"


class Problem(BaseModel):
    """An `application/problem+json` body; extension members are allowed (RFC 9457 section 3.2)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None

    def body(self) -> bytes:
        """The serialised body, without absent members."""
        return self.model_dump_json(exclude_none=True).encode()


def problem(
    status: int, slug: str | None = None, detail: str | None = None, **extra: Any
) -> Problem:
    """A problem with the standard title for `status` and a type URI naming the kind of error."""
    return Problem(
        type=PROBLEM_BASE + slug if slug else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        **extra,
    )


class ApiError(Exception):
    """An answer that is a problem (4xx/5xx), with any headers it needs."""

    def __init__(self, answer: Problem, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(answer.detail or answer.title)
        self.problem = answer
        self.headers = dict(headers or {})


def json_object(body: bytes, max_bytes: int) -> dict[str, Any]:
    """A request body that must be one JSON object, or the 400/413 problem saying why not."""
    if len(body) > max_bytes:
        raise ApiError(problem(413, "too-large", f"the body may be at most {max_bytes} bytes"))
    try:
        document = json.loads(body or b"null")
    except RecursionError:
        # `[` x 5000 parses past the interpreter's recursion limit: bad input, not a crash.
        raise ApiError(problem(400, "bad-json", "the body is nested too deeply")) from None
    except ValueError:
        raise ApiError(problem(400, "bad-json", "the body is not valid JSON")) from None
    if not isinstance(document, dict):
        raise ApiError(problem(400, "bad-json", "the body must be a JSON object"))
    return document
