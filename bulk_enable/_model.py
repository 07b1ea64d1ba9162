"""What a run is about: counters, jobs, report rows, their statuses, the summary and the exit codes.

Plain data only, no I/O and no words for people (those live in `_messages`), so every other
module can import it and `bulk-enable --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._answer import Answer

DEFAULT_API_BASE = "https://api-metrika.yandex.net"  # the current docs' spelling (see docs/metrica-api.md)
TOKEN_ENV = "YANDEX_METRICA_TOKEN"  # where the token comes from when nothing else says
MAX_ID = 2**63 - 1  # the largest counter ID a config takes (int32 in the docs, but IDs only grow)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")  # a Yandex login, as the API spells them


class Status(enum.StrEnum):
    """A counter's outcome in a report; the value is what the report shows."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    ALREADY_ENABLED = "already_enabled"
    ALREADY_DISABLED = "already_disabled"
    WOULD_ENABLE = "would_enable"
    WOULD_DISABLE = "would_disable"
    READ_ONLY = "read_only"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    DEFERRED = "deferred"
    # `status`: the window's real state
    FULL = "full"
    GROWING = "growing"
    SHORT = "short"


# Statuses that make the exit code 1 ("some failed"): a plan's read_only/not_found cannot be done either.
FAILED_STATUSES = frozenset({Status.FAILED, Status.READ_ONLY, Status.NOT_FOUND})


class ExitCode(enum.IntEnum):
    """The process's exit code; scripts and schedulers act on it."""

    OK = 0
    FAILED = 1  # some counters failed: see the report
    USAGE = 2  # bad input or usage: nothing was sent
    STOPPED = 3  # stopped early; the rest are deferred
    INTERRUPTED = 130  # Ctrl-C, SIGTERM or SIGHUP


class Window(enum.StrEnum):
    """Which extended window a job changes or reads."""

    CALLS = "calls"
    CONVERSIONS = "conversions"


class Command(enum.StrEnum):
    """The job a report belongs to."""

    RUN = "run"
    CHECK = "check"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Job:
    """What a run changes; a report's journal belongs to exactly one job."""

    window: Window = Window.CALLS
    enable: bool = True

    @property
    def changed(self) -> Status:
        return Status.ENABLED if self.enable else Status.DISABLED

    @property
    def already(self) -> Status:
        return Status.ALREADY_ENABLED if self.enable else Status.ALREADY_DISABLED

    @property
    def would(self) -> Status:
        return Status.WOULD_ENABLE if self.enable else Status.WOULD_DISABLE

    @property
    def done_statuses(self) -> frozenset[Status]:
        """Statuses meaning this job has nothing left to do for a counter."""
        return frozenset({self.changed, self.already})


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter to change, with the label and account it is reported under."""

    id: int
    label: str
    account: str


RUN_COLUMNS = (
    "counter_id",
    "label",
    "account",
    "status",
    "attempts",
    "http_status",
    "error_type",
    "message",
    "finished_at",
)
STATUS_COLUMNS = (
    "counter_id",
    "label",
    "account",
    "status",
    "since",
    "days",
    "full_on",
    "http_status",
    "error_type",
    "message",
    "checked_at",
)
COLUMNS = {Command.RUN: RUN_COLUMNS, Command.CHECK: RUN_COLUMNS, Command.STATUS: STATUS_COLUMNS}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a report. `at` is shown as `finished_at` (run, check) or `checked_at` (status)."""

    counter_id: int
    label: str
    account: str
    status: Status
    attempts: int = 0
    http_status: int | None = None
    error_type: str = ""
    message: str = ""
    at: str = ""
    since: str = ""  # status: the window's start date, YYYY-MM-DD
    days: int | None = None  # status: whole days from `since` to today
    full_on: str = ""  # status: when a growing window reaches 21 days
    # failed: the API's own word on this counter (`Answer.refusal`), not attempts run out on faults nor
    # a server's or a method's trouble; only the journal keeps it (a row journaled before it existed
    # counts as a fault: asked again once)
    final: bool = False

    @classmethod
    def of(cls, counter: Counter, status: Status, **fields: object) -> Row:
        """A row for `counter`, stamped now unless `at` is given."""
        fields.setdefault("at", now_iso())
        return cls(counter.id, counter.label, counter.account, status, **fields)  # type: ignore[arg-type]

    def cell(self, column: str) -> str | int | None:
        """The value of one report column."""
        if column in ("finished_at", "checked_at"):
            return self.at
        if column == "counter_id":
            return self.counter_id
        value: str | int | None = getattr(self, column)
        return value


ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Row))


def failed_for_good(row: Row) -> bool:
    """A failure a rerun cannot change by itself: the API's own refusal of the counter (`final`, as
    the Metrica client classified the answer), or a plan's read_only / not_found. The counter, its
    rights or the config must change first. A failure on faults (attempts ran out) is not one."""
    if row.status in (Status.READ_ONLY, Status.NOT_FOUND):
        return True
    return row.status is Status.FAILED and row.final


