"""The one way an HTTP call reaches the API: its query checked against what the route documents,
its handler run with errors answered as problems, and one `api_call` log line.

Every trigger goes through `respond` (or `respond_async`), so a rule about every route (no unknown
query parameter, none given twice) lives here once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from shared.api.problems import Problem
from shared.api.query import check_query, query_refusal
from shared.api.replies import Reply, guarded, log_api_call, problem_reply


@dataclass(frozen=True, slots=True)
class Call:
    """What the API reads of an HTTP request besides its body: plain values, so shared/ needs
    no azure.functions. `url` is the whole URL as the host hands it over, query included."""

    function: str
    method: str
    url: str
    params: Mapping[str, str]


def respond(call: Call, handler: Callable[[], Reply]) -> Reply:
    """The handler's reply, or the problem for a bad query or for what the handler raised."""
    started = time.perf_counter()

    def checked() -> Reply:
        check_query(call.method, call.url, call.params)
        return handler()

    reply = guarded(checked)
    log_api_call(call.function, call.method, reply.status, started, call.params)
    return reply


async def respond_async(
    call: Call,
    handler: Callable[[], Awaitable[Reply]],
    refused: Callable[[Problem], Reply] = problem_reply,
) -> Reply:
    """`respond` for a coroutine handler (one that answers every error itself); `refused` makes
    the answer to a bad query (the tab renders one for a browser)."""
    started = time.perf_counter()
    refusal = query_refusal(call.method, call.url, call.params)
    reply = refused(refusal) if refusal is not None else await handler()
    log_api_call(call.function, call.method, reply.status, started, call.params)
    return reply
