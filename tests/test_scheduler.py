"""The scheduler, measured with spy `send` callables: real concurrency, spacing, retries and stops."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from bulk_enable import Answer, Policy, Scheduler, Verdict

FAST = Policy(backoff_initial=0.001, backoff_max=0.01, slow_down=0.01, rps=0.0)  # instant retries
OK = Answer(Verdict.DONE, 200)


class Spy:
    """A fake API: answers from a script, records how many were in flight and when each was sent."""

    def __init__(self, answers: list[Answer] | None = None, delay: float = 0.005) -> None:
        self.answers = list(answers or [])
        self.delay = delay
        self.in_flight = self.peak = self.calls = 0
        self.sent_at: list[float] = []

    def send(self) -> Callable[[], Awaitable[Answer]]:
        async def one() -> Answer:
            self.calls += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.sent_at.append(time.monotonic())
            try:
                await asyncio.sleep(self.delay)
                return self.answers.pop(0) if self.answers else OK
            finally:
                self.in_flight -= 1

        return one


@pytest.mark.parametrize("concurrency", [1, 2, 3])
async def test_in_flight_cap_is_reached_and_never_exceeded(concurrency: int) -> None:
    """Exactly `concurrency` requests are in flight at the busiest moment."""
    scheduler = Scheduler(replace(FAST, concurrency=concurrency))
    lane, spy = scheduler.lane("a"), Spy()

    async def work(i: int) -> None:
        await scheduler.call(lane, str(i), spy.send())

    await scheduler.for_each(lane, range(60), work)
    assert spy.calls == 60
    assert spy.peak == concurrency


async def test_two_lanes_each_get_their_own_cap() -> None:
    """Accounts run in parallel: two lanes of 3 give 6 in flight, 3 each."""
    scheduler = Scheduler(FAST)
    spies = {name: Spy() for name in "ab"}

    async def run(name: str) -> None:
        lane = scheduler.lane(name)

        async def work(i: int) -> None:
            await scheduler.call(lane, str(i), spies[name].send())

        await scheduler.for_each(lane, range(30), work)

    await asyncio.gather(run("a"), run("b"))
    assert [s.peak for s in spies.values()] == [3, 3]


@pytest.mark.parametrize("rps", [29.0, 50.0])
async def test_rate_is_kept_with_no_burst(rps: float) -> None:
    """At R a second: no burst from the very first request, never more than R + 1 in any second,
    and the rate itself is kept (not eroded by late timer wake-ups)."""
    scheduler = Scheduler(replace(FAST, rps=rps))
    lane, spy = scheduler.lane("a"), Spy(delay=0)

    async def work(i: int) -> None:
        await scheduler.call(lane, str(i), spy.send())

    n = int(rps * 1.5)
    await scheduler.for_each(lane, range(n), work)
    sent = spy.sent_at
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.7 / rps  # never two at once, not even at start-up
    assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) <= rps + 1
    assert (n - 1) / (sent[-1] - sent[0]) >= 0.98 * rps


@pytest.mark.parametrize(
    ("answers", "attempts", "final"),
    [
        ([Answer(Verdict.RETRY, 503, "backend_error")] * 2, 3, Verdict.DONE),
        ([Answer(Verdict.SLOW_DOWN, 429, "quota_requests_by_ip")], 2, Verdict.DONE),
        ([Answer(Verdict.RETRY, None, "connection_error")] * 9, 4, Verdict.RETRY),
        ([Answer(Verdict.FAILED, 403, "access_denied")], 1, Verdict.FAILED),
        (
            [Answer(Verdict.DEFER_COUNTER, 429, "quota_requests_by_counter_id")],
            1,
            Verdict.DEFER_COUNTER,
        ),
    ],
)
async def test_retries_only_what_is_transient(answers: list[Answer], attempts: int, final: Verdict) -> None:
    """Transient answers are retried up to max_attempts; final ones are sent once."""
    scheduler = Scheduler(replace(FAST, max_attempts=4))
    spy = Spy(answers)
    result = await scheduler.call(scheduler.lane("a"), "c", spy.send())
    assert (result.attempts, spy.calls) == (attempts, attempts)
    assert result.answer is not None and result.answer.verdict is final


async def test_retry_after_sets_the_wait() -> None:
    """A Retry-After of 0.2 s makes the next attempt wait that long."""
    scheduler = Scheduler(FAST)
    spy = Spy([Answer(Verdict.SLOW_DOWN, 429, "quota_requests_by_ip", retry_after=0.2)], delay=0)
    await scheduler.call(scheduler.lane("a"), "c", spy.send())
    assert spy.sent_at[1] - spy.sent_at[0] >= 0.19


async def test_per_address_quota_pauses_every_lane() -> None:
    """A per-address quota answer on one login holds the other login's requests too."""
    scheduler = Scheduler(replace(FAST, slow_down=0.3))
    a, b = scheduler.lane("a"), scheduler.lane("b")
    quota = Spy([Answer(Verdict.SLOW_DOWN, 429, "quota_requests_by_ip")], delay=0)
    other = Spy(delay=0)
    started = time.monotonic()
    first = asyncio.create_task(scheduler.call(a, "x", quota.send()))
    await asyncio.sleep(0.05)  # the quota answer is in; login b now asks
    await scheduler.call(b, "y", other.send())
    await first
    assert other.sent_at[0] - started >= 0.28


