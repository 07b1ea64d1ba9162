"""The read-only plan: what a run would do to each counter, from the account's listing alone.

The listing is paged by what each page actually holds (the API may return fewer than asked:
1,000 by default) until the offset passes the total or a page comes back empty, so planning
thousands of counters costs a handful of requests, never one per counter, and never a write.
Whether the window is already on shows only where the listing carries `offline_options`
(undocumented); without it a plan says so instead of guessing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from . import _messages as say
from ._answer import Verdict
from ._metrica import CounterInfo, MetricaClient
from ._model import Counter, Job, Row, Status, Stop, StopCause
from ._scheduler import Lane, NotSent, Scheduler

EDITABLE = frozenset({"own", "edit"})
MAX_PAGES = 10_000  # a server that never ends its listing does not keep a run busy forever


@dataclass(frozen=True, slots=True)
class Listing:
    """Every counter one account can see, by ID, or why the listing is incomplete."""

    counters: dict[int, CounterInfo]
    requests: int
    stop: Stop | None = None  # the listing failed: plan nothing from it
    interrupted: bool = False


async def read_listing(scheduler: Scheduler, lane: Lane, client: MetricaClient) -> Listing:
    """Read all pages of the account's counters, with the run's quotas and retries."""
    seen: dict[int, CounterInfo] = {}
    offset, requests = 1, 0
    for _ in range(MAX_PAGES):
        outcome = await scheduler.call(
            lane, f"listing offset={offset}", functools.partial(client.list_page, offset)
        )
        requests += outcome.attempts
        if isinstance(outcome, NotSent):
            return Listing(seen, requests, outcome.stop, interrupted=outcome.stop is None)
        if outcome.answer.verdict is not Verdict.DONE:
            nothing = outcome.answer.http_status is None  # no answer at all: the address or the network
            cause = StopCause.UNREACHABLE if nothing else StopCause.LISTING
            return Listing(seen, requests, scheduler.stop(lane, cause, outcome.answer, "listing"))
        page = outcome.value
        before = len(seen)
        seen.update((c.id, c) for c in page.counters)
        offset += len(page.counters)
        if len(seen) == before or (page.rows is not None and offset > page.rows):
            break  # an empty page, the end, or a server repeating itself
    return Listing(seen, requests)


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
