"""The scheduler, measured with spy `send` callables: real concurrency, spacing, retries, stops, waits.

Every test runs on virtual time (tests/virtual_time.py): spacing and waits are read off the loop's own
clock, exactly, so a busy machine can neither stretch nor bunch them."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from bulk_enable import (
    Answer,
    Events,
    Interrupt,
    NotSent,
    NotSentReason,
    Policy,
    Scheduler,
    Sent,
    Stop,
    StopCause,
    Verdict,
)
from bulk_enable._answer import Blame
from bulk_enable._scheduler import Lane
from bulk_enable._slots import Slots

from .virtual_time import LATE, virtual_time

EPOCH = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC).timestamp()  # the tests' wall clock at loop time 0
FAST = Policy(backoff_initial=0.001, backoff_max=0.01, slow_down=0.01, rps=0.0)  # instant retries
OK = Answer(Verdict.DONE, 200)
Reply = tuple[Answer, None]


class Spy:
    """A fake API: answers from a script (or a function), records in-flight peaks and send times."""

    def __init__(
        self,
        answers: list[Answer] | None = None,
        delay: float = 0.005,
        answer: Callable[[], Answer] | None = None,
    ) -> None:
        self.answers = list(answers or [])
        self.answer = answer
        self.delay = delay
        self.in_flight = self.peak = self.calls = 0
        self.sent_at: list[float] = []
        self.alongside: list[int] = []  # requests in flight as each one was sent (itself included)

    def send(self) -> Callable[[], Awaitable[Reply]]:
        async def one() -> Reply:
            self.calls += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.alongside.append(self.in_flight)
            self.sent_at.append(now())
            try:
                await asyncio.sleep(self.delay)
                if self.answers:
                    return self.answers.pop(0), None
                return (self.answer() if self.answer else OK), None
            finally:
                self.in_flight -= 1

        return one


def now() -> float:
    """The loop's clock: the rate gate's, and the one the waits are kept on."""
    return asyncio.get_running_loop().time()


def wall() -> float:
    """Epoch seconds on the virtual clock: the scheduler's wall clock for quota resets."""
    return EPOCH + now()


