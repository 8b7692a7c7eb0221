"""JSON Merge Patch (RFC 7386): what `PATCH` with `application/merge-patch+json` means (pure).

A patch object names the members to change: a value replaces the member (objects merge member
by member, anything else, arrays included, is replaced whole), `null` removes it, and a member
the patch does not name stays as it is.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied, as RFC 7386 section 2 defines it; neither is changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
