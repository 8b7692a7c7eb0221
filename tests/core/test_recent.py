"""The bounded map of recent values the read caches keep per client and per bucket."""

from __future__ import annotations

from shared.core.recent import Recent


def test_the_least_recently_used_goes_first_past_the_bound():
    recent: Recent[str, int | None] = Recent(2)
    recent.put("a", 1)
    recent.put("b", None)
    assert recent.get("a") == (True, 1)  # "a" is now the most recent
    recent.put("c", 3)
    assert recent.get("b") == (False, None)  # "b" was the least recently used
    assert recent.get("a") == (True, 1) and recent.get("c") == (True, 3)


def test_a_kept_none_is_told_from_a_missing_key_and_clear_forgets_all():
    recent: Recent[int, str | None] = Recent(4)
    recent.put(1, None)
    assert recent.get(1) == (True, None) and recent.get(2) == (False, None)
    recent.clear()
    assert recent.get(1) == (False, None)
