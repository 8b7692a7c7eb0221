"""Stopping the processes the sandboxes and tests start: nothing they started outlives them."""

from __future__ import annotations

import gc
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

from sandbox.processes import children_of, drain, stop_process, wait_for_line

# A process that ignores SIGTERM (as a devhost stuck in its shutdown would) and has started a
# child in a session of its own (as a devhost starts Azurite), whose PID it prints.
STUBBORN = """
import signal, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after the start: the child would inherit it
print(child.pid, flush=True)
signal.pause()
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def test_a_process_killed_after_its_grace_takes_its_children_with_it():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    pidfd = os.pidfd_open(child)
    try:
        assert children_of(proc.pid) == [child]
        stop_process(proc, grace=0.2)
        assert proc.returncode is not None
        # Not our child to wait for: a pidfd becomes readable when the process ends.
        ended = select.select([pidfd], [], [], 10)[0]
        assert ended and not running(child)
    finally:
        os.close(pidfd)
        if running(child):
            subprocess.run(["kill", "-9", str(child)], check=False)


# A child that leaves a grandchild holding its output open, which writes once the child is gone.
LATE_WRITER = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3); print('late', flush=True)"])
print("ready", flush=True)
"""


def test_draining_outlives_the_popen_that_started_it(monkeypatch):
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: failures.append(hook.exc_value))
    proc = subprocess.Popen(
        [sys.executable, "-c", LATE_WRITER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_for_line(proc, b"ready", 30)
    drain(proc)
    proc.wait(timeout=30)
    name = f"drain-{proc.pid}"
    (thread,) = [t for t in threading.enumerate() if t.name == name]
    del proc  # as a stopped process's Popen goes: its stream with it, unless the drain holds it
    gc.collect()
    thread.join(timeout=30)  # the grandchild's late line, then the end of its output
    assert not thread.is_alive()
    assert failures == []
