"""The process-wide settings and store: built once on first use and shared by every invocation
in the worker process (the store's service client keeps one connection pool)."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import Settings, load_settings
from shared.store.repository import Store


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first call."""
    return load_settings()


@lru_cache(maxsize=1)
def get_store() -> Store:
    """The process-wide store, built from settings on first use."""
    return Store.from_settings(get_settings())
