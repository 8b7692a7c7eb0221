"""Parsing's collector pause: a burst of validation runs without the cyclic GC, then it is back."""

from __future__ import annotations

import gc
import json

import pytest

from shared.records.halo import Client
from shared.records.parsing import gc_paused, parse_records, vendor_json


def test_the_collector_is_paused_inside_and_restored_after_even_on_error():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner block must not turn it back on early
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_host_stays_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_parsing_leaves_the_collector_as_it_found_it():
    parsed = parse_records(Client, [{"id": 1, "name": "A"}, {"id": "x"}])
    assert [c.id for c in parsed.records] == [1] and len(parsed.rejects) == 1
    assert gc.isenabled()


def test_vendor_json_decodes_as_json_loads_and_leaves_the_collector_on():
    body = b'{"clients": [{"id": 1, "name": "Zo\xc3\xab", "rate": 2.5, "x": null}], "n": true}'
    assert vendor_json(body) == json.loads(body)
    assert gc.isenabled()
    with pytest.raises(ValueError):
        vendor_json(b"<html>not json</html>")
    assert gc.isenabled()
