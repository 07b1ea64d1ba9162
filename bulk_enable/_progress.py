"""What a person sees while a job runs (all on stderr): the progress bar, one log line per event,
and a countdown while an account waits for the quota reset (what signals do: `_signals`)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

from . import _messages as say
from ._answer import Answer
from ._jobs import JobEvents
from ._model import Counter, Row, Stop
from ._policy import METRICA_DAILY_QUOTA, Policy, next_reset
from ._report import ReportError

log = logging.getLogger("bulk_enable")
WAIT_LOG_EVERY = 600.0  # seconds between "still waiting" lines when stderr is not a terminal
WAITING_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]"  # no ETA: a quota wait makes it fiction
QUOTA_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, done about %s: %s a day per login]"


class CliEvents(JobEvents):
    """Turns a job's events into log lines and a progress bar."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.bar: Any = None
        self.waits: dict[str, dt.datetime] = {}
        self._last_wait_line = 0.0
        self.quota: QuotaPace | None = None

    def started(self, total: int) -> None:
        if self.progress and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="counter", dynamic_ncols=True, smoothing=0.1)

    def planned(self, todo: Mapping[str, int], logins: Mapping[str, str], policy: Policy) -> None:
        daily = min(policy.max_requests or METRICA_DAILY_QUOTA, METRICA_DAILY_QUOTA)
        self.quota = QuotaPace(dict(logins), daily, policy.quota_reset)
        for account, n in todo.items():
            self.quota.left[logins.get(account, account)] += n

    def finished(self, row: Row) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.quota is not None:
            self.quota.finished(row.account)

    def retrying(self, account: str, subject: str, attempt: int, wait: float, answer: Answer) -> None:
        log.debug(
            "retry %s account=%s attempt=%d wait=%.2fs after %s",
            subject,
            account,
            attempt,
            wait,
            say.terminal(say.answer_text(answer)),
        )

    def stopped(self, account: str, stop: Stop) -> None:
        log.warning(
            "stop %s account=%s after %s: %s",
            stop.subject or "-",
            account,
            say.plural(stop.requests, "request"),
            say.terminal(say.stop_reason(stop)),
        )

    def waiting(self, account: str, until: dt.datetime, stop: Stop) -> None:
        self.waits[account] = until
        self._last_wait_line = time.monotonic()
        log.warning(
            "account %s: %s; waiting until %s (in %s), then going on",
            account,
            say.terminal(say.stop_reason(stop)),
            say.clock(until),
            say.until(until),
        )

    def resumed(self, account: str) -> None:
        self.waits.pop(account, None)
        log.warning("account %s: the quota has reset; going on", account)

    def narrowed(self, account: str, limit: int) -> None:
        log.warning("account=%s: parallel-request quota answered; %d in flight from now on", account, limit)

    def trouble(self, counter: Counter, text: str) -> None:
        log.error("counter %d: %s (marked failed; the run goes on)", counter.id, say.terminal(text))

    def report_failing(self, error: ReportError) -> None:
        log.warning(
            "%s; trying again every few seconds (the journal keeps every counter meanwhile)",
            say.terminal(str(error)),
        )

    def tick(self) -> None:
        """Once a second: the countdown on a terminal, a line every 10 minutes otherwise."""
        if not self.waits:
            if self.bar is not None:
                quota = self.quota
                day = quota.finish_day() if quota is not None else None
                shape = None if quota is None or day is None else QUOTA_BAR % (day, say.number(quota.daily))
                if self.bar.bar_format != shape:
                    self.bar.bar_format = shape  # None: tqdm's own, ETA included
                    self.bar.set_description_str("")
            return
        account, until = min(self.waits.items(), key=lambda item: item[1])
        text = f"{account}: waiting for the daily quota until {say.clock(until)} (in {say.until(until)})"
        if self.bar is not None:
            self.bar.bar_format = WAITING_BAR
            self.bar.set_description_str(text)
        elif time.monotonic() - self._last_wait_line >= WAIT_LOG_EVERY:
            self._last_wait_line = time.monotonic()
            log.info("still %s", text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class QuotaPace:
    """When a job will finish if the daily quota, not the pace of requests, is what holds it: each
    login sends at most `daily` requests a day (one a counter), the rest after each reset."""

    def __init__(self, logins: dict[str, str], daily: int, reset: dt.time) -> None:
        self.logins = logins  # account -> login key
        self.daily = max(1, daily)
        self.reset = reset  # UTC
        self.left: collections.Counter[str] = collections.Counter()  # login -> counters not finished
        self.today: collections.Counter[str] = collections.Counter()  # login -> finished since the reset
        self._day_ends = next_reset(reset, dt.datetime.now(dt.UTC))

    def finished(self, account: str) -> None:
        login = self.logins.get(account, account)
        self.left[login] = max(0, self.left[login] - 1)
        self._new_day()
        self.today[login] += 1

    def finish_day(self, now: dt.datetime | None = None) -> dt.date | None:
        """The UTC day the last login should finish, when that is after today's quota runs out;
        None when the job fits in what is left of today's quota (the bar's own ETA says it then)."""
        self._new_day(now)
        last: dt.date | None = None
        for login, left in self.left.items():
            after_today = left - max(0, self.daily - self.today[login])
            if after_today <= 0:
                continue
            days = math.ceil(after_today / self.daily)  # the days after the next reset it takes
            day = (self._day_ends + dt.timedelta(days=days - 1)).date()
            last = day if last is None or day > last else last
        return last

    def _new_day(self, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        if now >= self._day_ends:
            self.today.clear()
            self._day_ends = next_reset(self.reset, now)


@contextlib.asynccontextmanager
async def showing(events: JobEvents | None) -> Any:
    """Log lines routed around the progress bar, the countdown ticking, the bar closed at the end."""
    if not isinstance(events, CliEvents):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    async def tick() -> None:
        while True:
            await asyncio.sleep(1.0)
            events.tick()

    ticker = asyncio.create_task(tick())
    try:
        with logging_redirect_tqdm(loggers=[log]) if events.progress else contextlib.nullcontext():
            yield
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        events.close()
