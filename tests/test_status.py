"""`bulk-enable status`: each counter's real window state from the join-threshold reads, in-process."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from bulk_enable import Counter, Status
from bulk_enable._jobs import state_row
from bulk_enable._model import STATUS_COLUMNS, Window

from .conftest import TOKEN, SandboxFactory, cli, read_report, write_config

TODAY = dt.date(2026, 11, 29)
C = Counter(1, "", "default")


@pytest.mark.parametrize(
    ("days_ago", "status", "full_on"),
    [
        (40, Status.FULL, ""),
        (21, Status.FULL, ""),
        (20, Status.GROWING, "2026-11-30"),
        (5, Status.GROWING, "2026-12-15"),
        (2, Status.GROWING, "2026-12-18"),
        (1, Status.SHORT, ""),
        (0, Status.SHORT, ""),
        (-1, Status.SHORT, ""),
    ],
)
def test_state_from_the_window_start(days_ago: int, status: Status, full_on: str) -> None:
    """21+ days: full; 2 to 20: growing, full on since + 21; 1 or less: short (a day ahead: 0 days)."""
    since = TODAY - dt.timedelta(days=days_ago)
    row = state_row(C, since, TODAY)
    days = max(0, days_ago)
    assert (row.status, row.days, row.full_on, row.since) == (status, days, full_on, since.isoformat())


@pytest.mark.parametrize(
    ("window", "joined"), [(Window.CALLS, "calls"), (Window.CONVERSIONS, "offline conversions")]
)
def test_a_full_window_names_what_it_joins(window: Window, joined: str) -> None:
    """`status --window conversions` does not say calls."""
    row = state_row(C, TODAY - dt.timedelta(days=30), TODAY, window=window)
    assert row.message == f"{joined} up to 21 days old join visits"


def test_a_short_window_says_enabling_again_is_harmless() -> None:
    """The message for `short` names both causes and that a repeat does no harm."""
    row = state_row(C, TODAY - dt.timedelta(days=1), TODAY)
    assert "not extended" in row.message and "last day" in row.message and "harmless" in row.message


@pytest.mark.parametrize("threshold_format", ["date", "datetime"])
def test_status_reads_full_growing_and_short(
    tmp_path: Path, sandbox_factory: SandboxFactory, threshold_format: str
) -> None:
    """Counters enabled 30, 5 and 0 days ago (and one never) read full, growing and short, whichever
    shape the date comes in; one read each, never a write; the exact columns."""
    box = sandbox_factory(
        counters="1-10", enabled_days_ago={1: 30, 2: 5, 3: 0}, threshold_format=threshold_format, ip_rps=0
    )
    config = write_config(tmp_path / "job.yaml", [1, 2, 3, 4])
    report = tmp_path / "s.csv"
    done = cli("status", config, "--report", report, "--api-base", box.url, "--json")
    assert done.returncode == 0, done.stderr
    stats = box.stats()
    assert stats["write_requests"] == 0 and stats["state_reads"] == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert report.read_text(encoding="utf-8-sig").splitlines()[0] == ",".join(STATUS_COLUMNS)
    rows = {r["counter_id"]: r for r in read_report(report)}
    today = dt.datetime.now(dt.UTC).date()
    assert [rows[k]["status"] for k in "1234"] == ["full", "growing", "short", "short"]
    assert rows["2"]["days"] == "5" and rows["2"]["full_on"] == (today + dt.timedelta(days=16)).isoformat()
    assert rows["1"]["days"] == "21" and rows["1"]["checked_at"]
    summary = json.loads(done.stdout)
    assert summary["counts"] == {"full": 1, "growing": 1, "short": 2} and summary["command"] == "status"
    assert f"the last reaches 21 days on {rows['2']['full_on']}" in done.stderr


def test_status_fails_a_counter_on_an_unexpected_answer_and_goes_on(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A counter not visible fails with the API's error; the others are read; exit 1."""
    box = sandbox_factory(counters="1-10", fixed={2: "not_found"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    done = cli("status", config, "--report", tmp_path / "s.csv", "--api-base", box.url)
    assert done.returncode == 1
    rows = read_report(tmp_path / "s.csv")
    assert [r["status"] for r in rows] == ["short", "failed", "short"]
    assert rows[1]["error_type"] == "not_found"


def test_status_stops_on_a_budget_and_defers_the_rest(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """--max-requests holds for status too: the rest are deferred, exit 3."""
    box = sandbox_factory(counters="1-50", ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 51))
    done = cli(
        "status", config, "--report", tmp_path / "s.xlsx", "--api-base", box.url, "--max-requests", "7"
    )
    assert done.returncode == 3
    got = [r["status"] for r in read_report(tmp_path / "s.xlsx")]
    assert got.count("short") == 7 and got.count("deferred") == 43
    assert box.stats()["requests"] == 7


def test_default_status_report_name(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --report: reports/<config>.status.csv, so it never overwrites the run's report."""
    box = sandbox_factory(counters="1-10", ip_rps=0)
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path / "job.yaml", [1])
    assert cli("status", config, "--api-base", box.url).returncode == 0
    assert (tmp_path / "reports" / "job.status.csv").exists()
    assert not (tmp_path / "reports" / "job.csv").exists()
    assert Status.SHORT.value == read_report(tmp_path / "reports" / "job.status.csv")[0]["status"]


@pytest.mark.server
@pytest.mark.parametrize(
    ("date", "said"), [("9999-12-31", "in the future"), ("0001-01-01", "before Metrica")]
)
def test_a_window_starting_in_the_future_fails_the_counter(tmp_path: Path, date: str, said: str) -> None:
    """An answer dated far in the future (or before 2008) is not a state: that counter fails, the
    others are read."""
    from aiohttp import web

    from .conftest import serve_app

    async def state(request: web.Request) -> web.Response:
        return web.json_response({"date": date if request.match_info["id"] == "2" else "2020-01-01"})

    app = web.Application()
    app.router.add_get("/management/v1/counter/{id}/offline_conversions/{method}", state)
    config = write_config(tmp_path / "job.yaml", [1, 2])
    with serve_app(app) as url:
        done = cli("status", config, "--report", tmp_path / "s.csv", "--api-base", url)
    assert done.returncode == 1
    rows = read_report(tmp_path / "s.csv")
    assert [r["status"] for r in rows] == ["full", "failed"]
    assert rows[1]["error_type"] == "unexpected_answer" and said in rows[1]["message"]


@pytest.mark.parametrize(
    ("run_window", "refused"), [("calls", True), ("conversions", False)], ids=["its run", "another job's run"]
)
def test_a_short_window_the_run_could_not_extend_is_not_sent_again(
    tmp_path: Path, sandbox_factory: SandboxFactory, run_window: str, refused: bool
) -> None:
    """A counter in Connect reads `short` to `status`: when the job's run was refused it, the row says
    why and the next step is a fix in Metrica, not a rerun that would fail the same way."""
    box = sandbox_factory(counters="1-10", fixed={3: "counter_in_connect"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    assert cli("run", config, "--window", run_window, "--api-base", box.url).returncode == 1
    done = cli("status", config, "--api-base", box.url)
    assert done.returncode == 0, done.stderr
    rows = {r["counter_id"]: r for r in read_report(tmp_path / "reports" / "job.status.csv")}
    assert {k: r["status"] for k, r in rows.items()} == {"1": "short", "2": "short", "3": "short"}
    assert (rows["3"]["error_type"] == "counter_in_connect") is refused
    shown = "not extended: job.csv has it as counter_in_connect: Counter is in Connect; sending it again"
    assert rows["3"]["message"].startswith(shown) is refused
    fix = (
        "1 short counter the run could not change (counter_in_connect): fix it first (Metrica does not change"
    )
    assert (fix in done.stdout) is refused
    if refused:  # 1 and 2 were enabled by that run today
        assert "2 short counters the run enabled in the last 2 days: normal" in done.stdout
    else:  # no run of this job to read them by
        assert "`short` days later: save those IDs as short.txt" in done.stdout


def test_an_error_type_from_a_tampered_journal_never_reaches_the_terminal(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """The summaries name the error types read back from the journal as they are: a row whose error
    type has a control sequence is not the tool's (it escapes them), so it is dropped, and the
    counter asked again."""
    box = sandbox_factory(counters="1-10", fixed={3: "counter_in_connect"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    assert cli("run", config, "--api-base", box.url).returncode == 1
    journal = tmp_path / "reports" / "job.csv.journal"
    journal.write_text(
        journal.read_text().replace('"counter_in_connect"', '"\\u001b]0;evil\\u0007in_connect"')
    )
    for command in ("status", "run"):
        done = cli(command, config, "--api-base", box.url)
        assert "\x1b" not in done.stdout + done.stderr and "\x07" not in done.stdout + done.stderr
    assert "failed: 1 counter_in_connect (3)" in done.stdout  # asked again: the API's own word
    assert box.stats()["write_requests"] == 4


RUN_HEADER = {"bulk_enable_journal": 2, "command": "run", "window": "calls", "enable": True, "delimiter": ","}


def plant_run_journal(folder: Path, *rows: dict[str, object]) -> None:
    """A run journal of the default job beside a config in `folder`, with these rows."""
    (folder / "reports").mkdir(exist_ok=True)
    lines = [json.dumps(r) + "\n" for r in (RUN_HEADER, *rows)]
    (folder / "reports" / "job.csv.journal").write_text("".join(lines), encoding="utf-8")


def refused_row(**fields: object) -> dict[str, object]:
    row: dict[str, object] = {"counter_id": 3, "label": "", "account": "default", "status": "failed"}
    row |= {"attempts": 1, "http_status": 403, "error_type": "access_denied", "message": "no rights"}
    return row | {"final": True} | fields


@pytest.mark.parametrize(
    ("row", "error_type", "message"),
    [
        (refused_row(), "access_denied", "job.csv has it as access_denied: no rights; sending it again"),
        (
            refused_row(status="read_only", error_type="", message="this token has view access, not edit"),
            "read_only",
            "job.csv has it as read_only: this token has view access, not edit;",
        ),
        (refused_row(account="client-old"), "", "the window is not extended"),
        (refused_row(error_type="access_\ud800denied"), "", "the window is not extended"),
        (
            refused_row(message="\u202eno rights " + "x" * 2000),
            "access_denied",
            "as access_denied: \\u202eno",
        ),
    ],
    ids=[
        "refused",
        "read_only: never sent",
        "under another account",
        "a lone surrogate",
        "a tampered message",
    ],
)
def test_status_takes_a_refusal_from_the_run_journal_as_a_rerun_would(
    tmp_path: Path, sandbox_factory: SandboxFactory, row: dict[str, object], error_type: str, message: str
) -> None:
    """A short counter is the run's refusal only when a rerun would hold it back: failed for good under
    the same account, from a line the tool could have written; its text is cleaned again."""
    box = sandbox_factory(counters="1-10", ip_rps=0)
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    plant_run_journal(tmp_path, row)
    done = cli("status", config, "--api-base", box.url)
    assert done.returncode == 0, done.stderr
    got = {r["counter_id"]: r for r in read_report(tmp_path / "reports" / "job.status.csv")}["3"]
    assert (got["status"], got["error_type"]) == ("short", error_type)
    assert message in got["message"] and len(got["message"]) < 700
    assert ("could not change" in done.stdout) is bool(error_type)


def test_a_token_file_spelt_two_ways_is_warned_about_once(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`token`, `sub/../token` and a link to it are one file: one warning about its permissions."""
    box = sandbox_factory(counters="1-10", ip_rps=0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "token").chmod(0o644)
    os.symlink(tmp_path / "token", tmp_path / "link")
    config = tmp_path / "job.yaml"
    spellings = ("token", "sub/../token", "link")
    config.write_text(
        "accounts:\n"
        + "".join(
            f"  - {{name: a{n}, token_file: {f}, counters: [{n}]}}\n" for n, f in enumerate(spellings, 1)
        )
    )
    done = cli("check", config, "--api-base", box.url)
    assert done.stderr.count("are too open for a token") == 1, done.stderr


def utc(days_ago: float) -> str:
    """A journal time `days_ago` days before now."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_status_reads_each_short_window_by_what_the_runs_did(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """With the job's run journals, `short` is: enabled in the last 2 days (normal; a day's slack for
    time zones), enabled 3 or more days ago or on a date that cannot be read (did not take: enable
    again), disabled by a later run (what it asked), or not enabled yet. A done row counts by its ID,
    as a rerun skips it, whatever its account."""
    box = sandbox_factory(counters="1-20", ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 12))

    def done(cid: int, at: str, status: str = "enabled", **more: object) -> dict[str, object]:
        return refused_row(counter_id=cid, status=status, at=at, final=False, error_type="", **more)

    plant_run_journal(
        tmp_path,
        done(1, utc(0)),
        done(2, utc(3)),
        done(3, utc(2)),  # late on a UTC day: still the next day where the counter is
        done(4, utc(5), "already_enabled"),
        done(5, utc(0), account="renamed-since"),
        done(6, "yesterday"),
        done(7, "2099-01-01T00:00:00Z"),
        done(8, utc(5)),  # disabled since
        refused_row(counter_id=9, status="deferred", final=False),
    )
    off = {**RUN_HEADER, "enable": False}
    lines = [
        json.dumps(off),
        json.dumps(done(8, utc(1), "disabled")),
        json.dumps(done(10, utc(1), "disabled")),
    ]
    (tmp_path / "reports" / "job.calls-disable.csv.journal").write_text("\n".join(lines) + "\n")
    result = cli("status", config, "--api-base", box.url)
    assert result.returncode == 0, result.stderr
    rows = {int(r["counter_id"]): r["message"] for r in read_report(tmp_path / "reports" / "job.status.csv")}
    today = dt.datetime.now(dt.UTC).date()
    assert (
        rows[1]
        == f"enabled on {today} (job.csv): the window grows from the next day; check again in a few days"
    )
    assert rows[2].endswith("still not extended 3 days later: the change did not take")
    assert rows[3].startswith(f"enabled on {today - dt.timedelta(days=2)} (job.csv): the window grows")
    assert rows[4].startswith("found already enabled on") and rows[4].endswith(
        "5 days later: the change did not take"
    )
    assert rows[5].startswith(f"enabled on {today} (job.csv)")
    assert (
        rows[6]
        == rows[7]
        == "enabled (its date unreadable) (job.csv), still not extended: the change did not take"
    )
    assert rows[8].startswith(f"disabled on {today - dt.timedelta(days=1)} (job.calls-disable.csv)")
    assert rows[10].startswith("disabled on") and rows[9] == rows[11]
    assert rows[9].startswith("the window is not extended")
    nexts = [line for line in result.stdout.splitlines() if line.startswith("next:")]
    assert nexts == [
        "next: 3 short counters the run enabled in the last 2 days: normal, the window grows from the next "
        "day: check again in a few days",
        "next: 4 short counters the run enabled 3 or more days ago did not take: save those IDs as short.txt "
        "and `bulk-enable run short.txt`",
        f"next: 2 short counters the run has not enabled yet: `bulk-enable run {config}` sends them",
    ]
