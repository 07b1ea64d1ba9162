"""A report on disk for the length of a job: its lock, its crash-safe journal, its renders.

Each finished counter is appended to `<report>.journal` (JSON lines, one `write()` each, so it is in
the OS's hands before the next counter starts: a `kill -9` loses nothing already written). The
journal starts with a line naming the job, then one row for every counter of the config in input
order (done, failed earlier, or not sent yet), then the rows it keeps for counters of other configs:
replaying it gives the report exactly, which is what `bulk-enable report` does.

While a run goes, the report file is re-rendered from memory in the background, never more than
max(2 s, 20 x the last render's time) behind the journal; a render that fails is tried again on the
next tick. At the end it is rendered once more and the journal compacted. `<report>.lock` (flock,
never deleted) keeps two jobs off one report.

A journal whose first line is damaged no longer says which job it records: it is refused (a `run`
takes it over only with --fresh), never silently replaced, so no done counter is sent again unasked.
A file that cannot be written (a full disk) is exit 3, the job stopped; a path that cannot be a
report is exit 2, bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import UserError
from ._messages import AFTER_A_WRITE_FAILED
from ._model import (
    COLUMNS,
    ROW_FIELDS,
    Command,
    Counter,
    ExitCode,
    Job,
    Row,
    Status,
    Window,
    held_back,
    now_iso,
)
from ._render import looks_like_report, render
from ._untrusted import SURROGATE, escaped

JOURNAL_VERSION = 2
RENDER_EVERY = 2.0  # seconds: the report on disk is at most this far behind, or...
RENDER_SHARE = 20  # ...this many times the last render's duration, when rendering is slow
FAILED_RENDERS_SAID = 2  # background renders failing in a row before the job is told, once
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Row) if f.default is not dataclasses.MISSING}


class ReportError(UserError):
    """The report cannot be used (a directory, another run's, not ours); one line for the user."""


@dataclass(frozen=True, slots=True)
class Header:
    """The journal's first line: which job the report belongs to, and how it is rendered."""

    command: Command
    job: Job
    delimiter: str = ","

    def line(self) -> str:
        return (
            json.dumps(
                {
                    "bulk_enable_journal": JOURNAL_VERSION,
                    "command": self.command.value,
                    "window": self.job.window.value,
                    "enable": self.job.enable,
                    "delimiter": self.delimiter,
                }
            )
            + "\n"
        )


def default_report_path(config: Path, job: Job, command: Command) -> Path:
    """`reports/<config stem>.csv`, with the job in the name when it is not the default one."""
    suffix = "" if job == Job() else f".{job.window.value}-{'enable' if job.enable else 'disable'}"
    kind = {Command.RUN: "", Command.CHECK: ".plan", Command.STATUS: ".status"}[command]
    if command is Command.STATUS:
        suffix = "" if job.window is Window.CALLS else f".{job.window.value}"
    return Path("reports") / f"{config.stem}{suffix}{kind}.csv"


REPORT_SUFFIXES = (".csv", ".tsv", ".xlsx")
DELIMITER_OF_SUFFIX = {".tsv": "\t"}


def check_suffix(path: Path, option: str, what: str = "the report") -> None:
    """A report is a .csv, .tsv or .xlsx file: Excel opens each."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ReportError(
            f"{option} {path}: give {what} a .csv or .xlsx name (Excel opens both; .xlsx keeps "
            "Cyrillic and long numbers as they are)"
        )


def report_delimiter(
    given: str | None, report: Path, config_delimiter: str | None = None, preferred: str | None = None
) -> str:
    """The CSV report's separator: the one given; else the one last given to a command of this config
    (`preferred`); else the one this report already has (a rerun keeps it); else `;` for a `;` CSV
    config (Excel with a Russian locale); else a comma."""
    from ._config_tables import sniff_delimiter

    if given is not None:
        return given
    if report.suffix.lower() in DELIMITER_OF_SUFFIX:
        return DELIMITER_OF_SUFFIX[report.suffix.lower()]
    if preferred is not None:
        return preferred
    header = journal_header(journal_path(report))
    if header is not None:
        return header.delimiter
    if report.suffix.lower() == ".csv" and report.is_file():
        with contextlib.suppress(OSError), open(report, encoding="utf-8-sig", errors="replace") as f:
            return sniff_delimiter(f.readline())
    return ";" if config_delimiter == ";" else ","  # (a tab belongs in a .tsv, not a .csv report)


def done_elsewhere(usual: Path, counters: Sequence[Counter], job: Job, report: Path) -> int:
    """How many of `counters` the job's usual run report has done for `job` (0 when `report` is that
    report, or it holds another job)."""
    earlier = run_journal(usual, job) if usual.resolve() != report.resolve() else None
    if earlier is None:
        return 0
    rows = earlier.rows
    return sum(1 for c in counters if (r := rows.get(c.id)) is not None and r.status in job.done_statuses)


@dataclass(frozen=True, slots=True)
class RunJournal:
    """A job's run report and its journal's rows ({id: row}), as `status` reads them."""

    report: Path
    rows: Mapping[int, Row]


def run_journal(run_report: Path, job: Job) -> RunJournal | None:
    """`job`'s run journal, for `status` to tell a short window the run could not change, or changed
    a day ago, from one it never sent; None when there is no such journal."""
    header = journal_header(journal_path(run_report))  # its first line, before reading it all
    if header is None or header.command is not Command.RUN or header.job != job:
        return None
    header, rows = read_journal(journal_path(run_report))
    return RunJournal(run_report, rows) if header is not None else None


def open_lock(path: Path) -> int:
    """A lock file, opened for flock: a regular file only. A symlink, a FIFO or a device planted there
    is an OSError (never followed, never waited on)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


