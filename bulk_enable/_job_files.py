"""A job belongs to its config: where its files live, the lock that runs it once, its preferences.

Without --report, a job's files go beside its config, in `<config folder>/reports/`, so the same
config finds the same job from any folder (a cron line without `cd`). There too:
- `<config name>.<command>-<job>.lock` (flock, never deleted): one process runs a job at a time,
  whatever its report; the report's own lock still keeps two jobs off one report;
- `<config name>.prefs.json`: the separator and the report format last given to one of the
  config's commands, used by its other commands and reruns unless given again.
A config folder that cannot be written takes neither: the lock goes to a folder of the user's own
in the temporary directory, and the preferences are not kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import UsageError
from ._model import Command, Job, Window, now_iso
from ._report import (
    REPORT_SUFFIXES,
    RunJournal,
    check_suffix,
    check_target,
    default_report_path,
    journal_header,
    journal_path,
    open_lock,
    read_journal,
    run_journal,
)

if TYPE_CHECKING:
    from ._config import Config

log = logging.getLogger("bulk_enable")
REPORTS = "reports"
_DELIMITERS = (",", ";", "\t")


def job_folder(config: Path) -> Path:
    """`reports/` beside the config; the config's own folder when that already is a `reports/`
    folder (an earlier report given as the counters file)."""
    folder = config.parent
    return folder if folder.name == REPORTS else folder / REPORTS


def job_report(config: Path, job: Job, command: Command, suffix: str | None = None) -> Path:
    """The report of `command` for this config and job, without --report; never the config itself."""
    name = default_report_path(config, job, command).name
    path = (job_folder(config) / name).with_suffix(suffix or ".csv")
    if path.resolve() == config.resolve():  # `run reports/x.csv`: an earlier report as the job
        path = path.with_name(f"{path.stem}.again{path.suffix}")
    return path


def run_report(config: Path, job: Job) -> Path:
    """The usual report of `job`'s runs of this config: the one whose journal is there, whatever its
    format (the run's truth is its journal), else the one in the format last chosen."""
    usual = job_report(config, job, Command.RUN, preferences(config).suffix)
    if journal_header(journal_path(usual)) is None:
        kept = (job_report(config, job, Command.RUN, suffix) for suffix in REPORT_SUFFIXES)
        usual = next((p for p in kept if journal_header(journal_path(p)) is not None), usual)
    return usual


def runs_of(config: Path, window: Window) -> tuple[RunJournal | None, RunJournal | None]:
    """The journals of the runs that enable and that disable `window` for this config, in their usual
    reports (for `status`); None where there is none."""
    on, off = Job(window), Job(window, enable=False)
    return run_journal(run_report(config, on), on), run_journal(run_report(config, off), off)


def report_for(
    config: Config, job: Job, command: Command, given: Path | None, fresh: bool = False
) -> tuple[Path, Path]:
    """(the report to use, the job's usual report): `given`, else the usual one beside the config in
    the format last chosen for it. Refused: a usual report that cannot be written there, and a run
    whose results are still in the folder it is started from (where reports went before)."""
    if command is Command.RUN:
        usual = run_report(config.path, job)
    else:
        usual = job_report(config.path, job, command, preferences(config.path).suffix)
    if given is not None:
        if given.resolve() == config.path.resolve():
            raise UsageError(
                f"--report {given} is the counters file itself: give the report its own name, e.g. {usual}"
            )
        return _checked(given, command, fresh), usual
    why = _cannot_write(usual.parent)
    if why:
        raise UsageError(
            f"{config.path}: the job's reports go beside it, in {usual.parent}, but {why}: give --report "
            f"PATH (e.g. --report ~/{REPORTS}/{usual.name})"
        )
    earlier = Path(REPORTS) / usual.name
    if command is Command.RUN and not fresh and _moved(earlier, usual, job, config):
        raise UsageError(
            f"{earlier} has this job's earlier results (reports went to the folder the command ran from); "
            f"a job's reports now go beside its config: move them there first, `mv {earlier} "
            f"{journal_path(earlier)} {usual.parent}/`, or keep them with --report {earlier}"
        )
    return _checked(usual, command, fresh), usual


def _checked(report: Path, command: Command, fresh: bool) -> Path:
    """`report`, once it is sure to be one: not a folder, a device or another's file; .csv or .xlsx."""
    check_target(report, command, fresh)
    check_suffix(report, "--report")
    return report


def _moved(earlier: Path, usual: Path, job: Job, config: Config) -> bool:
    """True when `usual` holds nothing yet and `earlier` (a report in the old place) holds this job
    with some of this config's counters done."""
    if earlier.resolve() == usual.resolve() or journal_header(journal_path(usual)) is not None:
        return False
    header = journal_header(journal_path(earlier))
    if header is None or header.command is not Command.RUN or header.job != job:
        return False
    rows = read_journal(journal_path(earlier))[1]
    return any((r := rows.get(c.id)) is not None and r.status in job.done_statuses for c in config.counters)


def _cannot_write(folder: Path) -> str:
    """Why the job's files cannot be made in `folder` (made if need be); "" when they can."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return ""
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return ""


# --- the job's lock ----------------------------------------------------------------------------------


def _key(command: Command, job: Job) -> str:
    """`run-calls-enable`, `status-calls`: which of a config's jobs a lock is for."""
    if command is Command.STATUS:
        return f"{command.value}-{job.window.value}"
    return f"{command.value}-{job.window.value}-{'enable' if job.enable else 'disable'}"


def lock_path(config: Path, command: Command, job: Job) -> Path:
    """The job's lock file, by the config's real path: beside it, or (a folder that cannot be
    written) in a folder of this user's own in the temporary directory."""
    real = config.resolve()
    folder = job_folder(real)
    name = f"{real.name}.{_key(command, job)}.lock"
    if not _cannot_write(folder):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            return folder / name
    digest = hashlib.sha256(str(real).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"bulk-enable-{os.getuid()}"
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        held = os.lstat(private)
    except OSError as e:
        raise UsageError(f"{private}: cannot make the job's lock there ({e.strerror or e})") from None
    if not stat.S_ISDIR(held.st_mode) or held.st_uid != os.getuid():  # planted by someone else
        raise UsageError(
            f"{private}: not a folder of this user's own: remove it, or keep the config in a folder you "
            "can write"
        )
    return private / f"{digest}.{name}"


class JobLock:
    """Held while a job runs: a second run of the same config and job is refused before anything is
    sent, whatever its report, naming the running one (its PID and report). A context manager."""

    def __init__(self, config: Path, command: Command, job: Job, report: Path) -> None:
        self.config, self.command, self.job, self.report = config, command, job, report
        self.path = lock_path(config, command, job)
        self._fd = -1

    def __enter__(self) -> JobLock:
        try:
            fd = open_lock(self.path)
        except OSError as e:
            raise UsageError(
                f"{self.path}: cannot lock the job ({e.strerror or e}); nothing was sent"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            from ._messages import job_words

            raise UsageError(
                f"{self.config}: this job (`{self.command.value}`, {job_words(self.job)}) is already "
                f"running{holder}: let it finish; this one sent nothing"
            ) from None
        self._fd = fd
        # Who holds it, for the message a second run gets (the lock itself is the flock, not this text).
        held = {"pid": os.getpid(), "report": str(self.report.absolute()), "since": now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(held, ensure_ascii=False) + "\n").encode("utf-8", "replace"), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:  # the file stays: deleting it would let a third run lock a new one
            os.close(self._fd)
            self._fd = -1


def _holder(fd: int) -> str:
    """` (pid 123 since 2026-11-29T09:00:00Z, report /srv/jobs/reports/all.csv)`, or nothing."""
    from ._untrusted import PLAIN

    try:
        held = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        pid, report, since = int(held["pid"]), str(held["report"]), str(held["since"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return ""
    return f" (pid {pid} since {PLAIN.clean(since, 40)}, report {PLAIN.clean(report, 300)})"


# --- preferences -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preferences:
    """What one command of a config was last given, for the others: None where nothing was."""

    delimiter: str | None = None  # the CSV report's separator
    suffix: str | None = None  # the report's format: .csv, .tsv or .xlsx


def _prefs_path(config: Path) -> Path:
    real = config.resolve()
    return job_folder(real) / f"{real.name}.prefs.json"


def preferences(config: Path) -> Preferences:
    """The config's report preferences (none when there are none, or they cannot be read)."""
    try:
        fd = os.open(_prefs_path(config), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO would hang every command of the config
                return Preferences()
            data = json.loads(f.read(4096))
    except (OSError, ValueError, RecursionError):  # junk, or `[[[[...` nested deep: no preferences
        return Preferences()
    if not isinstance(data, dict):
        return Preferences()
    delimiter, suffix = data.get("delimiter"), data.get("suffix")
    return Preferences(
        delimiter if delimiter in _DELIMITERS else None, suffix if suffix in REPORT_SUFFIXES else None
    )


def remember(config: Path, delimiter: str | None, report: Path | None) -> None:
    """Keep the separator and the report's format a command was given, for the config's other
    commands and reruns; best effort (a folder that cannot be written keeps nothing)."""
    suffix = (
        report.suffix.lower() if report is not None and report.suffix.lower() in REPORT_SUFFIXES else None
    )
    if delimiter is None and suffix is None:
        return
    old = preferences(config)
    new = Preferences(delimiter or old.delimiter, suffix or old.suffix)
    if new == old:
        return
    path = _prefs_path(config)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"delimiter": new.delimiter, "suffix": new.suffix}, f)
        os.replace(tmp, path)
    except OSError as e:
        log.debug("%s: report preferences not kept (%s)", path, e.strerror or e)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
