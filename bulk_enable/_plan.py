"""The read-only plan: what a run would do to each counter, from the account's listing alone.

One `GET /management/v1/counters` page covers 10,000 counters, so a plan of thousands of counters
costs a handful of requests, never one per counter, and never a write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._config import Counter
from ._metrica import LIST_PAGE_SIZE, WINDOW_FLAGS, Answer, MetricaClient, Verdict
from ._report import Job, Row
from ._scheduler import Lane, Scheduler

EDITABLE = frozenset({"own", "edit"})


@dataclass(frozen=True, slots=True)
class Listing:
    """Every counter one token can see, by ID, or why it could not be read."""

    counters: dict[int, dict[str, Any]]
    requests: int
    failure: str = ""  # non-empty: the listing is incomplete; plan nothing from it
    last: Answer | None = None


async def read_listing(scheduler: Scheduler, lane: Lane, client: MetricaClient) -> Listing:
    """Read all pages of the token's counters, with the run's quotas and retries."""
    seen: dict[int, dict[str, Any]] = {}
    offset, requests = 1, 0
    while True:
        page = _Page(client, offset)
        result = await scheduler.call(lane, f"listing offset={offset}", page.fetch)
        requests += result.attempts
        answer = result.answer
        if result.deferred or answer is None or answer.verdict is not Verdict.DONE:
            why = result.deferred or (
                f"listing failed: {answer.http_status} {answer.error_type} {answer.message}".strip()
                if answer
                else "listing failed"
            )
            return Listing(seen, requests, why, answer)
        for counter in page.counters:
            seen[counter["id"]] = counter
        offset += LIST_PAGE_SIZE
        if not page.counters or offset > page.total:
            return Listing(seen, requests)


class _Page:
    """One listing page; `fetch` is what the scheduler sends (and resends on a transient answer)."""

    def __init__(self, client: MetricaClient, offset: int) -> None:
        self.client, self.offset = client, offset
        self.counters: list[dict[str, Any]] = []
        self.total = 0

    async def fetch(self) -> Answer:
        answer, self.counters, self.total = await self.client.list_page(self.offset)
        return answer


def plan_rows(counters: Iterable[Counter], listing: Listing, job: Job) -> list[Row]:
    """The plan status of each counter: would_enable, already_enabled, read_only or not_found.

    `offline_options` (older docs) is used when the listing carries it and never required: without
    it a counter the token can edit is planned as `would_enable`, and the write settles it.
    """
    verb = "enable" if job.enable else "disable"
    flag = WINDOW_FLAGS[job.window]
    rows = []
    for c in counters:
        info = listing.counters.get(c.id)
        if info is None:
            rows.append(Row.of(c, "not_found", message="not visible to this token"))
            continue
        permission = info.get("permission")
        if isinstance(permission, str) and permission not in EDITABLE:
            rows.append(Row.of(c, "read_only", message=f"this token has `{permission}` access, not edit"))
            continue
        options = info.get("offline_options")
        state = options.get(flag) if isinstance(options, dict) else None
        if isinstance(state, bool) and state == job.enable:
            rows.append(
                Row.of(
                    c,
                    f"already_{verb}d",
                    message=f"the listing shows the {job.window} window {'on' if state else 'off'}",
                )
            )
        else:
            rows.append(Row.of(c, f"would_{verb}", message=f"the run will {verb} the {job.window} window"))
    return rows
