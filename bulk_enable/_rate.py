"""The per-address rate, shared by every account of a run: evenly spaced, never a burst, adaptive.

Each request reserves the next slot of a fixed schedule (GCRA: slot = previous slot + 1/rate, but
never earlier than now - interval/4). A leaky bucket of capacity 1 (aiolimiter, used before)
restarts its interval from every late timer wake-up: measured 28.2/s at --rps 29, 3% lost. The
schedule keeps the rate, and its quarter-interval tolerance still puts at most rate + 1 requests in
any one second (30 at the default 29: Metrica's limit).

When the API answers with a per-address quota anyway (another tool shares the address), the rate
backs off multiplicatively and recovers along a cubic curve, slowly near the rate that drew the
answer and faster away from it: the AWS CLI's "adaptive" retry mode, which follows CUBIC.
"""

from __future__ import annotations

import asyncio
import collections

from ._interrupt import Interrupt

BETA = 0.7  # the rate after a quota answer, as a share of the rate that drew it
CUBIC_C = 0.4  # CUBIC's scaling constant: how fast the rate grows back (requests/s per s^3)
MIN_RATE = 0.5  # requests a second; below this a quota answer only pauses
DECREASE_EVERY = 1.0  # seconds: quota answers within this of a cut answer requests sent before it
TIMER_GRAIN = 0.001  # a slot less than this ahead is taken now: a timer cannot wait that little
_SETTLED_OVER = 5  # quota answers averaged for "the rate it settled at"


class RateGate:
    """Hands out send times for the whole run; `throttled()` when the address quota answers."""

    def __init__(self, rps: float, interrupt: Interrupt | None = None) -> None:
        self.max_rate = rps  # 0: no limit
        self._interrupt = interrupt or Interrupt()
        self._next_slot = float("-inf")
        self._paused_until = 0.0
        self._w_max = 0.0  # the rate when the last quota answer came (0: none yet)
        self._since = 0.0  # loop time of that answer
        self._k = 0.0  # CUBIC's time to climb back to _w_max
        self._sent: collections.deque[float] = collections.deque()  # send times in the last second
        self._first_sent: float | None = None
        self.quota_answers = 0
        self._pushed_back: collections.deque[float] = collections.deque(maxlen=_SETTLED_OVER)

    def rate(self, now: float | None = None) -> float:
        """The rate in force now (0: no limit)."""
        if not self._w_max:
            return self.max_rate
        now = asyncio.get_running_loop().time() if now is None else now
        grown = CUBIC_C * (now - self._since - self._k) ** 3 + self._w_max
        ceiling = self.max_rate or float("inf")
        return max(MIN_RATE, min(ceiling, grown))

    @property
    def settled(self) -> float | None:
        """Where the API pushed back, averaged over the last few quota answers (None: it never did)."""
        return sum(self._pushed_back) / len(self._pushed_back) if self._pushed_back else None

    def throttled(self, pause: float) -> None:
        """A per-address quota answer: hold every request for `pause`, then go on at a lower rate."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.quota_answers += 1
        self._paused_until = max(self._paused_until, now + pause)
        if self._w_max and now - self._since < DECREASE_EVERY:
            return  # answers to requests sent before the last decrease: one cut per congestion event
        measured = self._measured(now)
        current = self.rate(now)
        w_max = max(MIN_RATE, min(current, measured) if current and measured else current or measured)
        self._pushed_back.append(w_max)
        self._w_max, self._since = w_max, now
        self._k = (w_max * (1 - BETA) / CUBIC_C) ** (1 / 3)

    async def wait_turn(self) -> None:
        """Wait for this request's slot (returns at once when the run is interrupted)."""
        loop = asyncio.get_running_loop()
        interrupt = self._interrupt
        while not interrupt.requested:
            now = loop.time()
            if self._paused_until > now:
                await interrupt.sleep(self._paused_until - now)
                continue
            rate = self.rate(now)
            if rate:
                interval = 1 / rate
                slot = max(self._next_slot, now - interval / 4)
                self._next_slot = slot + interval
                if slot - now > TIMER_GRAIN:
                    await interrupt.sleep(slot - now)
            if self._paused_until <= loop.time():
                self._note_sent(loop.time())
                return
            # a pause began while this request waited for its slot: wait it out, take a new slot

    def _note_sent(self, now: float) -> None:
        if self._first_sent is None:
            self._first_sent = now
        self._sent.append(now)
        while self._sent and self._sent[0] <= now - 1.0:
            self._sent.popleft()

    def _measured(self, now: float) -> float:
        """Requests a second actually sent lately (over the last second, or since the first send)."""
        if self._first_sent is None:
            return 0.0
        while self._sent and self._sent[0] <= now - 1.0:
            self._sent.popleft()
        return len(self._sent) / min(1.0, max(now - self._first_sent, 0.05))
