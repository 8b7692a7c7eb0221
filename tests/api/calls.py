"""Calling the registered HTTP handlers the way the host does, for the API tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from tests.registry import registered


class Out:
    """An output binding that keeps what the function set."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value


@dataclass(frozen=True)
class Request:
    """One call of a function: `params` as the host hands them over, `query` the raw query
    string of the URL (the host keeps it as sent; empty: the URL carries none)."""

    function: str
    method: str
    path: str
    params: dict[str, str]
    route: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""


def send(request: Request) -> func.HttpResponse:
    """The function's answer, called as the host calls it."""
    handler: Callable[..., Any] = registered()[request.function].get_user_function()
    query = f"?{request.query}" if request.query else ""
    http = func.HttpRequest(
        request.method,
        f"http://localhost{request.path}{query}",
        headers=request.headers,
        params=request.params,
        route_params=request.route,
        body=request.body,
    )
    args: list[Any] = [http]
    if request.function in ("sync_now", "halo_webhook"):
        args.append(Out())
    result = handler(*args)
    return asyncio.run(result) if inspect.isawaitable(result) else result
