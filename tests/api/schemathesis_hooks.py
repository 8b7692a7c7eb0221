"""Loaded by the Schemathesis command of test_schemathesis.py (its config's `hooks`), never by pytest.

Hypothesis builds a regex's character class by adding its members one at a time, a range by
each code point in it. The document's VisibleName class lists every assigned visible code point
(about 144,000), so each build of it took about 1.6 s of CPU, and Schemathesis meets it in three
spellings (two patterns and their `\\u` escapes) on two threads: most of a slice's time. Three
changes, each exact:
- A class without IGNORECASE is built from its ranges as intervals. Without that flag a member
  adds only its own code point, so the class holds the same code points and the strategy
  (one-character strings over the same intervals) draws the same values.
- A regex's whole strategy is kept per pattern, flags and alphabet: Schemathesis builds the same
  pattern afresh for every operation and phase that meets it, each time with a new, equal
  alphabet. Strategies are immutable values.
- The code points UTF-8 encodes (Schemathesis's alphabet) are found a block at a time.
  Hypothesis tries each of the 1.1 million code points in turn: about 5 s of CPU in each process
  that finds no copy in its storage directory. UTF-8 encodes a string character by character, so
  a block that encodes and decodes back whole holds only code points that do; a block that does
  not (the surrogates') is tried a code point at a time, as Hypothesis does. (Hypothesis turns
  ASCII into a highest code point and asks no codec.)
A run with and without the first two sent the same requests in the same order (compared by HAR);
the third answers Hypothesis the same code points (tests/api/test_schemathesis_hooks.py), which
is all it draws characters from.
"""

from __future__ import annotations

import re
import sys
from functools import cache, wraps
from typing import Any

from hypothesis.internal import charmap
from hypothesis.internal.intervalsets import IntervalSet
from hypothesis.strategies._internal import regex as hypothesis_regex

_sre = hypothesis_regex.sre
_build = hypothesis_regex.base_regex_strategy
_element = hypothesis_regex._strategy
_built: dict[tuple[Any, ...], Any] = {}
_from_codec = charmap.intervals_from_codec


def _character_class(members: Any, flags: re.RegexFlag, alphabet: Any) -> Any:
    """The strategy Hypothesis builds for `[members]`, with ranges added as intervals."""
    builder = hypothesis_regex.CharactersBuilder(
        flags=flags, negate=members[0][0] == _sre.NEGATE, alphabet=alphabet
    )
    spans: list[tuple[int, int]] = []
    for code, value in members:
        if code == _sre.LITERAL:
            spans.append((value, value))
        elif code == _sre.RANGE:
            spans.append(value)
        elif code == _sre.CATEGORY:
            builder.add_category(value)
        elif code != _sre.NEGATE:
            return None
    collected = IntervalSet(sorted(spans))
    builder._intervals |= collected.union(collected)  # union() merges the sorted spans
    return builder.strategy


@wraps(_element)
def _fast_element(codes: Any, context: Any, is_unicode: bool, *, alphabet: Any) -> Any:
    if (
        is_unicode
        and isinstance(codes, tuple)
        and codes[0] == _sre.IN
        and not context.flags & re.IGNORECASE
    ):
        built = _character_class(codes[1], context.flags, alphabet)
        if built is not None:
            return built
    return _element(codes, context, is_unicode, alphabet=alphabet)


@wraps(_build)
def _kept_build(regex: Any, *, parsed: Any = None, alphabet: Any) -> Any:
    # An alphabet is a strategy object, new per call; the code points it allows are its identity.
    allowed = getattr(alphabet, "intervals", None)
    key = (regex.pattern, regex.flags, alphabet if allowed is None else allowed)
    found = _built.get(key)
    if found is None:
        found = _built[key] = _build(regex, parsed=parsed, alphabet=alphabet)
    return found


@cache
def intervals_from_codec(codec_name: str) -> tuple[IntervalSet, IntervalSet]:
    """Hypothesis's `intervals_from_codec`: for UTF-8 found a block at a time."""
    if codec_name != "utf-8":
        return _from_codec(codec_name)
    return blockwise_intervals(codec_name, sys.maxunicode + 1)


def blockwise_intervals(
    codec_name: str, stop: int, block_size: int = 4096
) -> tuple[IntervalSet, IntervalSet]:
    """Of the code points below `stop`, those a stateless codec encodes and those of them that do
    not decode back to themselves. A stateless codec encodes a string as its characters one by
    one, so a block that encodes and decodes back whole holds only such code points."""
    encodable: list[tuple[int, int]] = []
    lossy: list[tuple[int, int]] = []
    for start in range(0, stop, block_size):
        end = min(start + block_size, stop)
        block = "".join(map(chr, range(start, end)))
        try:
            whole = block.encode(codec_name).decode(codec_name) == block
        except Exception:  # as Hypothesis: usually, but not always, a UnicodeError
            whole = False
        if whole:
            encodable.append((start, end - 1))
            continue
        for point in range(start, end):  # Hypothesis's own loop, on this block only
            char = chr(point)
            try:
                encoded = char.encode(codec_name)
            except Exception:
                continue
            encodable.append((point, point))
            try:
                roundtrips = encoded.decode(codec_name) == char
            except Exception:
                roundtrips = False
            if not roundtrips:
                lossy.append((point, point))
    found, lost = IntervalSet(encodable), IntervalSet(lossy)
    return found.union(found), lost.union(lost)  # union() merges neighbouring spans


# _strategy recurses through the module's name, so every class of a pattern takes the fast path.
hypothesis_regex._strategy = _fast_element
hypothesis_regex.base_regex_strategy = _kept_build
charmap.intervals_from_codec = intervals_from_codec
