"""A run's interruption: every wait of the run wakes on the first request; the second abandons.

The CLI wires Ctrl-C, SIGTERM and SIGHUP to it; the scheduler sleeps through it, so no backoff, pause
or quota wait outlives a request to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Interrupt:
    """First `request()`: send nothing new and wake every sleeper. `abandon()`: also cancel the work."""

    def __init__(self) -> None:
        self.requested = False
        self.abandoned = False
        self._sleepers: set[asyncio.Future[None]] = set()
        self._on_abandon: list[Callable[[], object]] = []

    def request(self) -> None:
        self.requested = True
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    def abandon(self) -> None:
        self.abandoned = True
        self.request()
        for callback in self._on_abandon:
            callback()

    def on_abandon(self, callback: Callable[[], object]) -> None:
        self._on_abandon.append(callback)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or less if an interruption is requested meanwhile."""
        if self.requested or seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake, woken)
        self._sleepers.add(woken)
        try:
            await woken
        finally:
            timer.cancel()
            self._sleepers.discard(woken)


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