def lock_path(report: Path) -> Path:
    return report.with_name(report.name + ".lock")


def check_name(path: Path, option: str) -> None:
    """Refuse a path with no file name (``, `.`, `/`, `x/..`): it has no journal or lock beside it.
    `option` is how the path was given (`--report`, `--as`, `REPORT`)."""
    if path.name in ("", ".", ".."):
        raise ReportError(f"{option} {str(path)!r} is not a file name: give one, e.g. reports/job.csv")


def check_folder(path: Path, option: str) -> None:
    """Refuse a path whose nearest existing parent (made or not) is a file, not a folder."""
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise ReportError(f"{option} {path}: {folder} is a file, not a folder")


def check_place(path: Path, option: str) -> None:
    """Refuse a path no report can be written to (`--report` and `--as` alike): no file name, a
    directory, a file posing as a folder, a symlink (to /dev/null, to /proc/self/fd/1...), a device, a
    FIFO. A report is only ever a regular file, replaced whole."""
    check_name(path, option)
    if path.is_dir():
        raise ReportError(f"{option} {path} is a directory: give a file in it, e.g. {path / 'job.csv'}")
    check_folder(path, option)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ReportError(f"{option} {path}: exists and is not a regular file: give {option} another name")


def check_ours(path: Path, option: str, replace: str = "") -> None:
    """Refuse a file that is not a report this tool wrote: someone's notes or workbook stay as they are."""
    if path.exists() and not looks_like_report(path):
        raise ReportError(
            f"{option} {path}: exists and is not a bulk-enable report: give {option} another name{replace}"
        )


def check_target(path: Path, command: Command, fresh: bool = False) -> None:
    """Refuse a report path that cannot be a report, before anything is sent."""
    check_place(path, "--report")
    journal = journal_path(path)
    header = journal_header(journal)
    own = f"give `{command.value}` its own --report, e.g. {path.with_suffix('')}.{command.value}{path.suffix}"
    if header is not None and command is not Command.RUN and header.command is Command.RUN:
        raise ReportError(f"{path} is the report of a `run` (it has a journal): {own}")
    if header is None and damaged(journal):
        if command is not Command.RUN:  # it may be a run's: never replace it with a plan or a status
            raise ReportError(f"{journal}: its first line is damaged, so it may be a `run`'s journal: {own}")
        if not fresh:
            raise ReportError(
                f"{journal}: its first line is damaged, so it no longer says which job it records: "
                "repair that line, or pass --fresh to start the report over (every counter is sent again)"
            )
    if header is None and not fresh:
        check_ours(path, "--report", ", or pass --fresh to replace it" if command is Command.RUN else "")


def journal_header(path: Path) -> Header | None:
    """Only the journal's first line: which job it belongs to (None: no readable journal)."""
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return _header(f.readline())
    except OSError:
        return None


def damaged(journal: Path) -> bool:
    """True when `journal` is a file with something in it but no header a journal starts with: a
    journal whose first line was cut or edited, not a missing one (nor a planted symlink)."""
    try:
        info = journal.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0 and journal_header(journal) is None


