"""The jobs the CLI runs: `run` (change the window), `check` (plan only) and `counters` (list).

Each takes validated settings and returns a `Summary`; nothing here parses arguments or prints
anything but progress and log lines (stderr).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from ._config import Account, Config, Counter
from ._metrica import Answer, MetricaClient, Verdict, open_session
from ._plan import Listing, plan_rows, read_listing
from ._report import Job, ReportWriter, Row, now_iso, write_csv
from ._scheduler import Lane, Policy, Result, Scheduler

FAILED_STATUSES = frozenset({"failed", "read_only", "not_found"})
INTERRUPTED = "interrupted before it was sent; rerun to continue"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a job needs, already validated."""

    config: Config
    tokens: Mapping[str, str]  # account name -> token
    report: Path
    api_base: str
    job: Job = field(default_factory=lambda: Job("calls", True))
    policy: Policy = field(default_factory=Policy)
    timeout: float = 30.0
    fresh: bool = False
    preflight: bool = False
    progress: bool = False


@dataclass
class Summary:
    """What a job did, for the closing lines and the exit code."""

    report: Path
    rows: list[Row]
    elapsed: float
    skipped: int = 0  # done by an earlier run of the same job: not sent again
    requests: int = 0
    stops: dict[str, str] = field(default_factory=dict)  # account -> why it stopped
    interrupted: bool = False
    plan: bool = False

    @property
    def counts(self) -> collections.Counter[str]:
        return collections.Counter(r.status for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some failed; 3 some deferred (3 wins over 1); 130 interrupted."""
        if self.interrupted:
            return 130
        counts = self.counts
        if counts["deferred"]:
            return 3
        if not self.plan and any(counts[s] for s in FAILED_STATUSES):
            return 1
        return 0

    def lines(self) -> list[str]:
        """The closing summary, for a human."""
        counts = self.counts
        what = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        out = [
            f"{'plan' if self.plan else 'done'}: {what} ({len(self.rows)} counters, "
            f"{self.requests} requests, {self.elapsed:.2f} s)"
        ]
        failed = collections.Counter(r.error_type or "?" for r in self.rows if r.status == "failed")
        if failed:
            out.append("failed: " + ", ".join(f"{n} {kind}" for kind, n in failed.most_common()))
        if self.skipped:
            out.append(f"{self.skipped} counters were already done in this report: not sent again")
        for account, reason in self.stops.items():
            out.append(f"account {account} stopped: {reason}")
        if any(r.error_type.startswith("quota_requests_by") for r in self.rows if r.status == "deferred"):
            out.append(f"the daily quota resets at 00:00 GMT ({_until_reset()})")
        out.append(f"report: {self.report}")
        if self.interrupted:
            out.append("next: interrupted; rerun the same command to finish the rest")
        elif counts["deferred"]:
            out.append(f"next: {counts['deferred']} counters deferred; rerun the same command to continue")
        elif not self.plan and any(counts[s] for s in FAILED_STATUSES):
            out.append("next: see `error_type` and `message` of the failed rows; a rerun retries them")
        return out


def _until_reset(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    reset = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = int((reset - now).total_seconds() // 60)
    return f"in {minutes // 60} h {minutes % 60:02d} min"


async def run_job(settings: Settings) -> Summary:
    """Change the window on every counter not already done; the report is written whatever happens."""
    started = time.monotonic()
    config, job = settings.config, settings.job
    scheduler = Scheduler(settings.policy)
    lanes: dict[str, Lane] = {}
    summary = Summary(settings.report, [], 0.0)
    with ReportWriter(settings.report, job, settings.fresh) as writer:
        todo = {a.name: [c for c in a.counters if not writer.done(c.id)] for a in config.accounts}
        summary.skipped = len(config.counters) - sum(len(t) for t in todo.values())
        bar = _progress(sum(len(t) for t in todo.values()), settings.progress)

        def record(row: Row) -> None:
            writer.record(row)
            bar.update(1)

        try:
            with _graceful_interrupt(scheduler):
                async with (
                    open_session(settings.timeout, _connections(settings)) as session,
                    asyncio.TaskGroup() as group,
                ):
                    for account in config.accounts:
                        lane = lanes[account.name] = scheduler.lane(account.name)
                        client = MetricaClient(session, settings.api_base, settings.tokens[account.name])
                        todo_here = todo[account.name]
                        group.create_task(
                            _run_account(settings, scheduler, lane, client, account, todo_here, record)
                        )
        finally:
            bar.close()
            stops = {name: lane.stop_reason for name, lane in lanes.items() if lane.stop_reason}
            deferred = {name: stops.get(name) or scheduler.stopping for name in lanes}
            summary.rows = writer.finish(config.counters, {k: v for k, v in deferred.items() if v})
            summary.stops = stops
            summary.interrupted = bool(scheduler.stopping)
            summary.requests = sum(lane.requests for lane in lanes.values())
            summary.elapsed = time.monotonic() - started
    return summary


async def _run_account(
    settings: Settings,
    scheduler: Scheduler,
    lane: Lane,
    client: MetricaClient,
    account: Account,
    todo: list[Counter],
    record: Callable[[Row], None],
) -> None:
    job = settings.job
    if settings.preflight and todo:
        listing = await read_listing(scheduler, lane, client)
        if listing.failure:
            lane.stop(listing.failure, "listing")
            return
        plan = plan_rows(todo, listing, job)
        for row in plan:
            if not row.status.startswith("would_"):
                record(row)
        sendable = {r.counter_id for r in plan if r.status.startswith("would_")}
        todo = [c for c in todo if c.id in sendable]

    async def work(counter: Counter) -> None:
        result = await scheduler.call(
            lane,
            f"counter={counter.id}",
            lambda: client.switch_window(counter.id, job.window, job.enable),
        )
        record(row_for(counter, result, job))

    await scheduler.for_each(lane, todo, work)


def row_for(counter: Counter, result: Result, job: Job) -> Row:
    """The report row for one counter's result."""
    answer = result.answer or Answer(Verdict.RETRY)
    common = {"attempts": result.attempts, "http_status": answer.http_status, "error_type": answer.error_type}
    if result.deferred:
        return Row.of(counter, "deferred", message=result.deferred, **common)
    if answer.verdict is Verdict.DONE:
        return Row.of(counter, "enabled" if job.enable else "disabled", **common)
    if answer.verdict is Verdict.DEFER_COUNTER:
        msg = f"this counter's daily quota is spent ({answer.message}); rerun tomorrow"
        return Row.of(counter, "deferred", message=msg, **common)
    if answer.verdict in (Verdict.RETRY, Verdict.SLOW_DOWN):
        msg = f"gave up after {result.attempts} attempts: {answer.message}"
        return Row.of(counter, "failed", message=msg, **common)
    return Row.of(counter, "failed", message=answer.message, **common)


async def check_job(settings: Settings) -> Summary:
    """Make the plan from each account's listing and write it as the report; never writes to the API."""
    started = time.monotonic()
    scheduler = Scheduler(settings.policy)
    rows: dict[int, Row] = {}
    stops: dict[str, str] = {}
    requests = 0
    async with open_session(settings.timeout, _connections(settings)) as session:

        async def plan_account(account: Account) -> None:
            nonlocal requests
            lane = scheduler.lane(account.name)
            client = MetricaClient(session, settings.api_base, settings.tokens[account.name])
            listing: Listing = await read_listing(scheduler, lane, client)
            requests += listing.requests
            if listing.failure:
                stops[account.name] = listing.failure
                error = listing.last.error_type if listing.last else ""
                for c in account.counters:
                    rows[c.id] = Row.of(c, "deferred", error_type=error, message=listing.failure)
                return
            for row in plan_rows(account.counters, listing, settings.job):
                rows[row.counter_id] = row

        async with asyncio.TaskGroup() as group:
            for account in settings.config.accounts:
                group.create_task(plan_account(account))
    final = [rows[c.id] for c in settings.config.counters]
    write_csv(settings.report, final)
    return Summary(
        settings.report, final, time.monotonic() - started, requests=requests, stops=stops, plan=True
    )


async def counters_yaml(
    api_base: str, token: str, permission: str | None, request_timeout: float
) -> tuple[str, int]:
    """A ready-to-run config of the counters this token can see: (YAML text, how many)."""
    scheduler = Scheduler(Policy())
    lane = scheduler.lane("default")
    async with open_session(request_timeout, 4) as session:
        listing = await read_listing(scheduler, lane, MetricaClient(session, api_base, token))
    if listing.failure:
        raise ListingError(listing.failure)
    items = []
    for cid, info in listing.counters.items():
        if permission and info.get("permission") not in (None, *permission.split(",")):
            continue
        label = " — ".join(str(info[k]) for k in ("name", "site") if info.get(k))
        items.append({"id": cid, "label": label} if label else {"id": cid})
    header = f"# {len(items)} counters visible to this token, listed {now_iso()}\n"
    return header + yaml.safe_dump({"counters": items}, allow_unicode=True, sort_keys=False), len(items)


class ListingError(Exception):
    """The token's counters could not be listed; the message is one line for the user."""


def _connections(settings: Settings) -> int:
    return settings.policy.concurrency * len(settings.config.accounts) + 2


def _progress(total: int, enabled: bool) -> tqdm[Any]:
    return tqdm(
        total=total, disable=not enabled, file=sys.stderr, unit="counter", dynamic_ncols=True, smoothing=0.1
    )


@contextlib.contextmanager
def _graceful_interrupt(scheduler: Scheduler) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): send nothing new, let in-flight requests finish. Second: abandon them."""
    loop = asyncio.get_running_loop()

    def wind_down(signum: int) -> None:
        scheduler.stopping = INTERRUPTED
        print("\ninterrupted: finishing requests in flight (Ctrl-C again to abandon them)", file=sys.stderr)
        loop.remove_signal_handler(signum)  # the next one raises KeyboardInterrupt as usual

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, wind_down, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
