"""Scheduling policy: the knobs of a run, with Metrica's documented quotas as the defaults.

Kept apart from the scheduler that applies it (and free of heavy imports), so the command line
takes its defaults from here without loading the HTTP stack.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

METRICA_MAX_IN_FLIGHT = 3  # parallel requests per login, documented
METRICA_ADDRESS_RPS = 30  # requests a second per client address, documented
METRICA_DAILY_QUOTA = 5000  # requests a day per login (reads and writes counted apart), documented
DEFAULT_RPS = 29.0  # evenly spaced 29/s never puts 30 in one second


@dataclass(frozen=True, slots=True)
class Policy:
    """How fast, how often again, and when to stop asking."""

    concurrency: int = METRICA_MAX_IN_FLIGHT  # per login
    rps: float = DEFAULT_RPS  # for the whole run; 0: no client-side limit (tests and benchmarks)
    max_attempts: int = 6  # requests per counter that count as attempts (quota answers do not)
    max_requests: int | None = None  # per account and run (per day with `until_done`)
    # Final failures alike (one error type) of an account's per-counter calls, with none of them
    # succeeded in this job, before the account stops; 0: never (the method breaker included).
    max_failures: int = 10
    timeout: float = 30.0  # seconds per request
    backoff_initial: float = 0.5  # seconds; tests make it tiny, as stamina's testing mode does
    backoff_max: float = 30.0  # the longest wait between two attempts, Retry-After included
    slow_down: float = 1.0  # pause after a per-address quota answer without Retry-After
    until_done: bool = False  # wait for the daily quota's reset instead of stopping
    quota_reset: dt.time = dt.time(0, 0)  # UTC; Metrica's docs say 00:00 GMT (or Moscow: hence a knob)
    probe_wait: float = (
        600.0  # after a reset that did not lift the quota, the longest wait before asking again
    )
    workers_per_slot: int = 4  # counters in progress per slot, so backoffs do not idle a slot
    unreachable_after: int = 2  # counters' worth of transport failures in a row before an account stops
    method_failures: int = 3  # answers blaming the method or the API root, none succeeded, before a stop
    quota_answers_cap: int = 60  # quota answers for one counter before it is deferred, not retried
    address_refusals_cap: int = (
        60  # per-address quota answers in a row, nothing else between, before the run stops
    )

    @property
    def workers(self) -> int:
        return max(1, self.concurrency * self.workers_per_slot)


def next_reset(reset: dt.time, now: dt.datetime) -> dt.datetime:
    """The first daily quota reset (at `reset`, UTC) after `now` (aware)."""
    at = dt.datetime.combine(now.date(), reset, dt.UTC)
    return at if at > now else at + dt.timedelta(days=1)
