"""What a route takes in its query: the names its OpenAPI operation documents (and `code`, where
a caller may put the function key), each at most once. Anything else is a 400 problem, on every
route, answered before the route's own code runs.

Repeated names are read from the URL: the Functions host hands the worker one value per name,
a repeated name's values joined with "," (`StringValues.ToString()` in
GrpcMessageConversionExtensions.ToRpcHttp, Azure/azure-functions-host), while the URL it hands
over keeps the query as sent. `params` alone would answer `?software=A&software=B` for "A,B".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

from shared.api.openapi_routes import ROUTES
from shared.api.openapi_spec import Route
from shared.api.problems import ApiError, Problem, problem

# The host reads a function key from this query parameter: every route takes it.
KEY_PARAMETER = "code"
# The host's route prefix (host.json's default), which the document's paths leave out.
ROUTE_PREFIX = "/api"
# An answer names at most this many parameters, each cut to this many characters: 5,000
# unknown names must not make a 34 KB error.
NAMES_SHOWN = 3
NAME_CHARS = 40


@lru_cache(maxsize=1)
def _paths() -> tuple[tuple[re.Pattern[str], Route], ...]:
    """Each documented path as the host matches it (case-insensitively, a value per segment)."""
    return tuple(
        (re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(r.path)) + "$", re.IGNORECASE), r)
        for r in ROUTES
    )


def taken(method: str, path: str) -> frozenset[str] | None:
    """The query names `method` on `path` takes (with the key's), or None for an undocumented
    path. A method the path does not take gets every name its methods take: its own answer (a
    405) is the one to give, not a 400 about the query."""
    if path[: len(ROUTE_PREFIX)].lower() == ROUTE_PREFIX:
        path = path[len(ROUTE_PREFIX) :]
    path = path.rstrip("/") or "/"
    for pattern, route in _paths():
        if pattern.match(path):
            return route.query_names(method) | {KEY_PARAMETER}
    return None


def query_refusal(method: str, url: str, params: Mapping[str, str]) -> Problem | None:
    """The 400 for a query with a name the route does not take or a name given twice; else
    None. Unknown names are told first: a repeated unknown name is unknown above all."""
    split = urlsplit(url)
    raw = [name for name, _ in parse_qsl(split.query, keep_blank_values=True)]
    allowed = taken(method, split.path)
    if allowed is not None:
        unknown = sorted({*raw, *params} - allowed)
        if unknown:
            return _unknown(unknown, allowed)
    repeated = sorted(name for name, count in Counter(raw).items() if count > 1)
    if repeated:
        return _repeated(repeated)
    return None


def check_query(method: str, url: str, params: Mapping[str, str]) -> None:
    """Raise the 400 `query_refusal` gives, if any."""
    refusal = query_refusal(method, url, params)
    if refusal is not None:
        raise ApiError(refusal)


def _unknown(names: list[str], allowed: frozenset[str]) -> Problem:
    shown = shown_names(names)
    takes = sorted(allowed - {KEY_PARAMETER})
    detail = f"unknown query parameter{'s' if len(names) > 1 else ''} {_listed(shown, names)}"
    detail += "; this route takes " + (", ".join(takes) if takes else "none besides the key")
    return problem(
        400, "unknown-parameter", detail, parameters=shown, count=len(names), takes=takes
    )


def _repeated(names: list[str]) -> Problem:
    shown = shown_names(names)
    detail = f"query parameter{'s' if len(names) > 1 else ''} {_listed(shown, names)} "
    detail += "given more than once; give each once"
    return problem(400, "repeated-parameter", detail, parameters=shown, count=len(names))


def shown_names(names: Iterable[str]) -> list[str]:
    """The first few names, in ASCII (other characters escaped, as Python's ascii() writes them)
    and cut short: what an answer or a log line may carry of names a caller made up. ASCII, so no
    encoding can grow them past the bound."""
    out: list[str] = []
    for name in names:
        if len(out) == NAMES_SHOWN:
            break
        text = ascii(name)[1:-1]
        out.append(text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 3] + "...")
    return out


def _listed(shown: list[str], names: list[str]) -> str:
    text = ", ".join(f"'{n}'" for n in shown)
    more = len(names) - len(shown)
    return text + (f" and {more} more" if more else "")
