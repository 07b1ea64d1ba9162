"""The read-only plan: what a run would do to each counter, from the account's listing alone.

The listing is paged by what each page actually holds (the API may return fewer than asked:
1,000 by default) until the offset passes the total or a page comes back empty, so planning
thousands of counters costs a handful of requests, never one per counter, and never a write.
Whether the window is already on shows only where the listing carries `offline_options`
(undocumented); without it a plan says so instead of guessing.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from . import _messages as say
from ._answer import Answer, Blame, Verdict
from ._metrica import CounterInfo, MetricaClient
from ._model import Counter, Job, Row, Status, Stop, StopCause
from ._scheduler import Lane, NotSent, Scheduler

EDITABLE = frozenset({"own", "edit"})
MAX_LISTED = 300_000  # counters a listing may hold before the tool stops reading it (agencies have far fewer)


@dataclass(frozen=True, slots=True)
class Listing:
    """The counters one account can see (those asked about, or all), by ID, or why it is incomplete."""

    counters: dict[int, CounterInfo]
    requests: int
    stop: Stop | None = None  # the listing failed: plan nothing from it
    interrupted: bool = False


async def read_listing(
    scheduler: Scheduler, lane: Lane, client: MetricaClient, wanted: Collection[int] | None = None
) -> Listing:
    """Read the account's counters page by page, with the run's quotas and retries.

    With `wanted`, only those counters are kept, and reading stops once all of them are found. A page
    that brings nothing new (a server repeating itself), an empty page, or the offset passing `rows`
    ends the listing; one that runs past MAX_LISTED counters stops it, as a failure.
    """
    kept: dict[int, CounterInfo] = {}
    received: set[int] = set()
    missing = set(wanted) if wanted is not None else None
    offset, requests = 1, 0
    while True:
        send = functools.partial(client.list_page, offset)
        outcome = await scheduler.call(lane, f"listing offset={offset}", send)
        requests += outcome.attempts
        if isinstance(outcome, NotSent):
            return Listing(kept, requests, outcome.stop, interrupted=outcome.stop is None)
        answer = outcome.answer
        if answer.verdict is not Verdict.DONE:
            cause = (
                StopCause.UNREACHABLE  # no answer at all: the address or the network
                if answer.verdict is Verdict.NO_ANSWER
                else StopCause.NOT_THE_API  # a web page, or JSON of another shape: a wrong --api-base?
                if answer.blame is Blame.METHOD
                else StopCause.LISTING
            )
            return Listing(kept, requests, scheduler.stop(lane, cause, answer, "listing"))
        page = outcome.value
        new = [c for c in page.counters if c.id not in received]  # the first of a repeated ID stands
        received.update(c.id for c in new)
        for c in new:
            if missing is None or c.id in missing:
                kept[c.id] = c
                if missing is not None:
                    missing.discard(c.id)
        offset += len(page.counters)
        if not new or missing == set() or (page.rows is not None and offset > page.rows):
            return Listing(kept, requests)
        if len(received) > MAX_LISTED:
            endless = Answer(
                Verdict.FAILED,
                outcome.answer.http_status,
                "listing_too_long",
                f"the listing went past {MAX_LISTED:,} counters without ending",
            )
            return Listing(kept, requests, scheduler.stop(lane, StopCause.LISTING, endless, "listing"))


def plan_rows(
    counters: Iterable[Counter], listing: Listing, job: Job, ulogin: str | None = None
) -> list[Row]:
    """The plan status of each counter: would_*, already_*, read_only or not_found."""
    rows = []
    for c in counters:
        info = listing.counters.get(c.id)
        if info is None:
            rows.append(Row.of(c, Status.NOT_FOUND, message=say.plan_not_found(ulogin)))
        elif info.permission and info.permission not in EDITABLE:
            rows.append(Row.of(c, Status.READ_ONLY, message=say.plan_read_only(info.permission)))
        elif info.states.get(job.window) is job.enable:
            rows.append(Row.of(c, job.already, message=say.plan_already(job)))
        else:
            shown = job.window in info.states
            rows.append(Row.of(c, job.would, message=say.plan_would(job, shown)))
    return rows


def state_unknown(rows: Iterable[Row], listing: Listing, job: Job) -> bool:
    """True when some counter was planned without the listing showing the window's state."""
    return any(
        r.status is job.would and job.window not in listing.counters[r.counter_id].states for r in rows
    )