async def test_dead_token_stops_the_lane_within_the_in_flight_requests() -> None:
    """After a dead-token answer, only the requests already in flight are sent; the rest are deferred."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    spy = Spy([Answer(Verdict.STOP_ACCOUNT, 403, "invalid_token", "Invalid oauth_token")] * 100)
    results = []

    async def work(i: int) -> None:
        results.append(await scheduler.call(lane, str(i), spy.send()))

    await scheduler.for_each(lane, range(100), work)
    assert spy.calls <= 3
    assert "token refused (invalid_token" in lane.stop_reason
    assert all(r.deferred for r in results)


async def test_request_budget_is_a_hard_cap() -> None:
    """--max-requests N: the lane sends N requests, retries included, then defers."""
    scheduler = Scheduler(replace(FAST, max_requests=5))
    lane = scheduler.lane("a")
    spy = Spy([Answer(Verdict.RETRY, 503, "backend_error")] * 2)
    results = []

    async def work(i: int) -> None:
        results.append(await scheduler.call(lane, str(i), spy.send()))

    await scheduler.for_each(lane, range(10), work)
    assert spy.calls == 5
    assert any("--max-requests 5" in r.deferred for r in results)


async def test_cancellation_is_not_retried_or_swallowed() -> None:
    """Cancelling a call mid-request cancels it: no retry, no Result."""
    scheduler = Scheduler(FAST)
    spy = Spy(delay=10)
    task = asyncio.create_task(scheduler.call(scheduler.lane("a"), "c", spy.send()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spy.calls == 1


async def test_unreachable_api_stops_the_lane() -> None:
    """When nothing answers at all, the lane stops instead of failing every counter slowly."""
    scheduler = Scheduler(replace(FAST, max_attempts=3))
    lane = scheduler.lane("a")
    spy = Spy([Answer(Verdict.RETRY, None, "connection_error", "Cannot connect")] * 1000, delay=0)

    async def work(i: int) -> None:
        await scheduler.call(lane, str(i), spy.send())

    await scheduler.for_each(lane, range(200), work)
    assert "cannot reach the API" in lane.stop_reason
    assert spy.calls < 30


async def test_slots_are_first_come_first_served() -> None:
    """A freed slot goes to the longest waiter, not to a task that releases and asks again."""
    scheduler = Scheduler(replace(FAST, concurrency=1))
    lane = scheduler.lane("a")
    order: list[int] = []

    async def work(i: int) -> None:
        async with lane.slots:
            order.append(i)
            await asyncio.sleep(0)

    await scheduler.for_each(lane, range(40), work)
    assert order == list(range(40))


async def test_slots_shrink_and_survive_cancellation() -> None:
    """After shrink() one fewer runs at once; a waiter cancelled in the queue takes no slot with it."""
    scheduler = Scheduler(FAST)
    lane, spy = scheduler.lane("a"), Spy(delay=0.01)
    assert lane.slots.shrink()
    waiter = asyncio.create_task(lane.slots.__aenter__())
    for _ in range(2):
        await lane.slots.__aenter__()
    await asyncio.sleep(0)
    waiter.cancel()
    for _ in range(2):
        await lane.slots.__aexit__()

    async def work(i: int) -> None:
        await scheduler.call(lane, str(i), spy.send())

    await scheduler.for_each(lane, range(30), work)
    assert spy.peak == 2 and lane.slots.used == 0
