"""One job, one truth across days: a job found from any folder, run once at a time, its failures kept
with their cause, failures for good left for a human, a clear "complete", the report's outlook, and
the unattended recipes of docs/unattended.md run as written."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from bulk_enable import _model
from bulk_enable._errors import UsageError
from bulk_enable._job_files import JobLock, lock_path
from bulk_enable._messages import AGAIN, fix_for, summary_lines
from bulk_enable._model import Command, Job, Row, Status, Stop, StopCause, Summary
from bulk_enable._outlook import outlook
from bulk_enable._parser import ArgError as _ArgError
from bulk_enable._parser import build_parser as _build_parser
from bulk_enable._parser import parse as _parse
from bulk_enable._parser import subparsers as _subparsers
from bulk_enable._policy import Policy
from bulk_enable._progress import CliEvents
from bulk_enable._report import journal_path

from .conftest import (
    REPO,
    TOKEN,
    SandboxFactory,
    cli,
    cli_env,
    journal_statuses,
    read_report,
    run_against,
    start_process,
    statuses,
    write_config,
)
from .test_e2e import wait_for

TOKEN_B = "token-b-51c2e8aa"
FAST = ("--rps", "1000", "--backoff", "0.01")


def first_line(report: Path) -> str:
    return report.read_text(encoding="utf-8-sig").splitlines()[0]


def json_of(done: Any) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


# --- the job belongs to its config ---------------------------------------------------------------------


def test_a_run_from_another_folder_finds_the_same_job(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd elsewhere && run /srv/jobs/all.yaml`: the job's report is beside the config, so a run from
    a second folder (or by a relative path) sends nothing already done and leaves no ./reports."""
    box = sandbox_factory(ip_rps=0)
    jobs, first, second = tmp_path / "jobs", tmp_path / "first", tmp_path / "second"
    for folder in (jobs, first, second):
        folder.mkdir()
    config = write_config(jobs / "all.yaml", range(1, 21))
    monkeypatch.chdir(first)
    done = cli("run", config, "--api-base", box.url, *FAST)
    assert done.returncode == 0, done.stderr
    assert statuses(jobs / "reports" / "all.csv") == dict.fromkeys(range(1, 21), "enabled")
    sent = box.stats()["requests"]
    for folder, given in ((second, config), (jobs, Path("all.yaml"))):
        monkeypatch.chdir(folder)
        again = cli("run", given, "--api-base", box.url, *FAST)
        assert again.returncode == 0 and "20 counters were already done" in again.stdout, again.stderr
        assert f"report: {given.parent / 'reports' / 'all.csv'}" in again.stdout
    assert box.stats()["requests"] == sent
    assert not (first / "reports").exists() and not (second / "reports").exists()


