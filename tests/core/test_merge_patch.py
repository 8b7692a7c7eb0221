"""JSON Merge Patch against RFC 7386's own examples (appendix A) and the rule edits it serves."""

from __future__ import annotations

import copy

import pytest

from shared.core.merge_patch import merge_patch


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_the_rfc_examples(target, patch, result):
    assert merge_patch(target, patch) == result


def test_neither_document_is_changed():
    target = {"software": "EDR", "items": [{"code": "A"}], "detect": ["Agent"]}
    patch = {"detect": None, "items": [{"code": "B"}]}
    kept = copy.deepcopy((target, patch))
    assert merge_patch(target, patch) == {"software": "EDR", "items": [{"code": "B"}]}
    assert (target, patch) == kept
