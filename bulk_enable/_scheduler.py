"""Runs calls within the quotas: per-login slots and stops, the shared rate, retries, quota waits.

The Metrica quotas are the boundary of a run (docs/metrica-api.md):
- per login: at most `concurrency` (3) requests in flight, a budget (`max_requests`), and a stop on
  a refused token or a spent daily quota (`Lane`); with `until_done`, a spent quota or budget waits
  for the reset instead;
- per address, shared by every login of the run: an evenly spaced, adaptive rate (`RateGate`).

Whatever else goes wrong costs a handful of requests, never one per counter: a login's first
per-counter requests go one at a time until an answer shows the method works (slow start), and an
account whose per-counter calls keep ending on the same failure, none of them succeeded in this
job, stops after `max_failures` of them (`_Breaker`), after `method_failures` when the answers blame
the method or the API root rather than the counters.

The scheduler sends whatever `send` it is given, acts on the `Verdict` of each answer and hands the
caller's own value back in a typed outcome (`Sent` or `NotSent`). It knows nothing of windows,
reports or words for people: what happens is told to an `Events` object.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from ._answer import Answer, Blame, Verdict
from ._interrupt import Interrupt
from ._model import Stop, StopCause
from ._policy import Policy, next_reset
from ._rate import RateGate
from ._slots import Slots

T = TypeVar("T")
Send = Callable[[], Awaitable[tuple[Answer, T]]]
LOGIN_PAUSE = 0.2  # seconds at most a login waits after a parallel-quota answer
OPEN = 1_000_000  # the slow-start gate's width once the method has shown it works: no gate at all
RECHECK = 60.0  # seconds between looks at the clock during a quota wait (a suspended machine jumps)


class NotSentReason(enum.Enum):
    """Why a call ended without a final answer."""

    BUDGET_SPENT = "budget_spent"
    ACCOUNT_STOPPED = "account_stopped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Sent(Generic[T]):
    """A call that got its final answer (or ran out of attempts on transient ones)."""

    answer: Answer
    value: T
    attempts: int  # requests this call sent
    gave_up: bool = False  # the answer is still transient: the attempts ran out


@dataclass(frozen=True, slots=True)
class NotSent:
    """A call cut short before a final answer: the account stopped, the budget ran out, Ctrl-C."""

    reason: NotSentReason
    attempts: int = 0
    last: Answer | None = None  # the last (transient) answer before it was cut short
    stop: Stop | None = None  # the account's stop, when that is the reason


class Events:
    """What the scheduler tells the outside world; the CLI turns these into words. No-ops here."""

    def retrying(self, account: str, subject: str, attempt: int, wait: float, answer: Answer) -> None:
        """A transient answer; the call asks again after `wait` seconds."""

    def stopped(self, account: str, stop: Stop) -> None:
        """The account sends nothing more in this run."""

    def waiting(self, account: str, until: dt.datetime, stop: Stop) -> None:
        """The account waits for the quota reset at `until` (UTC), then goes on."""

    def resumed(self, account: str) -> None:
        """The account's wait is over: it sends again."""

    def narrowed(self, account: str, limit: int) -> None:
        """A parallel-quota answer: the login keeps `limit` requests in flight from now on."""


@dataclass
class _Wait:
    """An account waiting for the quota reset (`until_done`)."""

    stop: Stop
    reopens_at: float  # epoch seconds
    probe: bool  # the first request after the reset finds out whether the quota is back
    backoff: float  # next wait when a probe still finds it spent
    probing: bool = False


class CallKind(enum.Enum):
    """What a call is, for the breaker: calls alike, one per counter, share one."""

    WRITE = "write"  # a change to one counter: a success shows the token can write
    READ = "read"  # a read of one counter's state (`status`)
    OTHER = "other"  # anything else (a listing page): only answers that blame the method count


@dataclass
class _Breaker:
    """One kind of call's final failures on one account while none of them has succeeded."""

    succeeded: bool = False  # in this job: from then on, failures are the counters' own
    alike: collections.Counter[object] = field(default_factory=collections.Counter)  # by signature


