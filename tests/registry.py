"""The app's functions as the host indexes them; get_functions() may be called once per process."""

from __future__ import annotations

from functools import lru_cache

from azure.functions.decorators.function_app import Function

import function_app


@lru_cache(maxsize=1)
def registered() -> dict[str, Function]:
    """Every registered function by name."""
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def handler(name: str):
    """The user function the host would call for `name`."""
    return registered()[name].get_user_function()
