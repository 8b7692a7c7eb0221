"""Framework-free HTTP replies: the trigger blueprints turn a `Reply` into a func.HttpResponse.

Keeping azure.functions out of shared/ lets every answer be built and tested as plain Python.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError
from pydantic import BaseModel

from shared.api.problems import PROBLEM_JSON, ApiError, Problem, problem
from shared.settings import SettingsError
from shared.store.base import StoreError

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


# A caller can send thousands of made-up parameter names; a log line carries this many.
LOGGED_PARAMS = 20


def log_api_call(
    function: str, method: str, status: int, started: float, params: Mapping[str, str]
) -> None:
    """One structured line per API call: names and numbers only (no values, no customer text),
    and at most LOGGED_PARAMS parameter names, each cut short."""
    names = sorted(k for k in params if k != "code")
    line: dict[str, Any] = {
        "event": "api_call",
        "service": function,
        "method": method,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "params": [n if len(n) <= 40 else n[:37] + "..." for n in names[:LOGGED_PARAMS]],
    }
    if len(names) > LOGGED_PARAMS:
        line["params_more"] = len(names) - LOGGED_PARAMS
    log.info(json.dumps(line))


# Where the Table SDK's own code lives: an error raised there is storage's, not the app's.
_SDK_FILES = ("/azure/data/tables/", "/azure/core/")


def storage_faults(handler: Callable[[], Reply]) -> Reply:
    """The handler's answer, with a storage failure the SDK let through raised as a StoreError.

    The SDK raises AzureError when storage drops, refuses or times out, and may fail inside its
    own deserialiser (an AttributeError or ValueError) on an answer cut mid-body. Only the
    error's type and status go on: its message can carry the request URL, and with it a SAS.
    """
    try:
        return handler()
    except AzureError as error:
        status = getattr(error, "status_code", None) or ""
        raise StoreError(f"{type(error).__name__} {status}".strip()) from None
    except (AttributeError, ValueError, TypeError) as error:
        frames = traceback.extract_tb(error.__traceback__)
        if not frames or not any(part in frames[-1].filename for part in _SDK_FILES):
            raise
        raise StoreError(f"malformed answer from storage: {type(error).__name__}") from None


def guarded(handler: Callable[[], Reply]) -> Reply:
    """Run a handler, turning API errors, configuration and storage failures (the SDK's own
    included) into problems."""
    try:
        return storage_faults(handler)
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
