"""Framework-free HTTP replies: the trigger blueprints turn a `Reply` into a func.HttpResponse.

Keeping azure.functions out of shared/ lets every answer be built and tested as plain Python.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared.problems import PROBLEM_JSON, ApiError, Problem, problem
from shared.settings import SettingsError
from shared.store import StoreError

log = logging.getLogger("halo_immy.http")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    """Status, headers and body of an HTTP answer."""

    status: int
    body: bytes = b""
    mimetype: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `azure.functions.HttpResponse`."""
        return {
            "body": self.body,
            "status_code": self.status,
            "mimetype": self.mimetype,
            "headers": dict(self.headers),
        }


def json_reply(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> Reply:
    """A pydantic model as a JSON answer."""
    return Reply(status, model.model_dump_json().encode(), JSON, dict(headers or {}))


def problem_reply(answer: Problem, headers: Mapping[str, str] | None = None) -> Reply:
    """A problem details answer."""
    return Reply(answer.status, answer.body(), PROBLEM_JSON, dict(headers or {}))


def log_api_call(
    function: str, method: str, status: int, started: float, params: Mapping[str, str]
) -> None:
    """One structured line per API call: names and numbers only (no values, no customer text)."""
    line = {
        "event": "api_call",
        "service": function,
        "method": method,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "params": sorted(k for k in params if k != "code"),
    }
    log.info(json.dumps(line))


def observed(
    function: str, method: str, params: Mapping[str, str], handler: Callable[[], Reply]
) -> Reply:
    """`guarded(handler)`, timed and logged as an api_call line."""
    started = time.perf_counter()
    reply = guarded(handler)
    log_api_call(function, method, reply.status, started, params)
    return reply


def guarded(handler: Callable[[], Reply]) -> Reply:
    """Run a handler, turning API errors, configuration and storage failures into problems."""
    try:
        return handler()
    except ApiError as error:
        return problem_reply(error.problem, error.headers)
    except SettingsError as error:
        # Names of the bad settings only; values never leave the process.
        log.error("%s", error)
        return problem_reply(
            problem(
                503, "not-configured", "the app is not configured", settings=sorted(error.problems)
            ),
            {"Retry-After": "300"},
        )
    except StoreError as error:
        log.error("storage unavailable: %s", error)
        return problem_reply(
            problem(503, "storage-unavailable", "Table Storage did not answer"),
            {"Retry-After": "30"},
        )
