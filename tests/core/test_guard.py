"""The guard's verdict as a type: its parts, its stored form, whether a repeat may confirm it."""

from __future__ import annotations

import json

from shared.core.guard import Drop, Verdict, confirmable, guard_verdict


def test_a_verdict_stores_only_the_parts_that_hold_the_run_in_order():
    drop = guard_verdict({"edr": {1, 2}}, {"edr": set()}, 0.3)
    verdict = Verdict(
        targets=drop, mapped_targets={}, empty={"contracts": {"before": 3, "after": 0}}
    )
    assert verdict.parts() == ["targets", "empty"]
    assert json.dumps(verdict.record()) == json.dumps(
        {
            "targets": {"edr": {"before": 2, "after": 0, "dropped": 2, "share": 1.0}},
            "empty": {"contracts": {"before": 3, "after": 0}},
        }
    )
    assert Verdict().parts() == [] and Verdict().record() == {}


def test_only_drops_are_confirmable_by_a_repeat():
    tenants = Drop(before=4, after=2, dropped=2, share=0.5)
    assert confirmable(Verdict(mapped_tenants=tenants).parts())
    assert not confirmable(Verdict(empty={"items": {"before": 1, "after": 0}}).parts())