def read_journal(path: Path) -> tuple[Header | None, dict[int, Row]]:
    """The journal's header (None: none readable) and its rows by counter, in first-seen order.

    Later lines win, except that a counter done for the journal's job stays done and an answer
    stands until another answer replaces it (see `_stands`). A line cut short by a kill is skipped.
    """
    if path.exists() and not path.is_file():
        return None, {}  # a FIFO or a device would block or never end
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = _header(f.readline())
            if header is None:
                return None, {}
            done = header.job.done_statuses if header.command is Command.RUN else frozenset()
            rows: dict[int, Row] = {}
            for line in f:
                row = _row(line)
                if row is None:
                    continue
                old = rows.get(row.counter_id)
                if old is None or not _stands(old, row, done):
                    rows[row.counter_id] = row
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None, {}
    return header, rows


def _stands(old: Row, new: Row, done: frozenset[Status]) -> bool:
    """True when `old` stays against `new`: a done counter stays done, and an answer (a failure too)
    stays until another answer replaces it; a row without one (deferred: cut short by the quota, a
    stop or an interruption) never does, so a failure keeps its cause and its time."""
    if old.status in done and new.status not in done:
        return True
    return old.status is not Status.DEFERRED and new.status is Status.DEFERRED


def _header(line: str) -> Header | None:
    try:
        data = json.loads(line)
        version = data["bulk_enable_journal"]
        job = Job(Window(data["window"]), bool(data["enable"]))
        if version == 1:
            return Header(Command.RUN, job)
        delimiter = data.get("delimiter", ",")
        return Header(Command(data["command"]), job, delimiter if delimiter in (",", ";", "\t") else ",")
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


_TEXT_FIELDS = ("label", "account", "error_type", "message", "at", "since", "full_on")


def _row(line: str) -> Row | None:
    """One journal line as a Row; None for anything else (cut short, hand-edited, hostile)."""
    try:
        data = json.loads(line)
        if "finished_at" in data:  # a version-1 journal
            data["at"] = data.pop("finished_at")
        data["status"] = Status(data["status"])
        row = Row(**data)
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: `[[[[...` nested deep
        return None
    whole = [row.counter_id, row.attempts, row.http_status, row.days]
    if any(type(v) is not int for v in whole[:2]) or any(
        v is not None and type(v) is not int for v in whole[2:]
    ):
        return None  # (bool is an int to isinstance: `type` keeps `true` out)
    if row.counter_id <= 0 or not all(isinstance(getattr(row, name), str) for name in _TEXT_FIELDS):
        return None
    if type(row.final) is not bool or not escaped(row.error_type):
        return None  # an error type is the client's cleaned text, shown as it is in the summaries
    if any(SURROGATE.search(getattr(row, name)) for name in _TEXT_FIELDS):
        return None  # the journal is written with lone surrogates replaced: not one of its lines
    return row


def _line(row: Row) -> bytes:
    values = {name: getattr(row, name) for name in ROW_FIELDS}
    compact = {k: v for k, v in values.items() if k in ("counter_id", "status") or v != _DEFAULTS.get(k)}
    return (json.dumps(compact, ensure_ascii=False) + "\n").encode("utf-8", "replace")