def test_a_config_folder_that_cannot_take_the_reports_is_one_line_naming_report(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """No place for reports/ beside the config: one line naming --report, exit 2, nothing sent; with
    --report the job runs."""
    box = sandbox_factory()
    config = write_config(tmp_path / "all.yaml", [1, 2])
    (tmp_path / "reports").write_text("not a folder\n")
    done = cli("run", config, "--api-base", box.url)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is a file, not a folder: give --report PATH" in done.stderr
    assert box.stats()["requests"] == 0
    assert cli("run", config, "--api-base", box.url, "--report", tmp_path / "r.csv").returncode == 0


def test_results_in_the_old_place_are_pointed_at_not_sent_again(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports used to go to ./reports of the folder the command ran from: a run that finds its job
    there and nothing beside the config says how to move them (exit 2, nothing sent), then goes on."""
    box = sandbox_factory(ip_rps=0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    write_config(tmp_path / "jobs" / "all.yaml", [1, 2, 3])
    assert cli("run", "jobs/all.yaml", "--api-base", box.url, "--report", "reports/all.csv").returncode == 0
    sent = box.stats()["requests"]
    done = cli("run", "jobs/all.yaml", "--api-base", box.url)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "mv reports/all.csv reports/all.csv.journal jobs/reports/" in done.stderr
    assert "--report reports/all.csv" in done.stderr and box.stats()["requests"] == sent
    (tmp_path / "jobs" / "reports").mkdir(exist_ok=True)  # (the job's lock is there already)
    for name in ("all.csv", "all.csv.journal"):
        (tmp_path / "reports" / name).rename(tmp_path / "jobs" / "reports" / name)
    moved = cli("run", "jobs/all.yaml", "--api-base", box.url)
    assert moved.returncode == 0 and "3 counters were already done" in moved.stdout
    assert box.stats()["requests"] == sent


# --- one job at a time -------------------------------------------------------------------------------


@pytest.mark.process
def test_a_second_run_of_the_job_is_refused_whatever_its_report(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """While `run all.yaml` runs, `run all.yaml --report twice.xlsx` is refused at once (exit 2, one
    line naming the running job's PID and report), having sent nothing."""
    box = sandbox_factory(tokens={TOKEN: "agency", TOKEN_B: "login-b"}, latency=0.3, ip_rps=0)
    config = write_config(tmp_path / "all.yaml", range(1, 101))
    running = start_process("run", config, "--api-base", box.url)
    try:
        lock = lock_path(config, Command.RUN, Job())
        wait_for(lambda: lock.exists() and f'"pid": {running.pid}' in lock.read_text())
        twice = tmp_path / "twice.xlsx"
        done = cli(
            "run", config, "--report", twice, "--api-base", box.url, env=cli_env(YANDEX_METRICA_TOKEN=TOKEN_B)
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"is already running (pid {running.pid} since" in done.stderr
        assert f"report {tmp_path / 'reports' / 'all.csv'}" in done.stderr and "sent nothing" in done.stderr
        assert "login-b" not in box.stats()["requests_by_login"]
        assert not twice.exists() and not (tmp_path / "twice.xlsx.journal").exists()
    finally:
        running.send_signal(signal.SIGINT)
        running.wait(30)
    assert running.returncode == 130


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["run", "--report", "{tmp}/other.csv"], True),
        (["run", "--dry-run"], False),  # a plan is its own command
        (["run", "--window", "conversions"], False),
        (["run", "--disable"], False),
        (["status"], False),
        (["check"], False),
    ],
)
def test_the_job_lock_is_the_configs_command_window_and_action(
    tmp_path: Path, sandbox_factory: SandboxFactory, args: list[str], refused: bool
) -> None:
    """A run holds its config's `run` of that window and action, not the config's other jobs."""
    box = sandbox_factory()
    config = write_config(tmp_path / "all.yaml", [1])
    command, *rest = (a.format(tmp=tmp_path) for a in args)
    with JobLock(config, Command.RUN, Job(), tmp_path / "held.csv"):
        done = cli(command, config, *rest, "--api-base", box.url)
    assert (done.returncode == 2) is refused, done.stderr
    assert (f"(pid {os.getpid()} since" in done.stderr) is refused
    assert (box.stats()["requests"] == 0) is refused


def test_a_config_folder_that_cannot_be_written_locks_in_a_folder_of_the_users_own(tmp_path: Path) -> None:
    """No room beside the config: the job's lock goes to the user's own folder in the temporary
    directory, keyed by the config's real path, and still keeps a second run out."""
    config = write_config(tmp_path / "all.yaml", [1])
    (tmp_path / "reports").write_text("not a folder\n")
    lock = lock_path(config, Command.RUN, Job())
    assert lock.parent == Path(tempfile.gettempdir()) / f"bulk-enable-{os.getuid()}"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "reports").write_text("not a folder either\n")
    elsewhere = lock_path(write_config(tmp_path / "other" / "all.yaml", [1]), Command.RUN, Job())
    assert elsewhere.parent == lock.parent and elsewhere != lock
    with (
        JobLock(config, Command.RUN, Job(), tmp_path / "r.csv"),
        pytest.raises(UsageError, match="already running"),
    ):
        JobLock(tmp_path / "." / "all.yaml", Command.RUN, Job(), tmp_path / "s.csv").__enter__()


# --- failures: kept, and left for a human when they are for good ----------------------------------------


