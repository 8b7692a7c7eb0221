"""Start and stop the local stand-ins (Azurite, the sandboxes) as child processes, by PID.

Used by the tests' fixtures, the benchmarks and the dev host, so all start them the same way.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"
# Azurite's documented, public development account; not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class Azurite:
    """A running Azurite table service on loopback."""

    port: int
    pid: int
    # Where a connection string names this service's endpoint.
    ENDPOINT_KEY: ClassVar[str] = "TableEndpoint"

    @property
    def endpoint(self) -> str:
        """The service's endpoint for the development account."""
        return f"http://127.0.0.1:{self.port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """A connection string for the development account."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"{self.ENDPOINT_KEY}={self.endpoint};"
        )


@dataclass(frozen=True)
class AzuriteQueue(Azurite):
    """A running Azurite queue service on loopback."""

    ENDPOINT_KEY: ClassVar[str] = "QueueEndpoint"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_line(proc: subprocess.Popen[bytes], marker: bytes, seconds: float) -> bytes:
    """Read the process's output until a line holds `marker`; return everything read so far.

    Reads the pipe's file descriptor directly: a buffered readline() would swallow lines that
    select() then never reports.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + seconds
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            at = seen.find(marker)
            if at >= 0 and b"\n" in seen[at:]:
                return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise RuntimeError(f"no {marker!r} within {seconds}s; output so far: {seen!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"process exited ({proc.wait()}) before {marker!r}: {seen!r}")
            seen += chunk


def drain(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading a child's output in the background so a full pipe never blocks it.

    The thread holds the stream itself, not only its descriptor's number, and closes it at the
    end of the output: when a stopped process's Popen was collected first, its stream's finaliser
    closed the descriptor under a read still waiting on a grandchild's end of the pipe (EBADF,
    or a read of whatever file took the number next)."""
    stream = proc.stdout
    if stream is not None:

        def read_until_closed() -> None:
            with stream:
                try:
                    while os.read(stream.fileno(), 65536):
                        pass
                except (OSError, ValueError):
                    return  # closed by its owner (a `with Popen` block ending): nothing to drain

        threading.Thread(target=read_until_closed, daemon=True, name=f"drain-{proc.pid}").start()


# Azure's front ends keep an idle connection open for minutes; Azurite's table service closes it
# after 5 s, so a pooled connection reused at that moment is closed under a request
# (RemoteDisconnected), which azure-core does not retry for a POST (a transaction, a new table).
# The queue service has no such option.
KEEP_ALIVE = {"table": ("--tableKeepAliveTimeout", "600")}


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL if it lingers `grace`
    seconds. A killed process stops nothing it started (a devhost its Azurite services, which
    run in sessions of their own), so its children are sent SIGTERM then."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        orphans = children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for pid in orphans:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (Linux: /proc; elsewhere none are found)."""
    found: list[int] = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields after it are fixed.
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


@contextmanager
def _azurite(binary: Path, service: str, ready: bytes, seconds: float) -> Iterator[tuple[int, int]]:
    """Run one Azurite service in memory on a free loopback port: (port, pid) until the block ends."""
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `make setup` (npm ci installs it)")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own pinned binary
        [
            str(binary),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--silent",
            f"--{service}Host",
            "127.0.0.1",
            f"--{service}Port",
            str(port),
            *KEEP_ALIVE.get(service, ()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_line(proc, ready, seconds)
        drain(proc)
        yield port, proc.pid
    finally:
        stop_process(proc)


@contextmanager
def azurite_table(seconds: float = STARTUP_SECONDS) -> Iterator[Azurite]:
    """Run Azurite's table service in memory on a free loopback port until the block ends."""
    with _azurite(AZURITE, "table", b"successfully started", seconds) as (port, pid):
        yield Azurite(port=port, pid=pid)


@contextmanager
def azurite_queue(seconds: float = STARTUP_SECONDS) -> Iterator[AzuriteQueue]:
    """Run Azurite's queue service in memory on a free loopback port until the block ends (the
    Functions queue bindings' stand-in: sandbox.queues delivers its messages)."""
    # The queue service says it listens where the table service says it started.
    with _azurite(AZURITE_QUEUE, "queue", b"successfully listens", seconds) as (port, pid):
        yield AzuriteQueue(port=port, pid=pid)


@contextmanager
def azurite_or(tables: str | None, queues: str | None) -> Iterator[tuple[str, str]]:
    """(tables, queues) connection strings for the block: the running services given, else
    Azurite's, started here (an Azurite service costs about 1.3 s of CPU to start)."""
    with ExitStack() as stack:
        tables = tables or stack.enter_context(azurite_table()).connection_string
        queues = queues or stack.enter_context(azurite_queue()).connection_string
        yield tables, queues


def _start_listening(
    module: str, args: tuple[str, ...], seconds: float
) -> tuple[subprocess.Popen[bytes], str, str]:
    """Run `python -m module --port 0 ARGS` until it says where it listens: (process, URL,
    everything it printed until then). Its output is drained afterwards."""
    proc = subprocess.Popen(  # noqa: S603 - our own modules, by the running interpreter
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        output = wait_for_line(proc, b"listening on", seconds).decode()
    except RuntimeError:
        stop_process(proc)
        raise
    drain(proc)
    return proc, output.split("listening on ", 1)[1].split()[0], output


def start_module(
    module: str, *args: str, seconds: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Run `python -m module --port 0 ARGS` (a sandbox) and return it with the URL it listens on."""
    proc, url, _ = _start_listening(module, args, seconds)
    return proc, url


@dataclass(frozen=True)
class RunningDevhost:
    """A devhost child process: its URL, everything it printed at start, its PID."""

    url: str
    output: str
    pid: int


@contextmanager
def devhost_process(*args: str, seconds: float = 120.0) -> Iterator[RunningDevhost]:
    """`make run`'s devhost (sandboxes, Azurite, a demo sync) in a child process on a free port,
    with extra flags `args` (`--tables` and the like: see its --help), until the block ends."""
    proc, url, output = _start_listening("sandbox.devhost", args, seconds)
    try:
        yield RunningDevhost(url, output, proc.pid)
    finally:
        stop_process(proc)
