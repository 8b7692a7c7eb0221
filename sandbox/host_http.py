"""What the Functions host does to an HTTP request before the worker sees it, and answers itself:
route values decoded, repeated query names joined, a call without a valid key refused."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote


def route_value(raw: str) -> str:
    """A route value as the Functions host hands it over: percent-decoded (UTF-8, invalid bytes
    replaced), except `%2F`, which stays as sent, so a value can never gain a path separator."""
    return "%2F".join(unquote(part) for part in re.split("%2[Ff]", raw))


def query_params(query: str) -> dict[str, str]:
    """The query as the host hands it to the worker: one value per name, a repeated name's values
    joined with "," (StringValues.ToString() in GrpcMessageConversionExtensions.ToRpcHttp,
    Azure/azure-functions-host); the raw query stays in the request's URL."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(given) for name, given in values.items()}


def unauthorized() -> tuple[int, dict[str, str], bytes]:
    """What the host answers a call without a valid key: 401, no body, no Content-Type.

    The host's FunctionInvocationMiddleware returns ASP.NET Core's `UnauthorizedResult` when
    its authorisation policy fails, and that result sets the status alone
    (Azure/azure-functions-host, src/WebJobs.Script.WebHost/Middleware/
    FunctionInvocationMiddleware.cs, `GetResultAsync`). The app's code never runs, so no problem
    body can be given there; this answers the same, so local callers see what Azure sends.
    """
    return 401, {}, b""