def held_back(row: Row | None, counter: Counter) -> bool:
    """An earlier run's `row` keeps a rerun from sending `counter`: failed for good under the same
    account. A counter moved to another account (its client login corrected, say) is a new question."""
    return row is not None and row.account == counter.account and failed_for_good(row)


def left_to_send(row: Row, command: Command) -> bool:
    """A counter without a final answer yet: not sent, cut short, or (for a run) failed on faults.
    For a run, exactly what a rerun sends (unless --retry-failed adds the failures for good)."""
    if row.status is Status.DEFERRED:
        return True
    return command is Command.RUN and row.status is Status.FAILED and not failed_for_good(row)


def by_account(rows: list[Row]) -> dict[str, dict[str, int]]:
    """{account: {status: counters}}, accounts in the order they first appear."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = out.setdefault(r.account, {})
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return out


def now_iso() -> str:
    """UTC now to the second; rows finished in the same second share one string (100k rows: -7 MB)."""
    return _iso_second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _iso_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).isoformat().replace("+00:00", "Z")


class StopCause(enum.Enum):
    """Why an account stopped before its counters were done."""

    REFUSED = "refused"  # the API refused the token
    DAILY_QUOTA = "daily_quota"  # the login's daily quota is spent, until the reset
    BUDGET = "budget"  # --max-requests is spent
    CANNOT_WRITE = "cannot_write"  # writes keep being denied and none has succeeded
    SAME_FAILURE = "same_failure"  # the same failure keeps coming back and nothing has succeeded
    UNREACHABLE = "unreachable"  # nothing answers at all
    NOT_THE_API = "not_the_api"  # the answers do not come from the Metrica API
    LISTING = "listing"  # the account's counters could not be listed (a plan needs them)
    THROTTLED = "throttled"  # the per-address quota kept refusing every request: the address is used up
    WRONG_ULOGIN = "wrong_ulogin"  # the account's ulogin is not a login its token represents


@dataclass(frozen=True, slots=True)
class Stop:
    """An account's stop: the cause, the answer that caused it, and where the account was then."""

    cause: StopCause
    answer: Answer | None = None
    subject: str = ""  # what got the stopping answer, e.g. "counter=123" or "listing"
    requests: int = 0  # requests the account had sent by then
    alike: int = 0  # for a stop on failures alike: how many came back


@dataclass
class Summary:
    """What a job did, as plain data; the CLI turns it into words, JSON and an exit code."""

    command: Command
    report: Path
    rows: list[Row]
    elapsed: float = 0.0
    requests: int = 0
    skipped: int = 0  # done by an earlier run of the same job: not sent again
    held: int = 0  # failed for good in an earlier run of the same job: not sent again (--retry-failed)
    elsewhere: int = 0  # rows the report keeps for counters outside this config
    stops: dict[str, Stop] = field(default_factory=dict)  # account -> why it stopped
    interrupted: bool = False
    retries: int = 0  # transient answers that were asked again
    gave_up: int = 0  # calls retried that got no final answer (attempts ran out, or the run stopped)
    rate: float | None = None  # the per-address rate the run settled at, when it had to lower it
    address_quota_answers: int = 0
    state_unknown: bool = False  # a plan made from a listing that does not show the window's state
    report_error: str = ""  # the report or its journal could not be written (a full disk): the run stopped
    report_written: bool = True  # False: the report on disk does not show these rows (its last render failed)
    deferred_until: dt.datetime | None = None  # when the quota that stopped the run resets
    listed: int | None = None  # counters the `counters: all` accounts listed (None: there are none)
    new: list[int] | None = None  # of those, the ones this report never had (None: not a rerun)
    bare: frozenset[str] = frozenset()  # accounts a plain list of IDs reaches: no ulogin, the default token
    acting: frozenset[str] = frozenset()  # accounts that act for a client login (ulogin)
    logins: dict[str, str] = field(default_factory=dict)  # account -> its login's key: one quota each
    # status: the short counters the job's run enabled -> whole days since (None: no run journal)
    enabled_days_ago: dict[int, int] | None = None
    disabled_by_run: frozenset[int] = frozenset()  # status: short counters a later run disabled

    def count(self, *statuses: Status) -> int:
        wanted = set(statuses)
        return sum(1 for r in self.rows if r.status in wanted)

    @property
    def left(self) -> int:
        """Counters without a final answer yet (for a run: what a rerun sends)."""
        return sum(1 for r in self.rows if left_to_send(r, self.command))

    @property
    def complete(self) -> bool:
        """Every counter has its final answer: done, or (for a run) failed for good."""
        return self.left == 0
