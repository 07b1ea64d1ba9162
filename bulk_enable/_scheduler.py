"""Scheduling policy: how many requests, how fast, how often again, and when to stop asking.

The Metrica quotas are the boundary of a run (see the API reference):
- per login: at most `concurrency` (3) requests in flight, a daily budget (`--max-requests`), and a
  full stop on a dead token or the daily quota (`Lane`);
- per address, shared by every login of the run: an evenly spaced request rate that never bursts,
  and a common pause after a per-address quota answer (`RateGate`).
The scheduler sends whatever `send` callable it is given and knows nothing of windows or reports.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ._metrica import Answer, Verdict

log = logging.getLogger("bulk_enable")

T = TypeVar("T")
METRICA_MAX_IN_FLIGHT = 3  # per login, documented
UNREACHABLE_AFTER = 2  # counters' worth of transport failures in a row before a lane stops
DEFAULT_RPS = 29.0  # Metrica allows 30/s per address; evenly spaced 29/s never has 30 in one second


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs of a run; the defaults are Metrica's documented quotas."""

    concurrency: int = METRICA_MAX_IN_FLIGHT
    rps: float = DEFAULT_RPS  # 0: no client-side rate limit (benchmarks only)
    max_attempts: int = 6
    max_requests: int | None = None  # per account and run
    backoff_initial: float = 0.5  # seconds; tests make it tiny, as stamina's testing mode does
    backoff_max: float = 30.0
    slow_down: float = 1.0  # pause after a per-second or parallel quota answer without Retry-After
    workers_per_slot: int = 4  # counters in progress per free slot, so backoffs do not idle a slot


@dataclass(frozen=True, slots=True)
class Result:
    """How one call ended: the last answer, how many requests it took, or why it was not finished."""

    answer: Answer | None
    attempts: int
    deferred: str = ""  # non-empty: not finished today (account stopped, budget spent, interrupted)


class RateGate:
    """The per-address limit, shared by all accounts: evenly spaced requests, no burst, ever.

    Each request reserves the next slot of a fixed schedule (GCRA: slot = previous slot + 1/rps, but
    never earlier than now - interval/4). A leaky bucket of capacity 1 (aiolimiter, used before)
    restarts its interval from every late timer wake-up: measured 28.2/s at --rps 29, 3% lost. The
    schedule keeps the rate, and its quarter-interval tolerance still puts at most rps + 1 requests
    in any one second (30 at the default 29: Metrica's limit).
    """

    def __init__(self, rps: float) -> None:
        self._interval = 1 / rps if rps > 0 else 0.0
        self._tolerance = self._interval / 4
        self._next_slot = float("-inf")
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request of the run for `seconds` (a per-address quota answer came back)."""
        self._paused_until = max(self._paused_until, asyncio.get_running_loop().time() + seconds)

    async def wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            if not self._interval:
                return
            slot = max(self._next_slot, now - self._tolerance)
            self._next_slot = slot + self._interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._paused_until <= loop.time():
                return
            # a pause began while this request waited for its slot: wait it out, take a new slot


class Slots:
    """The in-flight cap of one login: first come, first served; it can shrink when the API says so.

    A freed slot is handed straight to the longest waiter, so a task that releases one and asks again
    cannot barge ahead (a condition-variable version let some counters starve for a whole run).
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
                self._waiters.remove(granted)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.used -= 1
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.used += 1
                waiter.set_result(None)

    def shrink(self) -> bool:
        """One fewer in flight from now on (never below 1); False when already at 1."""
        if self.limit <= 1:
            return False
        self.limit -= 1
        return True


class Lane:
    """One login: its in-flight slots, its request budget, and whether it has been stopped."""

    def __init__(self, name: str, policy: Policy) -> None:
        self.name = name
        self.slots = Slots(policy.concurrency)
        self.budget = policy.max_requests
        self.requests = 0
        self.stop_reason = ""
        self.unreachable = 0  # transport failures in a row, across counters
        self._paused_until = 0.0

    def stop(self, reason: str, subject: str = "") -> None:
        """Send nothing more for this login in this run; `subject` is what got the stopping answer."""
        if not self.stop_reason:
            self.stop_reason = reason
            log.warning(
                "stop %s account=%s after %d requests: %s", subject or "-", self.name, self.requests, reason
            )

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, asyncio.get_running_loop().time() + seconds)

    async def wait_pause(self) -> None:
        loop = asyncio.get_running_loop()
        while (delay := self._paused_until - loop.time()) > 0:  # noqa: ASYNC110 (the pause may grow)
            await asyncio.sleep(delay)


class _TryAgain(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error_type)
        self.answer = answer