class ReportFile:
    """One report for the length of one job: lock, journal (if `journaled`), renders. A context manager."""

    def __init__(
        self,
        path: Path,
        command: Command,
        job: Job,
        *,
        delimiter: str = ",",
        fresh: bool = False,
        journaled: bool = True,
    ) -> None:
        check_name(path, "--report")
        self.path = path
        self.header = Header(command, job, delimiter)
        self.columns = COLUMNS[command]
        self.fresh = fresh
        self.journaled = journaled
        self.journal = journal_path(path)
        self.previous: dict[int, Row] = {}  # rows of earlier runs of the same job
        self._rows: dict[int, Row] = {}  # the report as it stands, in report order
        self.elsewhere = 0  # rows kept for counters outside this config
        self.renders = 0
        self.render_seconds = 0.0  # the last render's duration
        self.failed_renders = 0  # background renders that failed in a row
        self._fd = self._lock_fd = -1
        self._dirty = False
        self._render_lock = threading.Lock()
        self._generation = 0  # of the rows; a render never replaces a newer one
        self._rendered = -1

    def __enter__(self) -> ReportFile:
        check_target(self.path, self.header.command, self.fresh)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = open_lock(lock_path(self.path))
        except OSError as e:  # a path refused (2), unless the disk is full (3)
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)
            raise ReportError(
                f"{self.path}: cannot write the report here ({_why(e)})",
                exit_code=ExitCode.STOPPED if full else None,
            ) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise ReportError(
                f"{self.path}: another bulk-enable job{holder} is using this report: let it finish, then "
                "try again (a run may take another --report)"
            ) from None
        # Who holds it, for the message a second job gets (the lock itself is the flock, not this text).
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()} {self.header.command.value} {now_iso()}\n".encode(), 0)
        if self.journaled and not self.fresh:
            self.previous = self._read_previous()
        return self

    def __exit__(self, *exc: object) -> None:
        # The lock file stays: deleting it would let a third run lock a new file while a second
        # still holds the old one.
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

    @property
    def job(self) -> Job:
        return self.header.job

    @property
    def rows(self) -> Mapping[int, Row]:
        """The report as it stands, in report order (changed only through this object)."""
        return self._rows

    @property
    def written(self) -> bool:
        """True when the report on disk shows the rows as they stand (its last render went through)."""
        return self._rendered == self._generation

    def done(self, counter_id: int) -> bool:
        """True when an earlier run of this job already finished this counter."""
        row = self.previous.get(counter_id)
        return row is not None and row.status in self.job.done_statuses

    def failed_for_good(self, counter: Counter) -> bool:
        """True when an earlier run of this job got an answer a rerun cannot change for this counter
        (`held_back`)."""
        return held_back(self.previous.get(counter.id), counter)

    def standing(self, row: Row) -> Row:
        """`row`, unless the counter's row as it stands is an answer `row` must not replace (`_stands`)."""
        old = self.rows.get(row.counter_id)
        done = self.job.done_statuses if self.header.command is Command.RUN else frozenset()
        return old if old is not None and _stands(old, row, done) else row

    def begin(self, counters: Sequence[Counter], pending: Callable[[Counter], Row]) -> None:
        """Lay out the report: every counter of this config in order, then those kept from elsewhere."""
        rows: dict[int, Row] = {}
        for c in counters:
            old = self.previous.get(c.id)
            rows[c.id] = old if old is not None else pending(c)
        kept = {cid: row for cid, row in self.previous.items() if cid not in rows}
        self.elsewhere = len(kept)
        rows.update(kept)
        self.show(rows.values())
        if self.journaled:
            try:
                self._rewrite_journal()
            except ReportError as e:  # nothing sent yet: say so, and what to do
                raise ReportError(
                    f"{e}: nothing was sent; {AFTER_A_WRITE_FAILED}", exit_code=e.exit_code
                ) from None

    def show(self, rows: Iterable[Row]) -> None:
        """Take `rows` as the whole report (a layout, a plan, a journal rendered again); not journaled."""
        self._rows = {r.counter_id: r for r in rows}
        self._changed()

    def amend(self, row: Row) -> None:
        """Change one counter's row in the report only: the journal gets it when it is compacted."""
        self._rows[row.counter_id] = row
        self._changed()

    def record(self, row: Row) -> None:
        """Put one finished counter on disk now (unless an earlier answer stands against it)."""
        if self.standing(row) is not row:
            return
        self.amend(row)
        if self._fd >= 0:
            data = _line(row)
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError as e:
                raise _cannot_write(self.journal, "the journal", e) from None

    def compact(self) -> None:
        """Write the journal afresh from the rows as they stand, amendments included."""
        self._rewrite_journal()

    def finish(self) -> None:
        """Render the report one last time and compact the journal."""
        self.render()
        if self.journaled:
            self._rewrite_journal()

    def render(self) -> None:
        """Render the rows as they stand now (waits for a background render in progress)."""
        self._render(self._generation, list(self._rows.values()))

    async def keep_current(self, failing: Callable[[ReportError], None] = lambda _: None) -> None:
        """Re-render in the background while the job runs; cancel it when the job ends.

        A render that fails (a full disk, the path briefly a folder) is tried again on the next tick:
        the journal keeps every row meanwhile. When FAILED_RENDERS_SAID fail in a row, `failing` is
        told, once a job."""
        loop = asyncio.get_running_loop()
        said = False
        while True:
            await asyncio.sleep(max(RENDER_EVERY, RENDER_SHARE * self.render_seconds) - self.render_seconds)
            if not self._dirty:
                continue
            self._dirty = False
            snapshot = list(self._rows.values())
            done = loop.run_in_executor(None, self._render, self._generation, snapshot)
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                with contextlib.suppress(ReportError):  # the job's last render says it, if it fails too
                    await done  # let the render in progress finish before anyone renders again
                raise
            except ReportError as e:
                self._dirty = True  # again on the next tick, even with nothing new
                self.failed_renders += 1
                if self.failed_renders >= FAILED_RENDERS_SAID and not said:
                    said = True
                    failing(e)
            else:
                self.failed_renders = 0

    def _render(self, generation: int, rows: list[Row]) -> None:
        with self._render_lock:
            if generation < self._rendered:
                return
            started = time.perf_counter()
            try:
                render(self.path, rows, self.columns, self.header.delimiter)
            except OSError as e:
                raise _cannot_write(self.path, "the report", e) from None
            self.render_seconds = time.perf_counter() - started
            self.renders += 1
            self._rendered = generation

    def _changed(self) -> None:
        self._generation += 1
        self._dirty = True

    def _rewrite_journal(self) -> None:
        """Write the whole journal afresh, swapped in atomically, and append to it from now on."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self._write_journal()
            self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        except OSError as e:
            raise _cannot_write(self.journal, "the journal", e) from None

    def _write_journal(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.journal.parent, prefix=f".{self.journal.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.header.line().encode())
                f.writelines(_line(r) for r in self._rows.values())
                f.flush()
                os.fsync(f.fileno())  # on disk before it replaces the old journal: a crash keeps one of them
            os.replace(tmp, self.journal)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _read_previous(self) -> dict[int, Row]:
        header, rows = read_journal(self.journal)
        if header is None:
            return {}
        if header.command is not self.header.command or header.job != self.job:
            return {}
        return rows


def rows_of(path: Path) -> tuple[Header, list[Row]]:
    """A report's header and rows from its journal (for `bulk-enable report`)."""
    check_name(path, "REPORT")  # `report REPORT`: a path given as is, not with --report
    journal = journal_path(path)
    header, rows = read_journal(journal)
    if header is None:
        if journal.exists():
            raise ReportError(f"{journal}: not a bulk-enable journal; nothing to render")
        if path.suffix.lower() in (".yaml", ".yml", ".txt"):
            from ._job_files import job_report

            raise ReportError(
                f"{path} looks like a counters file: give the report's path, e.g. "
                f"{job_report(path, Job(), Command.RUN)}"
            )
        raise ReportError(
            f"{path}: no journal beside it ({journal.name}); only a `run` or `status` report can be "
            "rendered again"
        )
    return header, list(rows.values())