class Recorder(Events):
    """Remembers every event, to assert on what the scheduler told the outside world."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def stopped(self, account: str, stop: Stop) -> None:
        self.seen.append(("stopped", stop.cause))

    def waiting(self, account: str, until: dt.datetime, stop: Stop) -> None:
        self.seen.append(("waiting", stop.cause))

    def resumed(self, account: str) -> None:
        self.seen.append(("resumed", account))

    def narrowed(self, account: str, limit: int) -> None:
        self.seen.append(("narrowed", limit))


async def run_all(
    scheduler: Scheduler, lane: Lane, n: int, spy: Spy, write: bool = False, per_counter: bool = False
) -> list[Sent[None] | NotSent]:
    results: list[Sent[None] | NotSent] = []

    async def work(i: int) -> None:
        results.append(await scheduler.call(lane, str(i), spy.send(), write=write, per_counter=per_counter))

    await scheduler.for_each(lane, range(n), work)
    return results


@pytest.mark.parametrize("concurrency", [1, 2, 3])
@virtual_time
async def test_in_flight_cap_is_reached_and_never_exceeded(concurrency: int) -> None:
    """Exactly `concurrency` requests are in flight at the busiest moment."""
    scheduler = Scheduler(replace(FAST, concurrency=concurrency))
    spy = Spy()
    await run_all(scheduler, scheduler.lane("a"), 60, spy)
    assert (spy.calls, spy.peak) == (60, concurrency)


@virtual_time
async def test_two_lanes_each_get_their_own_cap() -> None:
    """Accounts run in parallel: two lanes of 3 give 6 in flight, 3 each."""
    scheduler = Scheduler(FAST)
    spies = {name: Spy() for name in "ab"}
    await asyncio.gather(*(run_all(scheduler, scheduler.lane(n), 30, spies[n]) for n in "ab"))
    assert [s.peak for s in spies.values()] == [3, 3]


@virtual_time
async def test_accounts_on_one_login_share_its_cap_and_budget() -> None:
    """Two accounts with one token (an agency acting for two clients): 3 in flight between them, not
    3 each, and --max-requests spent once for the login, stopping both."""
    scheduler = Scheduler(replace(FAST, max_requests=7))
    spy = Spy(delay=0.01)  # one API: its peak is the login's
    lanes = [scheduler.lane(name, "login-1") for name in ("client-1", "client-2")]
    results = await asyncio.gather(*(run_all(scheduler, lane, 10, spy) for lane in lanes))
    assert spy.peak == 3 and spy.calls == 7
    assert sum(isinstance(r, Sent) for each in results for r in each) == 7
    assert [lane.stop.cause if lane.stop else None for lane in lanes] == [StopCause.BUDGET] * 2


@pytest.mark.parametrize(("small", "big", "budget"), [(3, 20, 10), (3, 7, 10), (0, 10, 10)])
@virtual_time
async def test_only_an_account_with_work_left_is_stopped_by_the_budget(
    small: int, big: int, budget: int
) -> None:
    """The login's budget stops the accounts that still had requests to send, never one that
    finished (nor one that finished on the budget's very last request)."""
    scheduler = Scheduler(replace(FAST, max_requests=budget))
    spy = Spy(delay=0.001)
    a, b = (scheduler.lane(name, "login-1") for name in ("a", "b"))
    await run_all(scheduler, a, small, spy)
    await run_all(scheduler, b, big, spy)
    assert a.stop is None and spy.calls == min(small + big, budget)
    assert (b.stop.cause if b.stop else None) == (StopCause.BUDGET if small + big > budget else None)


@virtual_time
async def test_accounts_on_different_logins_keep_their_own() -> None:
    """Without a shared login key each account has its own 3 in flight and its own budget."""
    scheduler = Scheduler(replace(FAST, max_requests=7))
    spy = Spy(delay=0.01)
    lanes = [scheduler.lane(name) for name in ("a", "b")]
    await asyncio.gather(*(run_all(scheduler, lane, 10, spy) for lane in lanes))
    assert spy.peak == 6 and spy.calls == 14


@pytest.mark.parametrize("rps", [29.0, 50.0])
@virtual_time
async def test_rate_is_kept_with_no_burst(rps: float) -> None:
    """At R a second: no burst from the very first request, never more than R + 1 in any second,
    and the rate itself is kept (not eroded by late timer wake-ups)."""
    scheduler = Scheduler(replace(FAST, rps=rps))
    spy = Spy(delay=0)
    n = int(rps * 1.5)
    await run_all(scheduler, scheduler.lane("a"), n, spy)
    sent = spy.sent_at
    # No burst at start-up: the first six take five intervals, less the quarter interval the schedule
    # tolerates (a gate that starts with a full bucket sends them at once).
    assert sent[5] - sent[0] >= 4.75 / rps
    # every timer wakes a little late (virtual_time.LATE), yet never more than R + 1 in any second...
    assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) <= rps + 1
    # ...and the rate is kept: a gate that counted each interval from its late wake-up would lose 3%
    assert (n - 1) / (sent[-1] - sent[0]) >= 0.98 * rps


