"""Azure Storage queues as the Functions host drives them, over Azurite's queue service.

The dev host (sandbox.devhost) and the tests put what an output binding sets on a real queue and
deliver queue messages to the very queue-triggered handlers of `function_app.app`, with the
host's rules (host.json `extensions.queues`):
- a message is taken invisible while its function runs; success deletes it;
- a failed invocation (an exception, or the process dying: simulated by any BaseException) makes
  the message visible again after `visibilityTimeout`, and Azure counts the dequeue;
- a message dequeued `maxDequeueCount` times that fails again, or found dequeued more often than
  that (its process died), is moved to `<queue>-poison` as it was;
- output bindings are written only when the function succeeds;
- messages are base64-encoded, the bindings' default `messageEncoding`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

log = logging.getLogger("halo_immy.devhost")

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# Azurite 3.35's newest queue API version; the SDK's default is newer than Azurite accepts.
AZURITE_QUEUE_API = "2025-11-05"
# How long the host keeps a message invisible while its function runs (it renews; we need not).
PROCESSING_SECONDS = 600
POISON_SUFFIX = "-poison"


@dataclass(frozen=True, slots=True)
class QueueRules:
    """host.json's `extensions.queues` as far as delivery depends on it."""

    max_dequeue_count: int = 5
    visibility_timeout: int = 0  # seconds a failed message stays invisible

    @classmethod
    def from_host_json(cls, path: Path = HOST_JSON) -> QueueRules:
        """The rules the app's host.json sets (the host's defaults where it sets none)."""
        queues = json.loads(path.read_text()).get("extensions", {}).get("queues", {})
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_seconds(str(queues.get("visibilityTimeout", "00:00:00"))),
        )


def _seconds(timespan: str) -> int:
    found = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", timespan)
    if found is None:
        raise ValueError(f"not a hh:mm:ss timespan: {timespan!r}")
    hours, minutes, seconds = (int(part) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, slots=True)
class QueueFunction:
    """A queue-triggered handler and the queues its output bindings write, in argument order."""

    handler: Callable[..., Any]
    outputs: tuple[str, ...] = ()


class BindingOut:
    """What the host passes for a queue output binding: it keeps what the function set."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.value: str | list[str] | None = None

    def set(self, value: str | list[str]) -> None:
        """Queue one message, or a list of messages."""
        self.value = value

    def get(self) -> str | list[str] | None:
        """What was set, if anything."""
        return self.value

    def messages(self) -> list[str]:
        """The messages set."""
        if self.value is None:
            return []
        return [self.value] if isinstance(self.value, str) else list(self.value)


class QueueHost:
    """Output bindings and queue triggers over one queue service (Azurite).

    `call(handler, *args)` runs an invocation as the worker does (sandbox.devhost.Worker.call).
    `prefix` is put before every queue name, so tests sharing one Azurite keep apart.
    """

    def __init__(
        self,
        connection_string: str,
        functions: Mapping[str, QueueFunction],
        call: Callable[..., Any],
        *,
        rules: QueueRules | None = None,
        prefix: str = "",
    ) -> None:
        self._service = QueueServiceClient.from_connection_string(
            connection_string, api_version=AZURITE_QUEUE_API
        )
        self._functions = dict(functions)
        self._call = call
        self.rules = rules or QueueRules.from_host_json()
        self._prefix = prefix
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- queues ---------------------------------------------------------------------------------

    def client(self, name: str) -> QueueClient:
        """The (created on first use) queue the app calls `name`."""
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._service.get_queue_client(self._prefix + name)
                try:
                    client.create_queue()
                except ResourceExistsError:
                    pass
                self._clients[name] = client
        return client

    def send(self, name: str, messages: Iterable[str]) -> None:
        """Put messages on a queue, as an output binding does."""
        queue = self.client(name)
        for message in messages:
            queue.send_message(base64.b64encode(message.encode()).decode())

    def flush(self, outs: Iterable[BindingOut]) -> None:
        """Write what a successful invocation's output bindings were set to."""
        for out in outs:
            self.send(out.queue, out.messages())

    def peek(self, name: str) -> list[str]:
        """The visible messages of a queue (decoded), without taking them (at most 32)."""
        return [_decoded(m) for m in self.client(name).peek_messages(max_messages=32)]

    def count(self, name: str) -> int:
        """How many messages a queue holds, visible or not."""
        return int(self.client(name).get_queue_properties().approximate_message_count)

    # -- delivery -------------------------------------------------------------------------------

    def deliver_once(self) -> int:
        """Deliver every message visible now on every trigger queue, once; how many."""
        delivered = 0
        for name in self._functions:
            queue = self.client(name)
            # One poll's batch, taken before any runs: a failed one that comes straight back
            # is the next pass's (the host's batchSize is 16).
            batch = list(
                queue.receive_messages(max_messages=16, visibility_timeout=PROCESSING_SECONDS)
            )
            for message in batch:
                self._deliver(name, queue, message)
                delivered += 1
        return delivered

    def drain(self, rounds: int = 20) -> int:
        """Deliver until no message is visible (failed ones with a visibility timeout of 0 come
        straight back), at most `rounds` passes; how many deliveries in all."""
        total = 0
        for _ in range(rounds):
            done = self.deliver_once()
            total += done
            if not done:
                break
        return total

    def _deliver(self, name: str, queue: QueueClient, message: QueueMessage) -> None:
        function = self._functions[name]
        count = int(message.dequeue_count or 1)
        if count > self.rules.max_dequeue_count:
            self._to_poison(name, queue, message)  # its process died on the last attempt
            return
        outs = [BindingOut(out) for out in function.outputs]
        # What the worker hands a queue trigger (func.QueueMessage says None for the count).
        trigger = TriggerMessage(
            id=message.id,
            body=_decoded(message).encode(),
            dequeue_count=count,
            pop_receipt=message.pop_receipt,
        )
        try:
            self._call(function.handler, trigger, *outs)
        except BaseException as error:  # a dying process is a failure too
            log.warning("queue %s: invocation %d failed: %s", name, count, type(error).__name__)
            if count >= self.rules.max_dequeue_count:
                self._to_poison(name, queue, message)
            else:
                queue.update_message(message, visibility_timeout=self.rules.visibility_timeout)
            return
        self.flush(outs)
        queue.delete_message(message)

    def _to_poison(self, name: str, queue: QueueClient, message: QueueMessage) -> None:
        self.client(name + POISON_SUFFIX).send_message(message.content)
        queue.delete_message(message)

    # -- background -----------------------------------------------------------------------------

    def start(self, interval: float = 0.5) -> None:
        """Deliver in a background thread, polling every `interval` seconds when idle (the
        host polls too, with back-off)."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    busy = self.deliver_once()
                except Exception as error:  # Azurite gone at shutdown, say: keep polling
                    log.warning("queue delivery failed: %s", type(error).__name__)
                    busy = 0
                if not busy:
                    self._stop.wait(interval)

        self._thread = threading.Thread(target=run, name="queue-host", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background delivery."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _decoded(message: QueueMessage) -> str:
    return base64.b64decode(str(message.content)).decode()
