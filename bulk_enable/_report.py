"""The per-counter report: a crash-safe journal while the run goes, one CSV file at the end.

Each finished counter is appended to `<report>.journal` (JSON lines, one `write()` each, so it is in
the OS's hands before the next counter starts: a `kill -9` loses nothing already written). At the end
the CSV is rendered in input order and swapped in atomically, and the journal is compacted.

The journal's first line records the job (window and action), so a rerun trusts earlier results only
for the same job: a report made for one window never makes a run of another skip a counter.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._config import Counter

log = logging.getLogger(__name__)

COLUMNS = (
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
_JOURNAL_VERSION = 1
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReportError(Exception):
    """The report cannot be used (locked by another run, not writable); one line for the user."""


@dataclass(frozen=True, slots=True)
class Job:
    """What a run changes; a report belongs to exactly one job."""

    window: str  # "calls" or "conversions"
    enable: bool  # False: --disable

    @property
    def done_statuses(self) -> frozenset[str]:
        """Statuses meaning this job has nothing left to do for a counter."""
        return frozenset({"enabled", "already_enabled"} if self.enable else {"disabled", "already_disabled"})

    def describe(self) -> str:
        return f"{'enable' if self.enable else 'disable'} the {self.window} window"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the report."""

    counter_id: int
    label: str
    account: str
    status: str
    attempts: int = 0
    http_status: int | None = None
    error_type: str = ""
    message: str = ""
    finished_at: str = ""

    @classmethod
    def of(cls, counter: Counter, status: str, **fields: object) -> Row:
        """A row for `counter`, stamped now unless `finished_at` is given."""
        fields.setdefault("finished_at", now_iso())
        return cls(counter.id, counter.label, counter.account, status, **fields)  # type: ignore[arg-type]


def now_iso() -> str:
    """UTC now to the second; rows finished in the same second share one string (100k rows: -7 MB)."""
    return _iso_second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _iso_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).isoformat().replace("+00:00", "Z")


def default_report_path(config_path: Path, job: Job, plan: bool = False) -> Path:
    """`reports/<config stem>.csv`, with the job in the name when it is not the default one."""
    suffix = (
        ""
        if (job.window == "calls" and job.enable)
        else f".{job.window}-{'enable' if job.enable else 'disable'}"
    )
    return Path("reports") / f"{config_path.stem}{suffix}{'.plan' if plan else ''}.csv"


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


class ReportWriter:
    """Owns one report and its journal for the length of a run; use as a context manager."""

    def __init__(self, path: Path, job: Job, fresh: bool = False) -> None:
        self.path = path
        self.job = job
        self.fresh = fresh
        self.journal = journal_path(path)
        self._fd = self._lock_fd = -1
        self.previous: dict[int, Row] = {}  # rows from earlier runs of the same job
        self.rows: dict[int, Row] = {}  # rows finished in this run

    def __enter__(self) -> ReportWriter:
        self._lock = lock = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise ReportError(f"{self.path}: cannot write the report here ({e.strerror})") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ReportError(f"{self.path}: another bulk-enable run is using this report") from None
        self.previous = {} if self.fresh else self._read_previous()
        # Start this run's journal from what is kept, swapped in whole: a kill here loses nothing.
        _write_journal(self.journal, self._header(), self.previous.values())
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd >= 0:
            self._lock.unlink(missing_ok=True)  # still ours: a rival run fails at once (LOCK_NB)
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

    def done(self, counter_id: int) -> bool:
        """True when an earlier run of this job already finished this counter."""
        row = self.previous.get(counter_id)
        return row is not None and row.status in self.job.done_statuses

    def record(self, row: Row) -> None:
        """Put one finished counter on disk now."""
        self.rows[row.counter_id] = row
        self._append([_row_line(row)])

    def finish(self, counters: Iterable[Counter], deferred: dict[str, str]) -> list[Row]:
        """Write the final CSV in input order and compact the journal; return the rows.

        Counters with no row are `deferred`, with their account's reason from `deferred`.
        """
        final: list[Row] = []
        for c in counters:
            row = self.rows.get(c.id)
            if row is None:
                old = self.previous.get(c.id)
                if old is not None and old.status in self.job.done_statuses:
                    row = old
                else:
                    reason = deferred.get(c.account, "not attempted: the run stopped early")
                    row = Row.of(c, "deferred", message=reason)
            final.append(row)
        write_csv(self.path, final)
        _write_journal(self.journal, self._header(), final)
        os.close(self._fd)
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        return final

    def _header(self) -> str:
        return (
            json.dumps(
                {
                    "bulk_enable_journal": _JOURNAL_VERSION,
                    "window": self.job.window,
                    "enable": self.job.enable,
                }
            )
            + "\n"
        )

    def _append(self, lines: list[str]) -> None:
        data = "".join(lines).encode("utf-8")
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def _read_previous(self) -> dict[int, Row]:
        if not self.journal.exists():
            if self.path.exists():
                log.warning("%s has no journal beside it: its counters are sent again", self.path)
            return {}
        job, journaled = read_journal(self.journal)
        if job is None:
            log.warning("%s: unreadable journal, starting the report afresh", self.journal)
            return {}
        if job != self.job:
            log.warning(
                "%s was made to %s, this run will %s: earlier results are not reused",
                self.path,
                job.describe(),
                self.job.describe(),
            )
            return {}
        rows: dict[int, Row] = {}
        for row in journaled:
            if row.counter_id in rows and rows[row.counter_id].status in job.done_statuses:
                continue  # done stays done
            rows[row.counter_id] = row
        return rows


def read_journal(path: Path) -> tuple[Job | None, list[Row]]:
    """The job a journal was made for (None: no readable header) and its rows, oldest first.

    A line cut short by a kill is skipped.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None, []
    try:
        header = json.loads(lines[0])
        job = Job(header["window"], header["enable"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None, []
    rows = []
    for line in lines[1:]:
        try:
            rows.append(Row(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # the line a kill cut short
    return job, rows


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    """Write the report atomically: UTF-8 with BOM (Excel and Cyrillic), formula cells neutralised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(_cells(r) for r in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a report as written (for tests and tools; resume reads the journal)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        yield from csv.DictReader(f)


def _cells(row: Row) -> list[str]:
    values = [
        row.counter_id,
        row.label,
        row.account,
        row.status,
        row.attempts,
        "" if row.http_status is None else row.http_status,
        row.error_type,
        row.message,
        row.finished_at,
    ]
    return [neutralise(str(v)) for v in values]


def neutralise(cell: str) -> str:
    """Make a cell that a spreadsheet would run as a formula plain text (OWASP CSV injection)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _row_line(row: Row) -> str:
    values = {name: getattr(row, name) for name in _ROW_FIELDS}
    return json.dumps(values, ensure_ascii=False) + "\n"


_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Row))


def _write_journal(path: Path, header: str, rows: Iterable[Row]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(_row_line(r) for r in rows)
    os.replace(tmp, path)
