"""The test suite's own rules: what `make test-fast` may run, and the virtual clock the timing tests use."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading

import pytest

from .virtual_time import LATE, VirtualTimeLoop, virtual_time


def test_an_unmarked_test_starts_no_process_and_serves_no_port() -> None:
    """A test without the `process` or `server` marker that starts one fails, naming the marker, so
    `make test-fast` (which leaves the marked ones out) stays fast."""
    with pytest.raises(AssertionError, match=r"starts a process: mark it @pytest\.mark\.process"):
        subprocess.Popen([sys.executable, "-c", "pass"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        with pytest.raises(AssertionError, match=r"serves a port: mark it @pytest\.mark\.server"):
            listener.listen()


@pytest.mark.process
def test_a_marked_test_may_start_a_process() -> None:
    """The marker lifts the rule for its test."""
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0


@virtual_time
async def test_virtual_time_jumps_waits_and_keeps_order() -> None:
    """An hour's sleep moves the loop's clock by an hour (plus LATE) without waiting for it; timers
    fire in order; work in a thread takes no virtual time unless it says it spends some."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    fired: list[str] = []
    for name, delay in (("late", 3600.0), ("early", 1.0)):
        loop.call_later(delay, fired.append, name)
    await asyncio.sleep(3600)
    assert fired == ["early", "late"] and loop.time() == pytest.approx(3600 + LATE)
    started = loop.time()
    done = threading.Event()
    await loop.run_in_executor(None, done.set)
    assert done.is_set() and loop.time() == started
    await loop.run_in_executor(None, loop.spend, 0.5)
    assert loop.time() == started + 0.5