def render_again(path: Path) -> list[Row]:
    """Render a report from its journal, under its lock; no request, no token."""
    header, rows = rows_of(path)
    with ReportFile(path, header.command, header.job, delimiter=header.delimiter, journaled=False) as report:
        report.show(rows)
        report.render()
    return rows


def render_copy(path: Path, copy: Path, delimiter: str | None = None) -> list[Row]:
    """The report's journal rendered to another file, in the format its name says (a workbook from a
    CSV run): no request, no token, and the run's own report and journal stay as they are."""
    header, rows = rows_of(path)
    check_place(copy, "--as")
    if copy.resolve() in (path.resolve(), journal_path(path).resolve()):
        raise ReportError(f"--as {copy}: that is the report itself: give the copy another name")
    if journal_header(journal_path(copy)) is not None:  # a job's own report: its journal would disagree
        raise ReportError(
            f"--as {copy}: that is the report of another job (it has a journal): give another name"
        )
    check_ours(copy, "--as")
    if delimiter is None:  # the report's own, except that a tab belongs in a .tsv, not a .csv
        delimiter = "," if header.delimiter == "\t" else header.delimiter
    try:
        render(copy, rows, COLUMNS[header.command], delimiter)
    except OSError as e:
        raise _cannot_write(f"--as {copy}", "it", e) from None
    return rows


def _holder(fd: int) -> str:
    """` (pid 123, `run` since 2026-11-29T09:00:00Z)` from a lock file, or nothing if it does not say."""
    try:
        pid, command, since = os.pread(fd, 200, 0).decode("ascii").split()
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    return f" (pid {int(pid)}, `{command}` since {since})" if pid.isdigit() and command.isalpha() else ""


def _cannot_write(where: Path | str, what: str, e: OSError) -> ReportError:
    """A file at an accepted path could not be written (a full disk): the job stops, exit 3."""
    return ReportError(f"{where}: cannot write {what} ({_why(e)})", exit_code=ExitCode.STOPPED)


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "it is a symbolic link"
    return e.strerror or str(e)


def pending_row(message: str) -> Callable[[Counter], Row]:
    """Rows for counters not sent yet: `deferred` until they are."""

    def row(counter: Counter) -> Row:
        return Row.of(counter, Status.DEFERRED, message=message, at="")

    return row
