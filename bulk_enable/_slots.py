"""The in-flight cap of one login: first come, first served, and it can shrink when the API says so."""

from __future__ import annotations

import asyncio
import collections
import contextlib


class Slots:
    """At most `limit` holders at once; a freed slot goes straight to the longest waiter.

    Handing the slot over (rather than letting waiters race for it) means a task that releases one
    and asks again cannot barge ahead: a condition-variable version let some counters starve for a
    whole run.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted  # a slot was counted for us before we were woken
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted, then cancelled before use: pass it on
            else:
                with contextlib.suppress(ValueError):  # already dropped by a release
                    self._waiters.remove(granted)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.used -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.used += 1
                waiter.set_result(None)

    def widen(self, limit: int) -> None:
        """Up to `limit` in flight from now on; waiters take the new slots at once."""
        self.limit = max(self.limit, limit)
        self._hand_over()

    def shrink(self) -> bool:
        """One fewer in flight from now on (never below 1); False when already at 1."""
        if self.limit <= 1:
            return False
        self.limit -= 1
        return True