def test_a_denied_counter_keeps_its_cause_through_a_rerun_cut_short_by_the_quota(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counter 3 failed access_denied; a rerun that retries it is cut short by the daily quota: the row
    still says failed, access_denied, its message and its time; `failed` in --json stays 1."""
    box = sandbox_factory(fixed={3: "access_denied"}, daily_limit=3, ip_rps=0)
    config = write_config(tmp_path / "all.yaml", [1, 2, 3])
    report = tmp_path / "r.csv"
    first = run_against(box, config, report, "--json", *FAST)
    before = {r["counter_id"]: r for r in read_report(report)}["3"]
    assert (before["status"], before["error_type"]) == ("failed", "access_denied")
    later = _model._iso_second(int(time.time()) + 3600)  # a row written again would show this time
    monkeypatch.setattr(_model, "now_iso", lambda: later)
    second = run_against(box, config, report, "--json", "--retry-failed", *FAST)
    assert second.returncode == 3 and json_of(second)["stops"] == {"default": "daily_quota"}
    assert box.stats()["quota_answers"]["quota_requests_by_uid"] >= 1  # it was retried, and cut short
    assert {r["counter_id"]: r for r in read_report(report)}["3"] == before
    assert json_of(first)["counts"]["failed"] == json_of(second)["counts"]["failed"] == 1


def test_a_failure_journaled_without_final_is_asked_again_once(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A failure journaled before rows carried `final` (an older version's journal) counts as a fault:
    the next run asks the API again, once; its answer then stands and the run after sends nothing."""
    box = sandbox_factory(fixed={3: "access_denied"}, ip_rps=0)
    config = write_config(tmp_path / "all.yaml", [1, 2, 3])
    report = tmp_path / "r.csv"
    assert run_against(box, config, report, *FAST).returncode == 1
    journal = journal_path(report)
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    assert sum('"final": true' in line for line in lines) == 1  # counter 3's refusal
    journal.write_text("".join(line.replace(', "final": true', "") for line in lines), encoding="utf-8")
    writes = box.stats()["write_requests"]
    assert run_against(box, config, report, *FAST).returncode == 1
    assert box.stats()["write_requests"] == writes + 1
    assert run_against(box, config, report, *FAST).returncode == 1
    assert box.stats()["write_requests"] == writes + 1
    assert statuses(report) == {1: "enabled", 2: "enabled", 3: "failed"}


def test_a_kill_after_the_breaker_stops_an_account_keeps_its_denials_retryable(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token cannot write: the breaker stops the account after a few access_denied, which are the
    token's, not the counters'. They reach the journal as `deferred` when the account's work ends, not
    when the whole run does: killed before that (here: finish() never compacts), a rerun with a token
    that can write sends them, without --retry-failed."""
    from bulk_enable._report import ReportFile

    box = sandbox_factory(write_denied_tokens=[TOKEN], ip_rps=0)
    config = write_config(tmp_path / "all.yaml", range(1, 41))
    report = tmp_path / "r.csv"
    with monkeypatch.context() as patched:
        patched.setattr(ReportFile, "finish", ReportFile.render)  # the kill: no compaction at the end
        assert run_against(box, config, report, *FAST).returncode == 3
    assert "failed" not in journal_statuses(report).values()
    box.grant_write(TOKEN)
    assert run_against(box, config, report, *FAST).returncode == 0
    assert set(statuses(report).values()) == {"enabled"}


def test_a_failure_on_faults_keeps_its_cause_through_a_rerun_cut_short_by_the_quota(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Counters that gave up on 503s are retried by the rerun; those it cannot reach before the daily
    quota keep `failed`, backend_error and their first message, not `deferred`."""
    faulty = sandbox_factory(fault_rate=1.0, faults=["backend_error"], ip_rps=0)
    config = write_config(tmp_path / "all.yaml", [1, 2, 3])
    report = tmp_path / "r.csv"
    first = run_against(faulty, config, report, "--max-attempts", "2", *FAST)
    before = {r["counter_id"]: r for r in read_report(report)}
    assert {r["error_type"] for r in before.values()} == {"backend_error"}
    quota = sandbox_factory(daily_limit=1, ip_rps=0)
    second = run_against(quota, config, report, *FAST)
    after = {r["counter_id"]: r for r in read_report(report)}
    assert sorted(r["status"] for r in after.values()) == ["enabled", "failed", "failed"]
    assert all(r == before[cid] for cid, r in after.items() if r["status"] == "failed")
    assert first.returncode == second.returncode == 3  # faults are work left, not "complete"


def test_a_rerun_skips_failures_for_good_unless_retry_failed(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Failures for good (the API's own refusals) are not sent again, said once with the option that
    sends them; --retry-failed does; the job is complete either way."""
    refusals = ("access_denied", "not_found", "counter_in_connect", "invalid_parameter", "success_false")
    box = sandbox_factory(fixed=dict(zip(range(2, 7), refusals, strict=True)), ip_rps=0)
    config = write_config(tmp_path / "all.yaml", range(1, 9))
    report = tmp_path / "r.csv"
    first = run_against(box, config, report, "--json", *FAST)
    assert first.returncode == 1 and box.stats()["write_requests"] == 8
    assert (json_of(first)["complete"], json_of(first)["left"]) == (True, 0)
    second = run_against(box, config, report, "--json", *FAST)
    assert second.returncode == 1 and box.stats()["write_requests"] == 8
    assert (
        "5 counters failed for good in earlier runs: not sent again (--retry-failed sends them"
        in second.stderr
    )
    assert json_of(second)["counts"] == {"enabled": 3, "failed": 5} and json_of(second)["complete"]
    third = run_against(box, config, report, "--retry-failed", *FAST)
    assert third.returncode == 1 and box.stats()["write_requests"] == 13


def test_a_multi_day_job_reaches_complete_and_then_sends_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """50 counters, 20 writes a day, two failures for good: a daily rerun is complete on day 3 (exit 1),
    `failed` never swings back, and the next run sends 0 requests."""
    box = sandbox_factory(daily_limit=20, fixed={7: "access_denied", 33: "not_found"}, ip_rps=0)
    config = write_config(tmp_path / "all.yaml", range(1, 51))
    days: list[tuple[int, int, bool, int]] = []
    while not days or not days[-1][2]:
        assert len(days) < 6, days
        done = run_against(box, config, tmp_path / "r.csv", "--json", *FAST)
        summary = json_of(done)
        days.append(
            (done.returncode, summary["counts"].get("failed", 0), summary["complete"], summary["left"])
        )
        box.reset_day()
    assert [code for code, *_ in days] == [3, 3, 1]
    failed = [n for _, n, *_ in days]
    assert failed == sorted(failed) and failed[-1] == 2
    assert days[-1][3] == 0 and days[0][3] == 30
    sent = box.stats()["requests"]
    after = run_against(box, config, tmp_path / "r.csv", "--json", *FAST)
    assert after.returncode == 1 and json_of(after)["complete"] and json_of(after)["requests"] == 0
    assert box.stats()["requests"] == sent and box.stats()["counters_written_twice"] == 0
    assert "complete: every counter is done or failed for good (2 failed)" in after.stderr


# --- status --until-done, and every `next:` line the tool prints ------------------------------------------


def test_status_until_done_finishes_across_a_reset(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """A login with 25 reads a day and 40 counters: `status --until-done` waits for the reset and reads
    them all, exit 0, with a few quota answers at most."""
    box = sandbox_factory(daily_limit=25, ip_rps=0)
    config = write_config(tmp_path / "all.yaml", range(1, 41))
    # Far enough ahead that the quota runs out before it even on busy cores (past it, the next reset
    # would be tomorrow's); the sandbox's day turns just before the announced reset.
    reset = time.time() + 3.0
    box.reset_day_at(reset - 0.2)
    reset_at = dt.datetime.fromtimestamp(reset, dt.UTC).strftime("%H:%M:%S.%f")
    report = tmp_path / "s.csv"
    done = cli(
        "status",
        config,
        "--report",
        report,
        "--api-base",
        box.url,
        "--until-done",
        "--quota-reset",
        reset_at,
        *FAST,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert set(statuses(report).values()) == {"short"} and len(statuses(report)) == 40
    assert box.stats()["quota_answers"].get("quota_requests_by_uid", 0) <= 3
    assert "waiting until" in done.stderr and "the quota has reset" in done.stderr


def _rows(command: Command, kind: str) -> list[Row]:
    """A handful of rows of one kind for a summary."""
    made = {
        "deferred": [Row(1, "", "a", Status.DEFERRED)],
        "denied": [Row(1, "", "a", Status.FAILED, 1, 403, "access_denied")],
        "faults": [Row(1, "", "a", Status.FAILED, 6, 503, "backend_error")],
        "both": [
            Row(1, "", "a", Status.FAILED, 1, 404, "not_found"),
            Row(2, "", "a", Status.FAILED, 2, None),
        ],
        "read_only": [Row(1, "", "a", Status.READ_ONLY), Row(2, "", "a", Status.NOT_FOUND)],
        "short": [Row(1, "", "a", Status.SHORT)],
        "done": [Row(1, "", "a", Status.FULL if command is Command.STATUS else Status.ENABLED)],
    }
    return made[kind]


def _summaries() -> list[tuple[Command, Summary, int | None]]:
    """Summaries for every branch of the next steps, for each command that prints them."""
    reset = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    out: list[tuple[Command, Summary, int | None]] = []
    for command in (Command.RUN, Command.CHECK, Command.STATUS):
        for kind in ("deferred", "denied", "faults", "both", "read_only", "short", "done"):
            out.append((command, Summary(command, Path("r.csv"), _rows(command, kind)), None))
        rows = _rows(command, "deferred")
        out.append((command, Summary(command, Path("r.csv"), rows, interrupted=True), None))
        out.append((command, Summary(command, Path("r.csv"), rows, report_error="disk full"), None))
        out.append((command, Summary(command, Path("r.csv"), rows, deferred_until=reset), None))
        for cause in StopCause:
            for budget in (None, 10):
                stops = {"a": Stop(cause)}
                summary = Summary(command, Path("r.csv"), rows, stops=stops, deferred_until=reset)
                out.append((command, summary, budget))
    return out


def _suggested(line: str, argv: list[str]) -> list[list[str]]:
    """The command lines a `next:` line suggests: the same command again, the same with an option
    added, or a command of its own in backquotes."""
    found = [shlex.split(snippet)[1:] for snippet in re.findall(r"`(bulk-enable [^`]*)`", line)]
    words = re.sub(r"`[^`]*`", "", line)
    if AGAIN in words or "try again" in words:
        found.append(argv)
    sub = _subparsers(_build_parser())[argv[0]]
    for option, value in re.findall(r"(--[a-z][a-z-]*)(?: (\S+))?", words):
        action = next((a for a in sub._actions if option in a.option_strings), None)
        takes = action is not None and action.nargs != 0
        found.append([*argv, option, *([value] if takes else [])])
    return found


def test_every_next_step_the_tool_prints_parses() -> None:
    """No `next:` line suggests a command or an option its command refuses: every one, for each
    command, stop cause and outcome, goes through the parser."""
    seen: set[str] = set()
    for command, summary, budget in _summaries():
        argv = [command.value, "jobs/all.yaml"]
        lines = [
            line for line in summary_lines(summary, Path("jobs/all.yaml"), budget) if line.startswith("next:")
        ]
        for line in lines:
            for suggested in _suggested(line, argv):
                try:
                    _parse(suggested)
                except _ArgError as e:
                    pytest.fail(f"{command.value}: {line!r} suggests {suggested}: {e}")
                seen.update(a for a in suggested if a.startswith("--"))
    for cause in StopCause:  # `counters` says what `fix_for` says, with "try again"
        line = "next: " + fix_for(cause).replace(AGAIN, "try again")
        for suggested in _suggested(line, ["counters"]):
            _parse(suggested)
    assert {"--until-done", "--retry-failed", "--api-base"} <= seen  # the walk saw the options it checks


# --- the report's outlook, and the bar's finish day ---------------------------------------------------


def test_report_says_per_account_what_is_done_failed_and_left_with_the_days_to_go(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`bulk-enable report REPORT`, with no request and no token: per account, done, failed by cause,
    left, and the days left at the job's pace; --json gives the same as one object."""
    box = sandbox_factory(
        tokens={TOKEN: "login-a", TOKEN_B: "login-b"}, daily_limit=10, fixed={3: "access_denied"}, ip_rps=0
    )
    config = tmp_path / "all.yaml"
    config.write_text(
        "accounts:\n"
        f"  - {{name: shop-a, token_env: TA, counters: [{', '.join(map(str, range(1, 26)))}]}}\n"
        "  - {name: shop-b, token_env: TB, counters: [101, 102, 103, 104, 105]}\n"
    )
    report = tmp_path / "r.csv"
    assert run_against(box, config, report, *FAST, env=cli_env(TA=TOKEN, TB=TOKEN_B)).returncode == 3
    sent = box.stats()["requests"]
    done = cli("report", report, env=cli_env(YANDEX_METRICA_TOKEN=""))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "account shop-a: 9 done, 1 failed (1 access_denied), 15 left; about 2 days more at 10 a day (its "
        "busiest day so far)",
        "account shop-b: 5 done, 0 left",
        "not complete: 15 counters left; about 2 days more at this pace",
    ]
    as_json = cli("report", report, "--json", "-q")
    assert as_json.stderr == "" and json.loads(as_json.stdout) == {
        "report": str(report),
        "command": "run",
        "counters": 30,
        "complete": False,
        "left": 15,
        "days_left": 2,
        "accounts": {
            "shop-a": {"done": 9, "failed": {"access_denied": 1}, "left": 15, "per_day": 10, "days_left": 2},
            "shop-b": {"done": 5, "failed": {}, "left": 0, "per_day": 5, "days_left": 0},
        },
    }
    assert box.stats()["requests"] == sent


def test_the_pace_is_the_busiest_day_of_the_journal() -> None:
    """Days left come from the rows' own times: the busiest day (a day the quota cut short is a full
    one), whatever the first and the last day did."""
    at = ["2026-11-01T10:00:00Z"] * 120 + ["2026-11-02T00:05:00Z"] * 300 + ["2026-11-03T00:05:00Z"] * 180
    rows = [Row(i, "", "a", Status.ENABLED, at=when) for i, when in enumerate(at, start=1)]
    rows += [Row(1000 + i, "", "a", Status.DEFERRED, at="2026-11-03T09:00:00Z") for i in range(1000)]
    account = outlook(rows, Command.RUN)["a"]
    assert (account.done, account.left, account.per_day, account.days_left) == (600, 1000, 300, 4)


@pytest.mark.parametrize(
    ("todo", "budget", "days_after_the_reset"),
    [(12_000, None, 1), (1_000, 300, 2), (10, None, None), (5_000, None, None)],
)
def test_the_bar_shows_the_finish_day_when_the_daily_quota_holds_the_job(
    monkeypatch: pytest.MonkeyPatch, todo: int, budget: int | None, days_after_the_reset: int | None
) -> None:
    """On a terminal: more counters for a login than its day's quota (5,000, or --max-requests), and
    the bar says the day the job should be done instead of tqdm's minutes; otherwise tqdm's own ETA."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    events = CliEvents(progress=True)
    events.started(todo)
    events.planned({"a": todo}, {"a": "login-1"}, Policy(max_requests=budget))
    events.finished(Row(1, "", "a", Status.ENABLED))
    events.tick()
    events.bar.refresh()
    shown = err.getvalue().rsplit("\r", 1)[-1]
    events.close()
    if days_after_the_reset is None:
        assert "done about" not in shown and "<" in shown  # tqdm's [elapsed<remaining]
        return
    now = dt.datetime.now(dt.UTC)
    reset = dt.datetime.combine(now.date(), dt.time(0, 0), dt.UTC) + dt.timedelta(days=1)
    day = (reset + dt.timedelta(days=days_after_the_reset)).date()
    assert f"done about {day}: {budget or '5000'} a day per login]" in shown and "<" not in shown


# --- the separator and the format stick to the job ---------------------------------------------------


def test_the_separator_carries_from_run_to_the_configs_other_commands(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`run --csv-delimiter ';'` once: `status` and `check` of the config write `;` too, until a
    command is given another."""
    box = sandbox_factory()
    config = write_config(tmp_path / "all.yaml", [1, 2])
    reports = tmp_path / "reports"
    assert cli("run", config, "--api-base", box.url, "--csv-delimiter", ";").returncode == 0
    assert cli("status", config, "--api-base", box.url).returncode == 0
    assert cli("check", config, "--api-base", box.url).returncode == 0
    assert first_line(reports / "all.status.csv").startswith("counter_id;")
    assert first_line(reports / "all.plan.csv").startswith("counter_id;")
    assert cli("status", config, "--api-base", box.url, "--csv-delimiter", ",").returncode == 0
    assert cli("status", config, "--api-base", box.url).returncode == 0
    assert first_line(reports / "all.status.csv").startswith("counter_id,")


def test_the_report_format_carries_to_the_configs_other_commands_and_reruns(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`run --report reports/all.xlsx` once: `status` writes all.status.xlsx, and a rerun without
    --report finds all.xlsx (nothing sent again)."""
    box = sandbox_factory()
    config = write_config(tmp_path / "all.yaml", [1, 2])
    reports = tmp_path / "reports"
    assert cli("run", config, "--api-base", box.url, "--report", reports / "all.xlsx").returncode == 0
    assert cli("status", config, "--api-base", box.url).returncode == 0
    assert statuses(reports / "all.status.xlsx") == {1: "short", 2: "short"}
    writes = box.stats()["write_requests"]
    again = cli("run", config, "--api-base", box.url)
    assert again.returncode == 0 and f"report: {reports / 'all.xlsx'}" in again.stdout
    assert box.stats()["write_requests"] == writes and not (reports / "all.csv").exists()
    with JobLock(config, Command.RUN, Job(), reports / "all.xlsx"):  # a run refused changes nothing
        assert cli("run", config, "--api-base", box.url, "--report", tmp_path / "x.tsv").returncode == 2
    assert cli("status", config, "--api-base", box.url).returncode == 0
    assert (reports / "all.status.xlsx").stat().st_mtime_ns > (reports / "all.xlsx").stat().st_mtime_ns
    assert not (reports / "all.status.tsv").exists()


def test_a_report_in_another_format_does_not_hide_the_jobs_journal(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A run into reports/all.csv, then one into a workbook elsewhere: the next run without --report
    goes on from all.csv (its journal is the job's), not from a new all.xlsx."""
    box = sandbox_factory()
    config = write_config(tmp_path / "all.yaml", [1, 2])
    assert cli("run", config, "--api-base", box.url).returncode == 0
    assert cli("run", config, "--api-base", box.url, "--report", tmp_path / "copy.xlsx").returncode == 0
    writes = box.stats()["write_requests"]
    again = cli("run", config, "--api-base", box.url)
    assert again.returncode == 0 and f"report: {tmp_path / 'reports' / 'all.csv'}" in again.stdout
    assert box.stats()["write_requests"] == writes and not (tmp_path / "reports" / "all.xlsx").exists()


# --- the recipes of docs/unattended.md, as written -----------------------------------------------------

PAGE = (REPO / "docs" / "unattended.md").read_text(encoding="utf-8")


def fenced(language: str) -> str:
    """The first ```language block of the page."""
    found = re.search(rf"```{language}\n(.*?)```", PAGE, re.S)
    assert found is not None, language
    return found.group(1)


@pytest.fixture
def page_job(tmp_path: Path, sandbox_factory: SandboxFactory) -> tuple[Path, Any, Path]:
    """The page's /srv/jobs in tmp_path (its config as written, a token file per account), a sandbox
    where each login may write 4 counters a day, and an empty folder to run in: (jobs, sandbox, cwd)."""
    jobs, cwd = tmp_path / "jobs", tmp_path / "cwd"
    (jobs / "tokens").mkdir(parents=True)
    cwd.mkdir()
    (jobs / "all.yaml").write_text(fenced("yaml"), encoding="utf-8")
    for name, token in (("shop-a", TOKEN), ("agency", TOKEN_B)):
        (jobs / "tokens" / f"{name}.token").write_text(token + "\n")
        (jobs / "tokens" / f"{name}.token").chmod(0o600)
    box = sandbox_factory(
        tokens={TOKEN: "shop-a-login", TOKEN_B: "agency"},
        counters="51000001-51000006",
        clients={"client-b-login": "52000001-52000006"},
        represents={"agency": ["client-b-login"]},
        daily_limit=4,
        ip_rps=0,
    )
    return jobs, box, cwd


def bare_env() -> dict[str, str]:
    """What a service or a cron line starts with: no token, no variable of the user's."""
    return {"PATH": os.environ["PATH"], "TZ": "UTC", "PYTHONUNBUFFERED": "1"}


@pytest.mark.process
def test_the_systemd_recipe_runs_a_two_account_job_with_token_files_to_complete(
    page_job: tuple[Path, Any, Path],
) -> None:
    """ExecStart of the page's unit, run from an empty folder with no environment: two accounts, each
    with its token_file; day 1 leaves work (the timer stays), day 2 ends with a status systemd counts
    as success (ExecStartPost stops the timer), complete; a further run sends nothing."""
    jobs, box, cwd = page_job
    unit = fenced("ini")
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    success = re.search(r"^SuccessExitStatus=(.*)$", unit, re.M)
    assert exec_start is not None and success is not None
    program, *args = shlex.split(exec_start.group(1))
    assert program == "/usr/local/bin/bulk-enable"
    argv = [sys.executable, "-m", "bulk_enable", *(a.replace("/srv/jobs", str(jobs)) for a in args)]
    argv += ["--api-base", box.url, "--backoff", "0.01"]
    stops_the_timer = {0, *map(int, success.group(1).split())}

    def day() -> tuple[int, dict[str, Any]]:
        done = subprocess.run(argv, env=bare_env(), cwd=cwd, capture_output=True, text=True, timeout=120)
        assert len(done.stdout.splitlines()) == 1, done.stdout  # -q --json: one JSON line (warnings: stderr)
        summary: dict[str, Any] = json.loads(done.stdout)
        box.reset_day()
        return done.returncode, summary

    first, summary = day()
    assert first == 3 and first not in stops_the_timer and not summary["complete"]
    assert summary["accounts"] == {
        "shop-a": {"enabled": 4, "deferred": 2},
        "client-b": {"enabled": 4, "deferred": 2},
    }
    second, summary = day()
    assert second in stops_the_timer and summary["complete"] and summary["left"] == 0
    assert (box.stats()["counters_written"], box.stats()["counters_written_twice"]) == (12, 0)
    third, summary = day()
    assert third in stops_the_timer and summary["requests"] == 0
    assert list(cwd.iterdir()) == [] and (jobs / "reports" / "all.csv").exists()


@pytest.mark.process
def test_the_cron_recipe_runs_daily_and_stops_once_complete(page_job: tuple[Path, Any, Path]) -> None:
    """The page's cron line through sh, each day from an empty folder with no environment: day 1 leaves
    work, day 2 completes the job and marks it, day 3 runs nothing at all."""
    jobs, box, cwd = page_job
    schedule = fenced("cron").strip()
    command = schedule.split(None, 5)[5]
    here = f"{shlex.quote(sys.executable)} -m bulk_enable run --api-base {box.url} --backoff 0.01"
    command = command.replace("/usr/local/bin/bulk-enable run", here).replace("/srv/jobs", str(jobs))
    log, marker = jobs / "all.log", jobs / "all.complete"
    outcomes = []
    for _ in range(3):
        subprocess.run(["sh", "-c", command], env=bare_env(), cwd=cwd, timeout=120, check=False)
        runs = [line for line in log.read_text().splitlines() if line.startswith("{")]  # (and warnings)
        outcomes.append((marker.exists(), len(runs)))
        box.reset_day()
    assert outcomes == [(False, 1), (True, 2), (True, 2)]
    last = json.loads(runs[-1])
    assert last["complete"] and (box.stats()["counters_written"], box.stats()["counters_written_twice"]) == (
        12,
        0,
    )
    assert list(cwd.iterdir()) == []