@pytest.mark.parametrize(
    ("answers", "requests", "final", "gave_up"),
    [
        ([Answer(Verdict.RETRY, 503, "backend_error")] * 2, 3, Verdict.DONE, False),
        ([Answer(Verdict.NO_ANSWER, None, "connection_error")] * 9, 4, Verdict.NO_ANSWER, True),
        ([Answer(Verdict.FAILED, 403, "counter_in_connect")], 1, Verdict.FAILED, False),
        ([Answer(Verdict.DENIED, 403, "access_denied")], 1, Verdict.DENIED, False),
        (
            [Answer(Verdict.COUNTER_QUOTA, 429, "quota_requests_by_counter_id")],
            1,
            Verdict.COUNTER_QUOTA,
            False,
        ),
        # quota answers are "not so fast", not failures: they do not use up the 4 attempts
        ([Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip")] * 6, 7, Verdict.DONE, False),
        ([Answer(Verdict.SLOW_LOGIN, 420, "quota_parallel_requests")] * 5, 6, Verdict.DONE, False),
        (
            [Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip"), Answer(Verdict.RETRY, 503)] * 3,
            7,
            Verdict.DONE,
            False,
        ),
    ],
)
@virtual_time
async def test_retries_only_what_is_transient(
    answers: list[Answer], requests: int, final: Verdict, gave_up: bool
) -> None:
    """Transient answers are asked again up to max_attempts (quota answers do not count); final ones once."""
    scheduler = Scheduler(replace(FAST, max_attempts=4))
    spy = Spy(answers)
    result = await scheduler.call(scheduler.lane("a"), "c", spy.send())
    assert isinstance(result, Sent)
    assert (result.attempts, spy.calls, result.answer.verdict, result.gave_up) == (
        requests,
        requests,
        final,
        gave_up,
    )


@virtual_time
async def test_endless_quota_answers_end_the_call_without_a_failure() -> None:
    """A server that only ever answers quota: the call ends after the cap, still a quota answer."""
    scheduler = Scheduler(replace(FAST, quota_answers_cap=20))
    spy = Spy(answer=lambda: Answer(Verdict.SLOW_LOGIN, 429, "quota_parallel_requests"), delay=0)
    result = await scheduler.call(scheduler.lane("a"), "c", spy.send())
    assert isinstance(result, Sent) and result.gave_up
    assert result.answer.verdict is Verdict.SLOW_LOGIN and spy.calls == 20


@pytest.mark.parametrize(("header", "waited"), [(0.2, 0.2), (99_999.0, 0.3)])
@virtual_time
async def test_retry_after_sets_the_wait_up_to_the_cap(header: float, waited: float) -> None:
    """Retry-After is honoured, but never past the backoff cap (0.3 s here; 30 s by default)."""
    scheduler = Scheduler(replace(FAST, backoff_max=0.3))
    spy = Spy([Answer(Verdict.RETRY, 503, "backend_error", retry_after=header)], delay=0)
    await scheduler.call(scheduler.lane("a"), "c", spy.send())
    assert spy.sent_at[1] - spy.sent_at[0] == pytest.approx(waited, abs=2 * LATE)


@virtual_time
async def test_per_address_quota_pauses_every_lane() -> None:
    """A per-address quota answer on one login holds the other login's requests too."""
    scheduler = Scheduler(replace(FAST, slow_down=0.3))
    a, b = scheduler.lane("a"), scheduler.lane("b")
    quota = Spy([Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip")], delay=0)
    other = Spy(delay=0)
    started = now()
    first = asyncio.create_task(scheduler.call(a, "x", quota.send()))
    await asyncio.sleep(0.05)  # the quota answer is in; login b now asks
    await scheduler.call(b, "y", other.send())
    await first
    assert other.sent_at[0] - started >= 0.3


class AddressLimit:
    """A server allowing `per_second` requests from the address (a sliding second), like Metrica."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.window: collections.deque[float] = collections.deque()
        self.refused = 0

    def __call__(self) -> Answer:
        at = now()
        while self.window and self.window[0] <= at - 1.0:
            self.window.popleft()
        if len(self.window) >= self.per_second:
            self.refused += 1
            return Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip")
        self.window.append(at)
        return OK


@virtual_time
async def test_the_rate_adapts_to_a_smaller_address_quota() -> None:
    """Another tool shares the address and Metrica allows this run 20/s: every counter still gets done,
    the rate settles near 20, and quota answers stay a small share of the requests."""
    server = AddressLimit(20)
    scheduler = Scheduler(replace(FAST, rps=29.0, slow_down=0.1, max_attempts=2))
    spy = Spy(answer=server, delay=0.01)
    results = await run_all(scheduler, scheduler.lane("a"), 50, spy)
    assert all(isinstance(r, Sent) and r.answer.verdict is Verdict.DONE for r in results)
    settled = scheduler.gate.settled
    assert settled is not None and 14 <= settled <= 29
    assert server.refused == scheduler.gate.quota_answers <= 10


@virtual_time
async def test_dead_token_stops_the_lane_within_the_in_flight_requests() -> None:
    """After a refused token, only the requests already in flight are sent; the rest are not sent."""
    recorder = Recorder()
    scheduler = Scheduler(FAST, recorder)
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: Answer(Verdict.ACCOUNT_REFUSED, 403, "invalid_token", "Invalid oauth_token"))
    results = await run_all(scheduler, lane, 100, spy)
    assert spy.calls <= 3
    assert lane.stop is not None and lane.stop.cause is StopCause.REFUSED
    assert recorder.seen == [("stopped", StopCause.REFUSED)]
    assert all(
        isinstance(r, NotSent) and r.reason is NotSentReason.ACCOUNT_STOPPED
        for r in results
        if isinstance(r, NotSent)
    )


@virtual_time
async def test_a_spent_budget_stops_the_account_at_once() -> None:
    """--max-requests 10 over 3,000 counters: 10 requests, then nothing waits its turn at the rate."""
    scheduler = Scheduler(replace(FAST, max_requests=10, rps=29.0))
    lane = scheduler.lane("a")
    spy = Spy(delay=0)
    started = now()
    results = await run_all(scheduler, lane, 3000, spy)
    assert spy.calls == 10
    assert now() - started < 1.5  # 10 requests at 29/s, not 3,000
    assert lane.stop is not None and lane.stop.cause is StopCause.BUDGET
    assert len(results) < 100  # the rest were never picked up
    assert all(r.reason is NotSentReason.BUDGET_SPENT for r in results if isinstance(r, NotSent))


@pytest.mark.parametrize(
    ("first", "max_denied", "write", "stops"),
    [
        (None, 10, True, True),  # every write denied, none succeeded: the token cannot write
        (OK, 10, True, False),  # a write succeeded: the denials are those counters' own
        (None, 0, True, False),  # --max-denied 0: never
        (None, 10, False, False),  # reads: a denial says nothing about writing
    ],
)
@virtual_time
async def test_denied_writes_stop_an_account_that_never_wrote(
    first: Answer | None, max_denied: int, write: bool, stops: bool
) -> None:
    """Writes all access_denied with none succeeded: the account stops after about max_denied of them."""
    scheduler = Scheduler(replace(FAST, max_failures=max_denied))
    lane = scheduler.lane("a")
    denied = Answer(Verdict.DENIED, 403, "access_denied", "Access is denied")
    spy = Spy([first] if first else [], answer=lambda: denied)
    await run_all(scheduler, lane, 200, spy, write=write)
    if stops:
        assert lane.stop is not None and lane.stop.cause is StopCause.CANNOT_WRITE
        assert spy.calls <= max_denied + 2  # the ones in flight when the tenth came back
    else:
        assert lane.stop is None and spy.calls == 200


@virtual_time
async def test_answers_that_are_not_the_apis_stop_an_account_early() -> None:
    """A wrong --api-base: the first answers are bare 404s; the account stops after 3."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: Answer(Verdict.FOREIGN, 404, "http_404", "<html>Not Found</html>"))
    await run_all(scheduler, lane, 300, spy)
    assert lane.stop is not None and lane.stop.cause is StopCause.NOT_THE_API
    assert spy.calls <= 5


@virtual_time
async def test_a_foreign_answer_after_the_api_answered_fails_only_its_counter() -> None:
    """Once the API has answered, a redirect or bare 404 is that counter's problem only."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    foreign = Answer(Verdict.FOREIGN, 302, "redirect")
    spy = Spy([OK] + [foreign] * 10)
    await run_all(scheduler, lane, 50, spy)
    assert lane.stop is None and spy.calls == 50


@virtual_time
async def test_unreachable_api_stops_the_lane() -> None:
    """When nothing answers at all, the lane stops instead of failing every counter slowly."""
    scheduler = Scheduler(replace(FAST, max_attempts=3))
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: Answer(Verdict.NO_ANSWER, None, "connection_error", "Cannot connect"), delay=0)
    await run_all(scheduler, lane, 200, spy)
    assert lane.stop is not None and lane.stop.cause is StopCause.UNREACHABLE
    assert spy.calls < 30


NOT_FOUND = Answer(Verdict.FAILED, 404, "not_found", "Not found", blame=Blame.EITHER)
IN_CONNECT = Answer(Verdict.FAILED, 403, "counter_in_connect", "In Connect", blame=Blame.COUNTER)
DENIED = Answer(Verdict.DENIED, 403, "access_denied", "Access is denied", blame=Blame.COUNTER)
NOT_ALLOWED = Answer(Verdict.FAILED, 405, "invalid_parameter", "Not allowed", blame=Blame.METHOD)
PAGE_501 = Answer(Verdict.FOREIGN, 501, "http_501", "<html>501</html>", content_type="text/html")
NO_SUCCESS = Answer(Verdict.FAILED, 200, "unexpected_answer", "{}", blame=Blame.METHOD)
INVALID = Answer(Verdict.FAILED, 400, "invalid_parameter", "Invalid", blame=Blame.EITHER)
BACKEND = Answer(Verdict.RETRY, 503, "backend_error", "Internal backend error")


@pytest.mark.parametrize(
    ("write", "per_counter", "opens_with"),
    [(True, False, OK), (False, True, OK), (True, False, IN_CONNECT), (True, False, DENIED)],
)
@virtual_time
async def test_a_logins_first_per_counter_requests_go_alone(
    write: bool, per_counter: bool, opens_with: Answer
) -> None:
    """Writes (or per-counter reads) go one at a time while the answers could mean the method is
    gone; the first that shows it works (a success, or a failure naming the counter) opens the login."""
    scheduler = Scheduler(FAST)
    spy = Spy([NOT_FOUND, INVALID, NOT_FOUND, BACKEND, NOT_FOUND, opens_with], delay=0.01)
    await run_all(scheduler, scheduler.lane("a"), 60, spy, write=write, per_counter=per_counter)
    assert spy.alongside[:6] == [1] * 6 and spy.peak == 3


@virtual_time
async def test_other_calls_do_not_wait_for_the_slow_start() -> None:
    """Listing pages and other calls that are not one per counter are not held back."""
    scheduler = Scheduler(FAST)
    spy = Spy([NOT_FOUND] * 6, delay=0.01)
    await run_all(scheduler, scheduler.lane("a"), 30, spy)
    assert spy.alongside[:3] == [1, 2, 3]


@pytest.mark.parametrize(
    ("answer", "write", "cause", "calls"),
    [
        (NOT_FOUND, True, StopCause.SAME_FAILURE, 10),  # a method that is gone answers like a counter
        (INVALID, True, StopCause.SAME_FAILURE, 10),
        (NOT_FOUND, False, StopCause.SAME_FAILURE, 10),  # per-counter reads (status) alike
        (DENIED, False, StopCause.SAME_FAILURE, 12),  # a read denied is not "cannot write"
        (IN_CONNECT, True, StopCause.SAME_FAILURE, 12),  # opened: 2 more were in flight
        (NOT_ALLOWED, True, StopCause.SAME_FAILURE, 3),  # the method is to blame: 3 will do
        (NO_SUCCESS, True, StopCause.SAME_FAILURE, 3),
        (PAGE_501, True, StopCause.NOT_THE_API, 3),
        (PAGE_501, False, StopCause.NOT_THE_API, 3),
        # each gave up after 4 attempts; between one's attempts, others sent theirs
        (BACKEND, True, StopCause.SAME_FAILURE, 10 * 4 + FAST.workers),
    ],
)
@virtual_time
async def test_the_same_failure_again_and_again_stops_the_account(
    answer: Answer, write: bool, cause: StopCause, calls: int
) -> None:
    """Any failure, the same for every counter with none succeeded, stops the account after
    --max-failures of them (3 when the answers blame the method), one at a time until then."""
    scheduler = Scheduler(replace(FAST, max_attempts=4))
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: answer, delay=0.002)
    results = await run_all(scheduler, lane, 500, spy, write=write, per_counter=not write)
    assert lane.stop is not None and (lane.stop.cause, lane.stop.answer) == (cause, answer)
    assert spy.calls <= calls and lane.stop.alike in (10, 3)
    assert len(results) <= 10 + FAST.workers  # the others were never picked up


@pytest.mark.parametrize("limit", [3, 10, 25])
@virtual_time
async def test_max_failures_is_the_limit_and_zero_is_never(limit: int) -> None:
    """--max-failures N stops after N failures alike, one at a time; 0 never stops (not even a method
    that is gone)."""
    scheduler = Scheduler(replace(FAST, max_failures=limit))
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: NOT_FOUND, delay=0)
    await run_all(scheduler, lane, 200, spy, write=True)
    assert lane.stop is not None and spy.calls == limit
    never = Scheduler(replace(FAST, max_failures=0))
    method = Spy(answer=lambda: NOT_ALLOWED, delay=0)
    await run_all(never, never.lane("a"), 200, method, write=True)
    assert method.calls == 200 and never.lanes["a"].stop is None


@pytest.mark.parametrize(
    "script",
    [
        [NOT_FOUND if i % 20 == 0 else OK for i in range(400)],  # one counter in 20 deleted
        [OK] + [NOT_FOUND, INVALID, IN_CONNECT, DENIED, NOT_ALLOWED, PAGE_501] * 20,  # after a success
        [NOT_FOUND] * 9 + [OK] + [NOT_FOUND] * 50,  # 9 at the top, then one success
        [NOT_FOUND, INVALID] * 4 + [NOT_ALLOWED] * 2 + [OK] + [NOT_FOUND] * 30,  # kinds counted apart
    ],
)
@virtual_time
async def test_failures_mixed_with_a_success_never_stop_the_account(script: list[Answer]) -> None:
    """Once a write has succeeded, failures are their counters' own: every counter is sent."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    spy = Spy(list(script), delay=0)
    await run_all(scheduler, lane, len(script), spy, write=True)
    assert lane.stop is None and spy.calls == len(script)


@virtual_time
async def test_a_success_in_an_earlier_run_disarms_the_breaker() -> None:
    """A rerun of a job that has written before: its failures alike are those counters' own."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    lane.written = True  # as _jobs sets it from the report
    spy = Spy(answer=lambda: NOT_FOUND, delay=0)
    await run_all(scheduler, lane, 40, spy, write=True)
    assert lane.stop is None and spy.calls == 40


@virtual_time
async def test_cancellation_is_not_retried_or_swallowed() -> None:
    """Cancelling a call mid-request cancels it: no retry, no outcome."""
    scheduler = Scheduler(FAST)
    spy = Spy(delay=10)
    task = asyncio.create_task(scheduler.call(scheduler.lane("a"), "c", spy.send()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spy.calls == 1


@pytest.mark.parametrize("where", ["backoff", "address pause", "rate"])
@virtual_time
async def test_an_interruption_wakes_every_wait(where: str) -> None:
    """Ctrl-C during a 30 s backoff, pause or rate wait: the call ends at once, not sent again."""
    interrupt = Interrupt()
    policy = replace(FAST, backoff_max=30.0, slow_down=30.0, rps=0.05 if where == "rate" else 0.0)
    scheduler = Scheduler(policy, interrupt=interrupt)
    first = {
        "backoff": Answer(Verdict.RETRY, 503, "backend_error", retry_after=30.0),
        "address pause": Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip"),
        "rate": OK,
    }[where]
    spy = Spy([first], delay=0)
    lane = scheduler.lane("a")
    calls = [asyncio.create_task(scheduler.call(lane, str(i), spy.send())) for i in range(2)]
    await asyncio.sleep(0.2)
    started = now()
    interrupt.request()
    results = await asyncio.wait_for(asyncio.gather(*calls), 2)
    assert now() - started < 0.5
    assert any(isinstance(r, NotSent) and r.reason is NotSentReason.INTERRUPTED for r in results)


def _reset_in(seconds: float) -> dt.time:
    """The quota reset as a time of day, `seconds` from now on the virtual wall clock."""
    return dt.datetime.fromtimestamp(wall() + seconds, dt.UTC).time()


@virtual_time
async def test_until_done_waits_for_the_reset_and_goes_on() -> None:
    """The daily quota runs out: the lane waits for the reset, one probe finds it back, all get done."""
    recorder = Recorder()
    reset = wall() + 0.6
    quota = Answer(Verdict.ACCOUNT_QUOTA, 429, "quota_requests_by_uid")
    allowed = iter(range(10))

    def daily() -> Answer:  # 10 requests before the reset, then plenty
        return OK if wall() >= reset or next(allowed, None) is not None else quota

    policy = replace(FAST, until_done=True, quota_reset=_reset_in(0.6), probe_wait=0.1)
    scheduler = Scheduler(policy, recorder, clock=wall)
    lane = scheduler.lane("a")
    spy = Spy(answer=daily, delay=0.01)
    results = await run_all(scheduler, lane, 30, spy)
    assert all(isinstance(r, Sent) and r.answer.verdict is Verdict.DONE for r in results)
    assert spy.calls - 30 <= 3 + 1  # the quota answers: those in flight, and at most one probe
    assert ("waiting", StopCause.DAILY_QUOTA) in recorder.seen and ("resumed", "a") in recorder.seen
    assert lane.stop is None


@virtual_time
async def test_until_done_probes_again_when_the_reset_did_not_lift_the_quota() -> None:
    """A reset later than announced: each probe costs one request, with a growing wait between."""
    reset_late = wall() + 1.0  # the real reset comes 0.6 s after the announced one
    quota = Answer(Verdict.ACCOUNT_QUOTA, 429, "quota_requests_by_uid")
    first = [quota]
    policy = replace(FAST, until_done=True, quota_reset=_reset_in(0.4), probe_wait=0.2)
    scheduler = Scheduler(policy, clock=wall)
    spy = Spy(first, answer=lambda: OK if wall() >= reset_late else quota, delay=0)
    results = await run_all(scheduler, scheduler.lane("a"), 10, spy)
    assert all(isinstance(r, Sent) and r.answer.verdict is Verdict.DONE for r in results)
    assert spy.calls - 10 <= 1 + 6  # the first quota answer, then one probe per wait


@virtual_time
async def test_until_done_spends_the_budget_per_day() -> None:
    """With until_done, --max-requests N is N a day: the rest waits for the reset, then goes."""
    policy = replace(FAST, until_done=True, max_requests=5, quota_reset=_reset_in(0.5))
    scheduler = Scheduler(policy, clock=wall)
    spy = Spy(delay=0)
    started = now()
    results = await run_all(scheduler, scheduler.lane("a"), 8, spy)
    assert spy.calls == 8 and all(isinstance(r, Sent) for r in results)
    assert now() - started >= 0.4
    # five at once, then the day's budget is spent: the sixth goes after the reset
    assert spy.sent_at[4] - started < 0.1 and spy.sent_at[5] - started >= 0.5 - 1e-6


@virtual_time
async def test_a_waitable_stop_without_until_done_is_final() -> None:
    """Without until_done, the daily quota stops the account like any other stop."""
    scheduler = Scheduler(FAST)
    lane = scheduler.lane("a")
    spy = Spy(answer=lambda: Answer(Verdict.ACCOUNT_QUOTA, 429, "quota_requests_by_uid"))
    await run_all(scheduler, lane, 50, spy)
    assert lane.stop is not None and lane.stop.cause is StopCause.DAILY_QUOTA and spy.calls <= 3


@virtual_time
async def test_parallel_quota_narrows_the_login() -> None:
    """A parallel-quota answer: the login keeps one fewer in flight from then on (never below 1)."""
    recorder = Recorder()
    scheduler = Scheduler(FAST, recorder)
    lane = scheduler.lane("a")
    slow_login = Answer(Verdict.SLOW_LOGIN, 429, "quota_parallel_requests")
    spy = Spy([slow_login] * 4, delay=0.01)
    await run_all(scheduler, lane, 30, spy)
    assert lane.slots.limit == 1 and ("narrowed", 2) in recorder.seen and ("narrowed", 1) in recorder.seen


@virtual_time
async def test_slots_are_first_come_first_served() -> None:
    """A freed slot goes to the longest waiter, not to a task that releases and asks again."""
    slots = Slots(1)
    order: list[int] = []

    async def work(i: int) -> None:
        async with slots:
            order.append(i)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        for i in range(40):
            group.create_task(work(i))
    assert order == list(range(40))


@virtual_time
async def test_slots_survive_waiters_cancelled_while_slots_free_up() -> None:
    """Waiters cancelled in the same tick as a release: no error, no slot lost (a second Ctrl-C)."""
    slots = Slots(2)
    await slots.__aenter__()
    await slots.__aenter__()
    waiters = [asyncio.create_task(slots.__aenter__()) for _ in range(10)]
    await asyncio.sleep(0)
    await slots.__aexit__()  # hands a slot to waiters[0]...
    for w in waiters:  # ...which is cancelled in the same tick, with all the others
        w.cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await slots.__aexit__()
    assert slots.used == 0
    async with slots, slots:
        assert slots.used == 2


@virtual_time
async def test_an_address_refused_without_end_stops_the_run() -> None:
    """Per-address quota answers and nothing else, many in a row: every account stops (throttled)
    instead of spending days at the slowest rate."""
    recorder = Recorder()
    scheduler = Scheduler(replace(FAST, address_refusals_cap=12), recorder)
    a, b = scheduler.lane("a"), scheduler.lane("b")
    refuse = Answer(Verdict.SLOW_ADDRESS, 429, "quota_requests_by_ip")
    spy = Spy(answer=lambda: refuse, delay=0)
    results = await asyncio.gather(run_all(scheduler, a, 50, spy), run_all(scheduler, b, 50, spy))
    assert a.stop is not None and a.stop.cause is StopCause.THROTTLED
    assert b.stop is not None and b.stop.cause is StopCause.THROTTLED
    assert spy.calls <= 12 + 6
    assert all(isinstance(r, NotSent) or r.gave_up for rs in results for r in rs)