class _NotSent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Scheduler:
    """Runs calls within the quotas: one per run, shared by all its lanes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.gate = RateGate(policy.rps)
        self.stopping = ""  # non-empty: the run is winding down (Ctrl-C); nothing new is sent

    def lane(self, name: str) -> Lane:
        return Lane(name, self.policy)

    async def call(self, lane: Lane, subject: str, send: Callable[[], Awaitable[Answer]]) -> Result:
        """Send until a final answer, retrying transient ones; `subject` names it in log lines."""
        attempts = 0
        retrying = AsyncRetrying(  # a new retrying object per call: no state shared between calls
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_TryAgain),
            before_sleep=lambda state: _log_retry(state, lane, subject, self.policy.max_attempts),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    answer = await self._send_once(lane, send)
                    attempts += 1
                    self._react(lane, answer, subject)
                    if answer.verdict in (Verdict.RETRY, Verdict.SLOW_DOWN):
                        raise _TryAgain(answer)
        except _TryAgain as gave_up:
            return Result(gave_up.answer, attempts)
        except _NotSent as not_sent:
            return Result(None, attempts, not_sent.reason)
        if answer.verdict is Verdict.STOP_ACCOUNT:
            return Result(answer, attempts, lane.stop_reason)
        return Result(answer, attempts)

    async def for_each(self, lane: Lane, items: Iterable[T], work: Callable[[T], Awaitable[None]]) -> None:
        """Run `work` over `items` with a bounded pool; stop taking items once the lane or run stops."""
        source = iter(items)

        async def worker() -> None:
            for item in source:  # shared iterator: each item goes to exactly one worker
                if lane.stop_reason or self.stopping:
                    return
                await work(item)

        n = max(1, self.policy.concurrency * self.policy.workers_per_slot)
        async with asyncio.TaskGroup() as group:
            for _ in range(n):
                group.create_task(worker())

    async def _send_once(self, lane: Lane, send: Callable[[], Awaitable[Answer]]) -> Answer:
        await lane.wait_pause()
        async with lane.slots:
            await self.gate.wait_turn()
            # Checked after every wait: a stop may have come while this request queued.
            if lane.stop_reason:
                raise _NotSent(lane.stop_reason)
            if self.stopping:
                raise _NotSent(self.stopping)
            if lane.budget is not None and lane.requests >= lane.budget:
                raise _NotSent(f"request budget spent (--max-requests {lane.budget}); rerun to continue")
            lane.requests += 1
            return await send()

    def _react(self, lane: Lane, answer: Answer, subject: str) -> None:
        """Apply what an answer says about everyone else: pause the run or the login, or stop it."""
        if answer.verdict is Verdict.SLOW_DOWN:
            pause = answer.retry_after if answer.retry_after is not None else self.policy.slow_down
            if answer.error_type == "quota_parallel_requests":
                # More in flight than the login may have (--concurrency above 3, or another tool on
                # the same login): keep one fewer in flight from now on, and wait a moment.
                if lane.slots.shrink():
                    log.warning(
                        "account=%s: parallel-request quota answered; %d in flight from now on",
                        lane.name,
                        lane.slots.limit,
                    )
                lane.pause(min(pause, 0.2))
            else:
                self.gate.pause(pause)  # per address: the whole run slows down
        elif answer.verdict is Verdict.STOP_ACCOUNT:
            lane.stop(_stop_reason(answer), subject)
        # Nothing answering at all (a wrong --api-base, no network) is not a per-counter fault:
        # stop after a few counters' worth of tries rather than fail the whole list slowly.
        lane.unreachable = lane.unreachable + 1 if answer.http_status is None else 0
        if lane.unreachable >= UNREACHABLE_AFTER * self.policy.max_attempts:
            lane.stop(
                f"cannot reach the API ({answer.message or answer.error_type}): check --api-base "
                "and the network, then rerun",
                subject,
            )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        answer = error.answer if isinstance(error, _TryAgain) else None
        if answer is not None and answer.retry_after is not None:
            return min(answer.retry_after, self.policy.backoff_max)
        if answer is not None and answer.verdict is Verdict.SLOW_DOWN:
            return self.policy.slow_down
        backoff = wait_exponential_jitter(
            multiplier=self.policy.backoff_initial,
            max=self.policy.backoff_max,
            jitter=self.policy.backoff_initial,
        )
        return float(backoff(state))


def _stop_reason(answer: Answer) -> str:
    kind = answer.error_type or f"HTTP {answer.http_status}"
    if answer.error_type.startswith("quota_"):
        return f"daily quota reached ({kind}): it resets at 00:00 GMT; rerun the same command then"
    return f"token refused ({kind}: {answer.message}); fix the token and rerun"


def _log_retry(state: RetryCallState, lane: Lane, subject: str, max_attempts: int) -> None:
    error = state.outcome.exception() if state.outcome else None
    answer = error.answer if isinstance(error, _TryAgain) else None
    why = f"{answer.http_status or '-'} {answer.error_type}" if answer else "?"
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info(
        "retry %s account=%s attempt=%d/%d wait=%.2fs after %s",
        subject,
        lane.name,
        state.attempt_number,
        max_attempts,
        wait,
        why,
    )
