"""What importing and collecting built is frozen out of the garbage collector
(tests/frozen_heap.py); what a test makes is collected as before."""

from __future__ import annotations

import gc
import weakref

# Made when collection imported this module: frozen with the rest.
BUILT_AT_IMPORT = ["a container the collector tracks"]


def test_what_collection_built_is_frozen():
    assert gc.get_freeze_count() > 10_000
    # gc.get_objects() lists the three generations, not the frozen objects.
    assert not any(found is BUILT_AT_IMPORT for found in gc.get_objects())


def test_a_cycle_a_test_makes_is_still_collected():
    class Node:
        pass

    cycle = Node()
    cycle.next = cycle
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
