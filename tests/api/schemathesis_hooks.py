"""Loaded by the Schemathesis command of test_schemathesis.py (its config's `hooks`), never by pytest.

Hypothesis builds a regex's strategy by adding a character class's members one at a time, a
range by each code point in it. The document's VisibleName class lists every assigned visible
code point (about 144,000), so each build took about 1.3 s of CPU, and Schemathesis builds the
same pattern afresh for every operation and phase that meets it (each time with a new, equal
alphabet): most of the run's time. Strategies are immutable values, so the build is kept per
pattern, flags and alphabet; a run with and without this sends the same requests in the same
order (compared by HAR when it was added).
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from hypothesis.strategies._internal import regex as hypothesis_regex

_build = hypothesis_regex.base_regex_strategy
_built: dict[tuple[Any, ...], Any] = {}


@wraps(_build)
def _kept_build(regex: Any, *, parsed: Any = None, alphabet: Any) -> Any:
    # An alphabet is a strategy object, new per call; the code points it allows are its identity.
    allowed = getattr(alphabet, "intervals", None)
    key = (regex.pattern, regex.flags, alphabet if allowed is None else allowed)
    found = _built.get(key)
    if found is None:
        found = _built[key] = _build(regex, parsed=parsed, alphabet=alphabet)
    return found


hypothesis_regex.base_regex_strategy = _kept_build
