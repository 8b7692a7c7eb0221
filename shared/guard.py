"""The mass-change guard: when a new generation's targets must wait for an admin.

A HaloPSA permission change must never uninstall security software fleet-wide, so a generation
that drops more than the allowed share of a rule's current targets (or all of them) is stored but
held rather than made current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any


def fingerprint(targets: Mapping[str, Iterable[int]]) -> str:
    """A digest of who is targeted by which rule: equal outcomes have equal fingerprints."""
    canonical = json.dumps({k: sorted(set(v)) for k, v in sorted(targets.items())})
    return hashlib.sha256(canonical.encode()).hexdigest()


def guard_verdict(
    current: Mapping[str, set[int]], new: Mapping[str, set[int]], max_drop: float
) -> dict[str, Any] | None:
    """Why the new targets must be held, per rule, or None when the change is acceptable."""
    held: dict[str, Any] = {}
    for key, before in current.items():
        if key not in new or not before:
            continue  # a deleted rule is an admin's explicit act, not a data accident
        dropped = len(before - new[key])
        share = dropped / len(before)
        if share > max_drop or not new[key]:
            held[key] = {
                "before": len(before),
                "after": len(new[key]),
                "dropped": dropped,
                "share": round(share, 4),
            }
    return held or None
