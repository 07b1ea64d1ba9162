"""The jobs the CLI runs: `run` (change the window), `check` (plan only) and `status` (read each
counter's real window state). Listing what a token sees (`counters`) is in `_portfolio`.

Each takes validated settings and returns plain data (a `Summary`); nothing here parses arguments
or prints. Progress and events go to the `JobEvents` the caller gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from . import _messages as say
from ._answer import Answer, Blame, Verdict
from ._config import Account, Config
from ._interrupt import Interrupt
from ._metrica import MetricaClient, open_session
from ._model import Command, Counter, Job, Row, Status, Stop, StopCause, Summary, Window, held_back
from ._plan import EDITABLE, Listing, plan_rows, read_listing, state_unknown
from ._policy import Policy
from ._portfolio import counter_label, refused, ulogin_problem
from ._report import ReportError, ReportFile, RunJournal, pending_row
from ._scheduler import Events, Lane, NotSent, Scheduler, Sent
from ._untrusted import Scrubber

FULL_DAYS = say.FULL_DAYS
METRICA_BEGAN = dt.date(2008, 1, 1)  # a window said to start earlier is not a real answer


class JobEvents(Events):
    """The scheduler's events plus a job's progress; the CLI overrides what it shows."""

    def started(self, total: int) -> None:
        """`total` counters are about to be sent (or read)."""

    def planned(self, todo: Mapping[str, int], logins: Mapping[str, str], policy: Policy) -> None:
        """Before the first request: each account's counters to send and its login's key (accounts on
        one token share one login's daily quota), and the policy (its budget, its quota reset)."""

    def finished(self, row: Row) -> None:
        """One counter is done with, and on disk."""

    def trouble(self, counter: Counter, text: str) -> None:
        """Handling one counter raised (`text`, scrubbed, says what); it is failed and the run goes on."""

    def report_failing(self, error: ReportError) -> None:
        """The report on disk keeps failing to be re-rendered; it is tried again each tick (said once)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a job needs, already validated."""

    config: Config
    tokens: Mapping[str, str]  # account name -> token
    report: Path
    api_base: str
    job: Job = field(default_factory=Job)
    policy: Policy = field(default_factory=Policy)
    delimiter: str = ","
    fresh: bool = False
    preflight: bool = False
    retry_failed: bool = False  # send the counters that failed for good in earlier runs too
    # status: the journals of the runs that enable and that disable this window (None: no such run), to
    # read a short window in their light: refused for good, enabled days ago, disabled since, not sent
    enabling: RunJournal | None = None
    disabling: RunJournal | None = None
    events: JobEvents = field(default_factory=JobEvents)
    interrupt: Interrupt = field(default_factory=Interrupt)


class _Run:
    """One job's shared state: the scheduler, the session, the report, the scrubber."""

    def __init__(self, settings: Settings, report: ReportFile) -> None:
        self.settings = settings
        self.report = report
        self.scheduler = Scheduler(settings.policy, settings.events, settings.interrupt)
        self.scrubber = Scrubber(settings.tokens.values())
        tokens = list(dict.fromkeys(settings.tokens.values()))
        # account -> its login's key: the token's place among the run's tokens, never the secret
        self.logins = {name: f"login-{tokens.index(t) + 1}" for name, t in settings.tokens.items()}
        self.recorded: set[int] = set()  # counters with a row from this run
        self.state_unknown = False  # a plan was made without seeing the window's state
        self.counter_quota = False  # some counter's own daily quota is spent: it waits for the reset
        self.failure: ReportError | None = None  # the report could not be written: raised at the end
        self._ulogin_checks: dict[str, asyncio.Future[Stop | None]] = {}  # account -> its one check
        self.listed: list[Counter] | None = None  # what `counters: all` accounts listed (None: none)

    def lane(self, account: Account) -> Lane:
        """The account's lane; accounts with the same token share one login's quotas and budget."""
        lane = self.scheduler.lanes.get(account.name)  # made already when its counters were listed
        return lane if lane is not None else self.scheduler.lane(account.name, self.logins[account.name])

    def client(self, session: ClientSession, account: Account) -> MetricaClient:
        s = self.settings
        return MetricaClient(session, s.api_base, s.tokens[account.name], account.ulogin, self.scrubber)

    async def ulogin_stop(
        self, session: ClientSession, account: Account, answer: Answer | None
    ) -> Stop | None:
        """After a refusal to a client account, while none of its writes has succeeded: when its
        `ulogin` is not a login the token represents, the account stops saying so, instead of the
        token being blamed. `GET /accounts` is asked once per account and run, only then."""
        lane = self.scheduler.lanes[account.name]
        if account.ulogin is None or lane.written or not refused(answer):
            return None
        check = self._ulogin_checks.get(account.name)
        if check is None:
            check = asyncio.ensure_future(self._check_ulogin(session, account, account.ulogin))
            self._ulogin_checks[account.name] = check
        return await asyncio.shield(check)

    async def _check_ulogin(self, session: ClientSession, account: Account, ulogin: str) -> Stop | None:
        s = self.settings
        client = MetricaClient(session, s.api_base, s.tokens[account.name], None, self.scrubber)
        problem = await ulogin_problem(self.scheduler, self.logins[account.name], client, ulogin)
        if problem is None:
            return None
        lane = self.scheduler.lanes[account.name]
        return self.scheduler.stop(lane, StopCause.WRONG_ULOGIN, problem, "ulogin", replace=True)

    async def listing(
        self, session: ClientSession, account: Account, lane: Lane, wanted: set[int] | None
    ) -> Listing:
        """The account's listing; one refused for a ulogin the token does not represent says so."""
        listing = await read_listing(self.scheduler, lane, self.client(session, account), wanted)
        if listing.stop is not None:
            better = await self.ulogin_stop(session, account, listing.stop.answer)
            if better is not None:
                return Listing(listing.counters, listing.requests, better)
        return listing

    def record(self, row: Row) -> None:
        self.recorded.add(row.counter_id)
        try:
            self.report.record(row)
        except ReportError as e:  # the journal cannot be written (a full disk): stop sending, say why
            if self.failure is None:
                self.failure = e
                self.settings.interrupt.request()  # send nothing more: it could not be recorded
        self.settings.events.finished(row)

    async def each(
        self, lane: Lane, counters: Sequence[Counter], one: Callable[[Counter], Awaitable[Row]]
    ) -> None:
        """`one` for every counter under the lane's quotas; a counter that raises is failed, not fatal."""

        async def work(counter: Counter) -> None:
            try:
                row = await one(counter)
            except Exception as e:  # one bad answer never ends a run
                text = self.scrubber.clean(f"{type(e).__name__}: {e}")
                self.settings.events.trouble(counter, text)
                row = Row.of(counter, Status.FAILED, error_type="internal_error", message=text)
            self.record(row)

        await self.scheduler.for_each(lane, counters, work)

    async def settled(self, work: Coroutine[Any, Any, None], account: Account) -> None:
        """`work` for one account; once it is over, failures its stop took back (the token's or the
        method's, not the counters') reach the journal at once, not when the last account ends: a
        kill -9 meanwhile must not leave them as failures for good, held back from every rerun."""
        await work
        if _defer_the_rest(self, account.counters) and self.report.journaled:
            try:
                self.report.compact()
            except ReportError as e:  # as in record(): stop sending, say why
                if self.failure is None:
                    self.failure = e
                    self.settings.interrupt.request()

    async def drive(self, work: Callable[[ClientSession, Account], Coroutine[Any, Any, None]]) -> list[Row]:
        """`work(session, account)` for every account side by side, on one session, the report kept
        current; whatever happens, the rest is deferred and the report written. The config's rows."""
        settings, counters = self.settings, self.settings.config.counters
        try:
            async with (
                _rendering(self.report, settings.events),
                open_session(settings.policy.timeout, _connections(settings)) as session,
            ):
                accounts = (
                    self.settled(work(session, account), account) for account in settings.config.accounts
                )
                await _abandonable(settings.interrupt, _gather(accounts))
        finally:
            _defer_the_rest(self, counters)
            try:
                self.report.finish()
            except ReportError as e:  # the journal keeps what it has: a rerun goes on from it
                self.failure = self.failure or e
        return [self.report.rows[c.id] for c in counters]

    def summary(self, command: Command, rows: list[Row], started: float) -> Summary:
        scheduler = self.scheduler
        stops = {name: lane.stop for name, lane in scheduler.lanes.items() if lane.stop is not None}
        quota_stop = any(stop.cause is StopCause.DAILY_QUOTA for stop in stops.values())
        return Summary(
            command=command,
            report=self.report.path,
            rows=rows,
            elapsed=time.monotonic() - started,
            requests=scheduler.requests,
            stops=stops,
            interrupted=self.settings.interrupt.requested and self.failure is None,
            report_error=str(self.failure) if self.failure is not None else "",
            report_written=self.report.written,
            retries=scheduler.retries,
            gave_up=scheduler.gave_up,
            rate=scheduler.gate.settled,
            address_quota_answers=scheduler.gate.quota_answers,
            listed=len(self.listed) if self.listed is not None else None,
            deferred_until=scheduler.next_reset() if (quota_stop or self.counter_quota) else None,
            bare=frozenset(
                a.name
                for a in self.settings.config.accounts
                if a.ulogin is None and a.token_env is None and a.token_file is None
            ),
            acting=frozenset(a.name for a in self.settings.config.accounts if a.ulogin is not None),
            logins=dict(self.logins),
        )


async def _abandonable(interrupt: Interrupt, work: Awaitable[None]) -> None:
    """Await `work`; a second interruption cancels it, and then this returns instead of raising."""
    task = asyncio.ensure_future(work)
    interrupt.on_abandon(task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not interrupt.abandoned or (current is not None and current.cancelling()):
            raise


@contextlib.asynccontextmanager
async def _rendering(report: ReportFile, events: JobEvents) -> AsyncIterator[None]:
    """Keep the report on disk current while the block runs (a failed render is tried again)."""
    task = asyncio.create_task(report.keep_current(events.report_failing))
    try:
        yield
    finally:
        task.cancel()
        (ended,) = await asyncio.gather(task, return_exceptions=True)  # its own cancellation, not ours
        if isinstance(ended, Exception):  # not a CancelledError: a bug, never swallowed
            raise ended


# --- run ---------------------------------------------------------------------------------------------


async def run_job(settings: Settings) -> Summary:
    """Change the window on every counter not already done; the report is written whatever happens."""
    started = time.monotonic()
    job = settings.job
    with ReportFile(
        settings.report, Command.RUN, job, delimiter=settings.delimiter, fresh=settings.fresh
    ) as report:
        run = _Run(settings, report)
        settings = await _every_counter(run)
        config = settings.config
        report.begin(config.counters, pending_row(say.PENDING))
        # Failures for good wait for a human: only --retry-failed sends them again.
        held = (
            set() if settings.retry_failed else {c.id for c in config.counters if report.failed_for_good(c)}
        )
        todo = {
            a.name: _rerun_order(
                [c for c in a.counters if not report.done(c.id) and c.id not in held], report
            )
            for a in config.accounts
        }
        settings.events.started(sum(len(t) for t in todo.values()))
        settings.events.planned({a: len(t) for a, t in todo.items()}, run.logins, settings.policy)
        rows = await run.drive(
            lambda session, account: _run_account(run, session, account, todo[account.name])
        )
        summary = run.summary(Command.RUN, rows, started)
        summary.skipped = sum(1 for c in config.counters if report.done(c.id))
        summary.held, summary.elsewhere = len(held), report.elsewhere
        summary.state_unknown = run.state_unknown
        if report.previous and run.listed is not None:  # a rerun: what `counters: all` newly found
            summary.new = [c.id for c in run.listed if c.id not in report.previous]
    return summary


async def _every_counter(run: _Run) -> Settings:
    """The settings with each `counters: all` account's editable counters, listed now (own and edit,
    less its `exclude:`). A counter named elsewhere in the config, or listed by an earlier account,
    stays there. An account whose listing fails is stopped and has no counters this time."""
    settings = run.settings
    config = settings.config
    every = [a for a in config.accounts if a.every]
    if not every:
        return settings
    listings: dict[str, Listing] = {}

    async def list_one(session: ClientSession, account: Account) -> None:
        listings[account.name] = await run.listing(session, account, run.lane(account), None)

    async with open_session(settings.policy.timeout, _connections(settings)) as session:
        await _abandonable(settings.interrupt, _gather(list_one(session, a) for a in every))
    taken = {c.id for c in config.counters}
    accounts, run.listed = [], []
    for account in config.accounts:
        listing = listings.get(account.name)
        if listing is not None and listing.stop is None:
            found = [
                Counter(info.id, counter_label(info), account.name)
                for info in listing.counters.values()
                if (not info.permission or info.permission in EDITABLE)
                and info.id not in taken
                and info.id not in account.exclude
            ]
            taken.update(c.id for c in found)
            run.listed.extend(found)
            account = dataclasses.replace(account, counters=tuple(found))
        accounts.append(account)
    run.settings = dataclasses.replace(settings, config=dataclasses.replace(config, accounts=tuple(accounts)))
    return run.settings


def _rerun_order(todo: list[Counter], report: ReportFile) -> list[Counter]:
    """Counters never tried go first, those tried before (failed, or cut short) go last: a rerun after
    a stop on failures alike (denied writes, a method that answers the same for every counter) tries
    new counters, so it never stalls on the same first ones."""
    tried = {
        c.id
        for c in todo
        if (r := report.previous.get(c.id)) is not None and (r.status is Status.FAILED or r.attempts > 0)
    }
    if not tried:
        return todo
    return [c for c in todo if c.id not in tried] + [c for c in todo if c.id in tried]


async def _gather(works: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the accounts side by side; the first error cancels the rest (and is raised)."""
    async with asyncio.TaskGroup() as group:
        for work in works:
            group.create_task(work)


async def _run_account(run: _Run, session: ClientSession, account: Account, todo: list[Counter]) -> None:
    settings, job, scheduler = run.settings, run.settings.job, run.scheduler
    lane = run.lane(account)
    lane.written = any(
        r.account == account.name and r.status is job.changed for r in run.report.previous.values()
    )
    client = run.client(session, account)
    if settings.preflight and todo:
        listing = await run.listing(session, account, lane, {c.id for c in todo})
        if listing.stop is not None or listing.interrupted:
            return
        plan = plan_rows(todo, listing, job, account.ulogin)
        run.state_unknown = run.state_unknown or state_unknown(plan, listing, job)
        for row in plan:
            if row.status is not job.would:
                run.record(row)
        sendable = {r.counter_id for r in plan if r.status is job.would}
        todo = [c for c in todo if c.id in sendable]

    tomorrow: list[Counter] = []

    async def switch(counter: Counter) -> Row:
        send = functools.partial(client.switch_window, counter.id, job.window, job.enable)
        if settings.preflight:
            send = functools.partial(_listed, send)
        outcome = await scheduler.call(lane, f"counter={counter.id}", send, write=True)
        if isinstance(outcome, Sent) and (stop := await run.ulogin_stop(session, account, outcome.answer)):
            return _stopped_row(counter, outcome, stop)
        row = _run_row(run, counter, outcome)
        if (
            settings.policy.until_done
            and isinstance(outcome, Sent)
            and outcome.answer.verdict is Verdict.COUNTER_QUOTA
        ):
            tomorrow.append(counter)
        return row

    await run.each(lane, todo, switch)
    # With --until-done, counters whose own daily quota ran out go again after each reset.
    while tomorrow and lane.stop is None and not settings.interrupt.requested:
        await scheduler.wait_for_reset()
        again, tomorrow[:] = list(tomorrow), []
        await run.each(lane, again, switch)


def _stopped_row(counter: Counter, outcome: Sent[Any], stop: Stop) -> Row:
    """A counter whose answer stopped its account (a wrong ulogin): deferred, with the stop's reason."""
    return Row.of(
        counter,
        Status.DEFERRED,
        attempts=outcome.attempts,
        http_status=outcome.answer.http_status,
        error_type=stop.answer.error_type if stop.answer is not None else "",
        message=say.deferred_message(stop),
    )


async def _listed(send: Callable[[], Awaitable[tuple[Answer, None]]]) -> tuple[Answer, None]:
    """`send` for a counter the listing shows: an answer that blames the counter or a method that is
    gone (not_found) can only mean the method."""
    answer, value = await send()
    if answer.blame is Blame.EITHER:
        answer = dataclasses.replace(answer, blame=Blame.METHOD)
    return answer, value


def _run_row(run: _Run, counter: Counter, outcome: Sent[Any] | NotSent) -> Row:
    """The report row for one counter's outcome."""
    policy = run.settings.policy
    if isinstance(outcome, NotSent):
        last = outcome.last
        return Row.of(
            counter,
            Status.DEFERRED,
            attempts=outcome.attempts,
            http_status=last.http_status if last else None,
            error_type=last.error_type if last else _stop_error(outcome.stop),
            message=say.deferred_message(outcome.stop, policy.max_requests, outcome.attempts),
        )
    answer = outcome.answer
    common: dict[str, object] = {
        "attempts": outcome.attempts,
        "http_status": answer.http_status,
        "error_type": answer.error_type,
    }
    verdict = answer.verdict
    if verdict is Verdict.DONE:
        return Row.of(counter, run.settings.job.changed, **common)
    if verdict is Verdict.COUNTER_QUOTA:
        run.counter_quota = True
        reset = run.scheduler.next_reset()
        return Row.of(counter, Status.DEFERRED, message=say.counter_quota_message(answer, reset), **common)
    if verdict in (Verdict.ACCOUNT_QUOTA, Verdict.ACCOUNT_REFUSED):
        lane = run.scheduler.lanes[counter.account]
        return Row.of(counter, Status.DEFERRED, message=say.deferred_message(lane.stop), **common)
    if verdict in (Verdict.SLOW_ADDRESS, Verdict.SLOW_LOGIN):
        return Row.of(counter, Status.DEFERRED, message=say.kept_slowing_message(answer), **common)
    if outcome.gave_up:
        return Row.of(counter, Status.FAILED, message=say.gave_up_message(outcome.attempts, answer), **common)
    return Row.of(counter, Status.FAILED, message=answer.message, final=answer.refusal, **common)


def _defer_the_rest(run: _Run, counters: Sequence[Counter]) -> bool:
    """Counters this run never finished, and not done before: `deferred`, with their account's reason
    (an earlier answer stands, though). And the failures of an account that stopped because of its
    token or its server, not of its counters, go back to `deferred` too: they are not the counters'.
    True when it took such failures back (the journal still has them as failures until compacted)."""
    report, lanes = run.report, run.scheduler.lanes
    took_back = False
    for c in counters:
        if report.done(c.id):
            continue
        lane = lanes.get(c.account)
        stop = lane.stop if lane is not None else None
        message = say.deferred_message(stop, run.settings.policy.max_requests)
        if c.id in run.recorded:
            row = report.rows[c.id]
            if stop is not None and _not_the_counters(stop, row):
                report.amend(dataclasses.replace(row, status=Status.DEFERRED, message=message))
                took_back = True
            continue
        report.amend(
            report.standing(Row.of(c, Status.DEFERRED, error_type=_stop_error(stop), message=message))
        )
    return took_back


def _stop_error(stop: Stop | None) -> str:
    """The error type of the answer that stopped an account, for its counters left undone."""
    return stop.answer.error_type if stop is not None and stop.answer is not None else ""


def _not_the_counters(stop: Stop, row: Row) -> bool:
    """A failure that tells of the account's token, server or method, not of the counter: one alike
    to the answers that stopped the account (none succeeded: denied writes, a method that answers the
    same for every counter), or any answer of a server that turned out not to be the API. Not a
    failure for good: a rerun sends it again once that is fixed (the counters not tried go first)."""
    if row.status is not Status.FAILED:
        return False
    if stop.cause is StopCause.NOT_THE_API:
        return True
    alike = stop.answer is not None and row.error_type == stop.answer.error_type
    return stop.cause in (StopCause.CANNOT_WRITE, StopCause.SAME_FAILURE) and alike


def _connections(settings: Settings) -> int:
    return settings.policy.concurrency * len(settings.config.accounts) + 2


# --- check -------------------------------------------------------------------------------------------


async def check_job(settings: Settings) -> Summary:
    """Make the plan from each account's listing and write it as the report; never writes to the API."""
    started = time.monotonic()
    with ReportFile(
        settings.report, Command.CHECK, settings.job, delimiter=settings.delimiter, journaled=False
    ) as report:
        run = _Run(settings, report)
        settings = await _every_counter(run)
        config = settings.config
        rows: dict[int, Row] = {}
        unknown = False

        async def plan_account(session: ClientSession, account: Account) -> None:
            nonlocal unknown
            if not account.counters:  # all its IDs are listed under an earlier account
                return
            lane = run.lane(account)
            listing = await run.listing(session, account, lane, {c.id for c in account.counters})
            if listing.stop is not None or listing.interrupted:
                stop = listing.stop
                for c in account.counters:
                    rows[c.id] = Row.of(
                        c, Status.DEFERRED, error_type=_stop_error(stop), message=say.deferred_message(stop)
                    )
                return
            planned = plan_rows(account.counters, listing, settings.job, account.ulogin)
            unknown = unknown or state_unknown(planned, listing, settings.job)
            for r in planned:  # a counter the config leaves unlabelled: its name in Metrica, to check by
                info = listing.counters.get(r.counter_id)
                rows[r.counter_id] = (
                    dataclasses.replace(r, label=counter_label(info)) if info and not r.label else r
                )

        try:
            async with open_session(settings.policy.timeout, _connections(settings)) as session:
                await _abandonable(
                    settings.interrupt, _gather(plan_account(session, a) for a in config.accounts)
                )
        finally:
            final = [
                rows.get(c.id) or Row.of(c, Status.DEFERRED, message=say.INTERRUPTED) for c in config.counters
            ]
            report.show(final)
            report.finish()
        summary = run.summary(Command.CHECK, final, started)
        summary.state_unknown = unknown
    return summary


# --- status ------------------------------------------------------------------------------------------


async def status_job(settings: Settings, today: dt.date | None = None) -> Summary:
    """Read each counter's real window state (one read each); never writes to the API."""
    started = time.monotonic()
    window = settings.job.window
    day = today or dt.datetime.now(dt.UTC).date()
    with ReportFile(
        settings.report, Command.STATUS, settings.job, delimiter=settings.delimiter, fresh=True
    ) as report:
        run = _Run(settings, report)
        settings = await _every_counter(run)
        config = settings.config
        report.begin(config.counters, pending_row(say.PENDING))
        settings.events.started(len(config.counters))
        todo = {a.name: len(a.counters) for a in config.accounts}
        settings.events.planned(todo, run.logins, settings.policy)
        enabled: dict[int, int] = {}  # short counters the run enabled -> whole days since
        disabled: set[int] = set()  # short counters a later run disabled

        async def read_account(session: ClientSession, account: Account) -> None:
            lane = run.lane(account)
            client = run.client(session, account)

            async def read(counter: Counter) -> Row:
                send = functools.partial(client.read_window_since, counter.id, window)
                outcome = await run.scheduler.call(lane, f"counter={counter.id}", send, per_counter=True)
                if isinstance(outcome, Sent) and (
                    stop := await run.ulogin_stop(session, account, outcome.answer)
                ):
                    return _stopped_row(counter, outcome, stop)
                if isinstance(outcome, Sent) and outcome.answer.verdict is Verdict.DONE and outcome.value:
                    since = outcome.value
                    odd = (
                        "in the future"
                        if since > day + dt.timedelta(days=1)  # a day's slack for time zones
                        else "before Metrica existed"
                        if since < METRICA_BEGAN
                        else ""
                    )
                    if odd:
                        return Row.of(
                            counter,
                            Status.FAILED,
                            attempts=outcome.attempts,
                            http_status=outcome.answer.http_status,
                            error_type="unexpected_answer",
                            message=f"the API says the window starts on {since}, {odd}",
                            final=True,
                        )
                    row = state_row(counter, since, day, outcome.attempts, window)
                    if row.status is Status.SHORT:
                        return _short_in_light_of_the_runs(run, row, counter, day, enabled, disabled)
                    return row
                return _run_row(run, counter, outcome)

            await run.each(lane, account.counters, read)

        rows = await run.drive(read_account)
    summary = run.summary(Command.STATUS, rows, started)
    summary.enabled_days_ago = enabled if settings.enabling is not None else None
    summary.disabled_by_run = frozenset(disabled)
    return summary


def _short_in_light_of_the_runs(
    run: _Run, row: Row, counter: Counter, today: dt.date, enabled: dict[int, int], disabled: set[int]
) -> Row:
    """A short window, read with the job's run journals: disabled by a later run (what it asked, noted
    in `disabled`); refused for good under this account (its cause, cleaned again: the journal is a
    file on disk; `final` keeps it out of the advice to send it again); enabled (by ID, as a rerun
    skips it: the days since, noted in `enabled`); else as it is: not enabled yet."""
    settings, window = run.settings, run.settings.job.window
    enabling, disabling = settings.enabling, settings.disabling
    earlier = enabling.rows.get(counter.id) if enabling else None
    off = disabling.rows.get(counter.id) if disabling else None
    if (
        disabling
        and off
        and off.status in Job(window, enable=False).done_statuses
        and (earlier is None or off.at > earlier.at)
    ):
        disabled.add(counter.id)
        return dataclasses.replace(row, message=say.disabled_short_message(disabling.report.name, off.at))
    if enabling is None or earlier is None:
        return row
    name = enabling.report.name
    if held_back(earlier, counter):
        cause = earlier.error_type or earlier.status.value  # read_only and not_found have no error type
        message = say.refused_short_message(name, cause, run.scrubber.clean(earlier.message))
        return dataclasses.replace(row, error_type=cause, message=message, final=True)
    if earlier.status not in Job(window).done_statuses:
        return row
    on = _day_of(earlier.at, today)
    enabled[counter.id] = max(0, (today - on).days) if on else say.STALE_DAYS
    already = earlier.status is Status.ALREADY_ENABLED
    return dataclasses.replace(
        row, message=say.enabled_short_message(name, on, enabled[counter.id], already=already)
    )


def _day_of(at: str, today: dt.date) -> dt.date | None:
    """The UTC day of a journal time; None when it cannot be read, or lies ahead of `today` by more
    than a day (a clock or a hand gone wrong)."""
    try:
        day = dt.date.fromisoformat(at[:10])
    except ValueError:
        return None
    return day if day <= today + dt.timedelta(days=1) else None


def state_row(
    counter: Counter, since: dt.date, today: dt.date, attempts: int = 1, window: Window = Window.CALLS
) -> Row:
    """A `status` row from the window's start date: full, growing (with the day it is full) or short.
    A start up to a day ahead (time zones) counts as 0 days."""
    days = max(0, (today - since).days)
    full_on = None
    if days >= FULL_DAYS:
        status = Status.FULL
    elif days >= 2:
        status = Status.GROWING
        full_on = since + dt.timedelta(days=FULL_DAYS)
    else:
        status = Status.SHORT
    return Row.of(
        counter,
        status,
        attempts=attempts,
        http_status=200,
        since=since.isoformat(),
        days=days,
        full_on=full_on.isoformat() if full_on else "",
        message=say.window_message(status, days, full_on, window),
    )
