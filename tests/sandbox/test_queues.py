"""Queue delivery as the Functions host does it, over Azurite's real queue service."""

from __future__ import annotations

import itertools
import json

import pytest

from sandbox.queues import HOST_JSON, PROCESSING_SECONDS, QueueFunction, QueueHost, QueueRules

pytestmark = pytest.mark.integration
_names = itertools.count()


def call(handler, *args):
    return handler(*args)


@pytest.fixture
def make_host(azurite_queues):
    def make(functions, *, max_dequeue: int = 3) -> QueueHost:
        return QueueHost(
            azurite_queues.connection_string,
            functions,
            call,
            rules=QueueRules(max_dequeue_count=max_dequeue, visibility_timeout=0),
            prefix=f"q{next(_names)}x",
        )

    return make


def test_the_rules_are_host_jsons():
    host = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    rules = QueueRules.from_host_json()
    assert rules.max_dequeue_count == host["maxDequeueCount"] > 1
    assert rules.visibility_timeout == 60


def test_success_deletes_the_message_and_writes_the_outputs(make_host):
    seen = []

    def handler(message, out):
        seen.append((message.get_body().decode(), message.dequeue_count))
        out.set(["a", "b"])

    host = make_host({"work": QueueFunction(handler, ("next",))})
    host.send("work", ["one"])
    assert host.drain() == 1
    assert seen == [("one", 1)]
    assert host.count("work") == 0
    assert host.peek("next") == ["a", "b"]


def test_a_failing_message_is_retried_then_moved_to_poison_as_it_was(make_host):
    counts = []

    def handler(message, out):
        counts.append(message.dequeue_count)
        out.set("never written")
        raise RuntimeError("fails every time")

    host = make_host({"work": QueueFunction(handler, ("next",))})
    host.send("work", ['{"client": 1}'])
    host.drain()
    assert counts == [1, 2, 3]
    assert host.count("work") == 0
    assert host.peek("work-poison") == ['{"client": 1}']
    assert host.peek("next") == []  # outputs only when the function succeeds


def test_a_dying_invocation_counts_as_failed_and_is_delivered_again(make_host):
    counts = []

    class Killed(BaseException):
        pass

    def handler(message):
        counts.append(message.dequeue_count)
        if message.dequeue_count == 1:
            raise Killed

    host = make_host({"work": QueueFunction(handler)})
    host.send("work", ["x"])
    host.drain()
    assert counts == [1, 2]
    assert host.count("work") == 0 and host.peek("work-poison") == []


def test_a_message_dequeued_past_the_limit_goes_to_poison_unrun(make_host):
    ran = []
    host = make_host({"work": QueueFunction(lambda m: ran.append(m))}, max_dequeue=1)
    host.send("work", ["x"])
    # A process took it and died: it comes back after its processing time, counted.
    (taken,) = host.client("work").receive_messages(visibility_timeout=PROCESSING_SECONDS)
    host.client("work").update_message(taken, visibility_timeout=0)
    host.drain()
    assert ran == []
    assert host.peek("work-poison") == ["x"]