class Login:
    """What Metrica counts per login, shared by every account that uses it (an agency's token with
    several `ulogin` clients): the requests in flight, the budget, a pause after the login's
    parallel-request quota answered, and the slow start of its per-counter requests."""

    def __init__(self, policy: Policy) -> None:
        self.slots = Slots(policy.concurrency)
        self.spent_today = 0  # sent since the last quota reset: the budget is per day with until_done
        self.day_ends = 0.0  # the reset that ends the day spent_today counts (epoch seconds)
        self.paused_until = 0.0
        self.alone = Slots(1)  # per-counter requests one at a time, until one shows the method works

    def pause(self, seconds: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    @property
    def opened(self) -> bool:
        return self.alone.limit >= OPEN

    def open(self) -> None:
        """The method works: every per-counter request may go, up to the login's slots."""
        self.alone.widen(OPEN)


class Lane:
    """One account: the login it sends as, what it sent, and whether it is stopped or waiting."""

    def __init__(self, name: str, login: Login) -> None:
        self.name = name
        self.login = login
        self.requests = 0  # sent in this run
        self.stop: Stop | None = None  # for good
        self.wait: _Wait | None = None  # until the quota resets
        self.unreachable = 0  # transport failures in a row, across counters
        self.breakers = {kind: _Breaker() for kind in CallKind}

    @property
    def written(self) -> bool:
        """A write succeeded in this job (this run, or an earlier one into the same report)."""
        return self.breakers[CallKind.WRITE].succeeded

    @written.setter
    def written(self, value: bool) -> None:
        self.breakers[CallKind.WRITE].succeeded = value

    @property
    def slots(self) -> Slots:
        """The login's in-flight slots (shared with the other accounts on its token)."""
        return self.login.slots


class _TryAgain(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error_type)
        self.answer = answer


class _NotSent(Exception):
    def __init__(self, reason: NotSentReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _Tally:
    """One call's count of requests, and tenacity's stop condition for it."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.requests = 0
        self.attempts = 0  # those that count against max_attempts
        self.quota_answers = 0

    def note(self, verdict: Verdict) -> None:
        if verdict.counts_as_attempt:
            self.attempts += 1
        elif verdict.transient:  # the daily quota's answers under until_done are counted by its wait
            self.quota_answers += 1

    def spent(self, state: RetryCallState | None = None) -> bool:
        return (
            self.attempts >= self.policy.max_attempts or self.quota_answers >= self.policy.quota_answers_cap
        )


class Scheduler:
    """One per run, shared by all its lanes."""

    def __init__(
        self,
        policy: Policy,
        events: Events | None = None,
        interrupt: Interrupt | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.events = events or Events()
        self.interrupt = interrupt or Interrupt()
        self.gate = RateGate(policy.rps, self.interrupt)
        self.lanes: dict[str, Lane] = {}
        self.asides: list[Lane] = []  # side questions' lanes: counted in `requests`, no account's
        self.logins: dict[str, Login] = {}
        self.retries = 0  # transient answers asked again
        self.gave_up = 0  # calls retried that got no final answer (attempts ran out, or cut short)
        self.address_refusals = 0  # per-address quota answers in a row, across the run
        self._clock = clock

    def lane(self, name: str, login: str | None = None) -> Lane:
        """The lane of account `name` (one per account and run). Accounts given the same `login` key
        (by default each its own) share its slots, budget and pauses, as Metrica counts them."""
        key = name if login is None else login
        if key not in self.logins:
            self.logins[key] = Login(self.policy)
        lane = self.lanes[name] = Lane(name, self.logins[key])
        return lane

    def aside(self, name: str, login: str) -> Lane:
        """A lane on `login`'s quotas and budget that is no account of the run: a side question
        (which client logins a token represents) whose trouble never stops or reports an account."""
        if login not in self.logins:
            self.logins[login] = Login(self.policy)
        lane = Lane(name, self.logins[login])
        self.asides.append(lane)
        return lane

    @property
    def requests(self) -> int:
        return sum(lane.requests for lane in [*self.lanes.values(), *self.asides])

    def next_reset(self, after: float | None = None) -> dt.datetime:
        """The next daily quota reset after `after` (epoch seconds; default now), in UTC."""
        now = dt.datetime.fromtimestamp(self._clock() if after is None else after, dt.UTC)
        return next_reset(self.policy.quota_reset, now)

    async def call(
        self, lane: Lane, subject: str, send: Send[T], *, write: bool = False, per_counter: bool = False
    ) -> Sent[T] | NotSent:
        """Send until a final answer, asking again on transient ones; `subject` names it in events.

        `write`: the request changes one counter, so its denials tell whether the token can write.
        `per_counter` (implied by `write`): one of many calls alike, one per counter, so the login's
        first ones go alone and the same failure again and again, with no success, stops the account.
        """
        kind = CallKind.WRITE if write else CallKind.READ if per_counter else CallKind.OTHER
        tally = _Tally(self.policy)
        last: tuple[Answer, T] | None = None
        retrying = AsyncRetrying(  # a new retrying object per call: no state shared between calls
            stop=tally.spent,
            wait=self._wait,
            sleep=self.interrupt.sleep,
            retry=retry_if_exception_type(_TryAgain),
            before_sleep=lambda state: self._retrying(state, lane, subject),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # The answer is acted on before the slow-start gate lets the next request go.
                    async with self._alone(lane, kind):
                        (answer, value), probe = await self._send_once(lane, send)
                        tally.requests += 1
                        last = (answer, value)
                        self._react(lane, answer, subject, probe)
                        again = self._ask_again(answer)
                        if again:
                            tally.note(answer.verdict)
                        if not again or tally.spent():
                            self._judge(lane, kind, answer, subject)
                    if again:
                        raise _TryAgain(answer)
        except _TryAgain:
            assert last is not None
            self.gave_up += 1
            return Sent(last[0], last[1], tally.requests, gave_up=True)
        except _NotSent as e:
            self.gave_up += tally.requests > 0
            return NotSent(e.reason, tally.requests, last[0] if last else None, lane.stop)
        assert last is not None
        return Sent(last[0], last[1], tally.requests)  # a final answer: retried or not, it came through

    async def for_each(self, lane: Lane, items: Iterable[T], work: Callable[[T], Awaitable[None]]) -> None:
        """Run `work` over `items` with a bounded pool; stop taking items once the lane or run stops."""
        source = iter(items)

        async def worker() -> None:
            for item in source:  # shared iterator: each item goes to exactly one worker
                if lane.stop is not None or self.interrupt.requested:
                    return
                await work(item)

        async with asyncio.TaskGroup() as group:
            for _ in range(self.policy.workers):
                group.create_task(worker())

    async def wait_for_reset(self) -> dt.datetime:
        """Sleep until the next quota reset (interruptible); return when it was."""
        reset = self.next_reset()
        while (left := reset.timestamp() - self._clock()) > 0 and not self.interrupt.requested:
            await self.interrupt.sleep(min(left, RECHECK))
        return reset

    # --- the machinery ------------------------------------------------------------------------

    def _ask_again(self, answer: Answer) -> bool:
        if answer.verdict.transient:
            return True
        # With until_done, a spent daily quota is a wait, not an end: the call goes on after the reset.
        return answer.verdict is Verdict.ACCOUNT_QUOTA and self.policy.until_done

    def _check(self, lane: Lane) -> None:
        """Refuse to send when the run is interrupted or the lane stopped (checked after every wait)."""
        if self.interrupt.requested:
            raise _NotSent(NotSentReason.INTERRUPTED)
        if lane.stop is not None:
            budget = lane.stop.cause is StopCause.BUDGET
            raise _NotSent(NotSentReason.BUDGET_SPENT if budget else NotSentReason.ACCOUNT_STOPPED)

    async def _admit(self, lane: Lane) -> bool:
        """Wait until the lane may send; True when this request is the probe after a quota wait."""
        loop_time = asyncio.get_running_loop().time
        while True:
            self._check(lane)
            wait = lane.wait
            if wait is None:
                while (delay := lane.login.paused_until - loop_time()) > 0 and not self.interrupt.requested:
                    await self.interrupt.sleep(delay)
                self._check(lane)
                return False
            left = wait.reopens_at - self._clock()
            if left > 0:
                await self.interrupt.sleep(min(left, RECHECK))
            elif not wait.probe:
                self._reopen(lane)
            elif wait.probing:  # another request is finding out whether the quota is back
                await self.interrupt.sleep(0.05)
            else:
                wait.probing = True
                return True

    async def _send_once(self, lane: Lane, send: Send[T]) -> tuple[tuple[Answer, T], bool]:
        """One request when the lane, its slots and the rate allow; also says whether it was a probe."""
        while True:
            probe = await self._admit(lane)
            async with lane.slots:
                await self.gate.wait_turn()
                budget = self.policy.max_requests
                if budget is not None and lane.login.spent_today >= budget and not probe:
                    # The login's budget is spent (by this account or another on the same token).
                    # Only an account with a request still to send stops or waits: one that
                    # finished on the budget's last request is done, not stopped.
                    self._budget_spent(lane)
                self._check(lane)  # a stop may have come while this request queued
                if lane.wait is not None and not (probe and lane.wait.probing):
                    continue  # so may a quota wait: back to waiting, slot given up
                lane.requests += 1
                lane.login.spent_today += 1
                return await send(), probe

    def _alone(self, lane: Lane, kind: CallKind) -> contextlib.AbstractAsyncContextManager[None]:
        """The login's slow-start gate for per-counter requests, until the method has shown it works."""
        if kind is CallKind.OTHER or lane.login.opened:
            return contextlib.nullcontext()
        return lane.login.alone

    def _react(self, lane: Lane, answer: Answer, subject: str, probe: bool) -> None:
        """Apply what an answer says about everyone else: slow down, stop or wait."""
        verdict = answer.verdict
        if probe and lane.wait is not None:
            self._probed(lane, answer)
        if verdict is Verdict.NO_ANSWER:
            lane.unreachable += 1
            if lane.unreachable >= self.policy.unreachable_after * self.policy.max_attempts:
                self.stop(lane, StopCause.UNREACHABLE, answer, subject)
            return
        lane.unreachable = 0
        self.address_refusals = self.address_refusals + 1 if verdict is Verdict.SLOW_ADDRESS else 0
        if self.address_refusals >= self.policy.address_refusals_cap:
            for each in self.lanes.values():  # the address, not a login, is used up: every account stops
                self.stop(each, StopCause.THROTTLED, answer, subject)
        elif verdict is Verdict.SLOW_ADDRESS:
            self.gate.throttled(self._pause(answer, self.policy.slow_down))
        elif verdict is Verdict.SLOW_LOGIN:
            # More in flight than the login may have (--concurrency above 3, or another tool on
            # the same login): keep one fewer in flight from now on, and wait a moment.
            if lane.slots.shrink():
                self.events.narrowed(lane.name, lane.slots.limit)
            login_pause = min(self.policy.slow_down, LOGIN_PAUSE)
            lane.login.pause(self._pause(answer, login_pause), asyncio.get_running_loop().time())
        elif verdict is Verdict.ACCOUNT_REFUSED:
            self.stop(lane, StopCause.REFUSED, answer, subject)
        elif verdict is Verdict.ACCOUNT_QUOTA:
            self._quota_spent(lane, Stop(StopCause.DAILY_QUOTA, answer, subject, lane.requests))

    def _judge(self, lane: Lane, kind: CallKind, answer: Answer, subject: str) -> None:
        """A call's final answer, for the breaker: a success disarms it for good; the same failure
        again and again, with none succeeded, stops the account before it fails every counter."""
        breaker = lane.breakers[kind]
        if answer.shows_the_method_works and kind is not CallKind.OTHER:
            lane.login.open()
        if answer.verdict is Verdict.DONE:
            breaker.succeeded = True
            return
        if breaker.succeeded or not answer.verdict.failure or not self.policy.max_failures:
            return
        method = answer.blame is Blame.METHOD
        if not method and kind is CallKind.OTHER:
            return  # one listing page failing says nothing about the next: its caller decides
        # Answers blaming the method are counted together, whatever they say: any 3 of them will do.
        key = Blame.METHOD if method else answer.signature
        breaker.alike[key] += 1
        limit = self.policy.method_failures if method else self.policy.max_failures
        if breaker.alike[key] >= limit:
            self.stop(lane, _cause(answer, kind), answer, subject, alike=breaker.alike[key])

    def _pause(self, answer: Answer, default: float) -> float:
        if answer.retry_after is not None:
            return min(answer.retry_after, self.policy.backoff_max)
        return default

    def stop(
        self,
        lane: Lane,
        cause: StopCause,
        answer: Answer | None = None,
        subject: str = "",
        alike: int = 0,
        replace: bool = False,
    ) -> Stop:
        """Stop `lane` for good (the first stop stands, unless `replace`: a better-known cause); return
        the lane's stop."""
        if lane.stop is None or replace:
            lane.stop = Stop(cause, answer, subject, lane.requests, alike)
            lane.wait = None
            self.events.stopped(lane.name, lane.stop)
        return lane.stop

    def _quota_spent(self, lane: Lane, stop: Stop) -> None:
        if lane.stop is not None or lane.wait is not None:
            return
        if not self.policy.until_done:
            self.stop(lane, stop.cause, stop.answer, stop.subject)
            return
        reset = self.next_reset()
        first = min(RECHECK, self.policy.probe_wait)
        lane.wait = _Wait(stop, reset.timestamp(), probe=stop.cause is StopCause.DAILY_QUOTA, backoff=first)
        self.events.waiting(lane.name, reset, stop)

    def _budget_spent(self, lane: Lane) -> None:
        self._quota_spent(lane, Stop(StopCause.BUDGET, None, "", lane.requests))

    def _probed(self, lane: Lane, answer: Answer) -> None:
        wait = lane.wait
        assert wait is not None
        wait.probing = False
        if answer.verdict in (Verdict.NO_ANSWER, Verdict.RETRY, Verdict.SLOW_ADDRESS):
            return  # no word on the quota: the next request probes again
        if answer.verdict is Verdict.ACCOUNT_QUOTA:
            wait.reopens_at = self._clock() + wait.backoff
            until = dt.datetime.fromtimestamp(wait.reopens_at, dt.UTC)
            wait.backoff = min(wait.backoff * 2, self.policy.probe_wait)
            self.events.waiting(lane.name, until, wait.stop)
            return
        self._reopen(lane)

    def _reopen(self, lane: Lane) -> None:
        lane.wait = None
        day_ends = self.next_reset().timestamp()
        if lane.login.day_ends != day_ends:  # the first of the login's accounts to go on: a new day
            lane.login.day_ends, lane.login.spent_today = day_ends, 0
        self.events.resumed(lane.name)

    def _wait(self, state: RetryCallState) -> float:
        answer = _answer_of(state)
        if answer is None:
            return 0.0
        if answer.retry_after is not None:
            return min(answer.retry_after, self.policy.backoff_max)
        if not answer.verdict.backs_off:
            return 0.0  # quota answers: the rate gate, the login's pause or the quota wait paces them
        backoff = wait_exponential_jitter(
            multiplier=self.policy.backoff_initial,
            max=self.policy.backoff_max,
            jitter=self.policy.backoff_initial,
        )
        return float(backoff(state))

    def _retrying(self, state: RetryCallState, lane: Lane, subject: str) -> None:
        answer = _answer_of(state)
        assert answer is not None
        if answer.verdict.backs_off:
            self.retries += 1
        wait = state.next_action.sleep if state.next_action else 0.0
        self.events.retrying(lane.name, subject, state.attempt_number, wait, answer)


def _cause(answer: Answer, kind: CallKind) -> StopCause:
    """Why the breaker stopped an account, from the answer that tripped it."""
    if answer.verdict is Verdict.FOREIGN:
        return StopCause.NOT_THE_API
    if answer.verdict is Verdict.DENIED and kind is CallKind.WRITE:
        return StopCause.CANNOT_WRITE
    if answer.verdict is Verdict.NO_ANSWER:
        return StopCause.UNREACHABLE
    return StopCause.SAME_FAILURE


def _answer_of(state: RetryCallState) -> Answer | None:
    error = state.outcome.exception() if state.outcome else None
    return error.answer if isinstance(error, _TryAgain) else None
