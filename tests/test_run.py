"""The `run` job in-process: answers to rows, reruns, stops, and the token never leaving its header."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from bulk_enable import Policy, Settings, Status, StopCause, parse_config, run_job
from bulk_enable._messages import exit_code, summary_lines
from bulk_enable._model import Command, ExitCode, Row, Stop, Summary, now_iso
from bulk_enable._report import journal_path

from .conftest import TOKEN, SandboxFactory, cli, cli_env, read_report, run_against, statuses, write_config

BASE = "https://api-metrika.yandex.net"
FAST = Policy(backoff_initial=0.001, backoff_max=0.01, slow_down=0.01, rps=0)


def url(cid: int) -> str:
    return f"{BASE}/management/v1/counter/{cid}/offline_conversions/calls_extended_threshold"


def err(status: int, error_type: str, message: str = "msg") -> dict[str, Any]:
    return {"errors": [{"error_type": error_type, "message": message}], "code": status, "message": message}


def settings(tmp_path: Path, ids: list[int], **kw: Any) -> Settings:
    config = parse_config("".join(f"- {i}\n" for i in ids), tmp_path / "job.yaml")
    return Settings(
        config=config,
        tokens={"default": TOKEN},
        report=tmp_path / "r.csv",
        api_base=BASE,
        policy=kw.pop("policy", FAST),
        **kw,
    )


async def test_transient_then_success_and_permanent_after_one_request(tmp_path: Path) -> None:
    """503 twice then 200 is `enabled` after 3 attempts; 403 access_denied fails after 1."""
    with aioresponses() as m:
        m.post(url(1), status=503, payload=err(503, "backend_error"))
        m.post(url(1), status=503, payload=err(503, "backend_error"))
        m.post(url(1), payload={"success": True})
        m.post(url(2), status=403, payload=err(403, "access_denied", "Access is denied"))
        m.post(url(3), payload={"success": False})
        summary = await run_job(settings(tmp_path, [1, 2, 3]))
        sent = {str(k[1]): len(v) for k, v in m.requests.items()}
    rows = {r["counter_id"]: r for r in read_report(tmp_path / "r.csv")}
    assert (rows["1"]["status"], rows["1"]["attempts"]) == ("enabled", "3")
    assert (rows["2"]["status"], rows["2"]["error_type"], rows["2"]["message"]) == (
        "failed",
        "access_denied",
        "Access is denied",
    )
    assert (rows["3"]["status"], rows["3"]["error_type"]) == ("failed", "success_false")
    assert sent == {url(1): 3, url(2): 1, url(3): 1}
    assert exit_code(summary) is ExitCode.FAILED
    assert (summary.retries, summary.gave_up) == (2, 0)


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    """A counter that never stops failing transiently fails after --max-attempts requests."""
    with aioresponses() as m:
        m.post(url(1), status=504, payload=err(504, "timeout"), repeat=True)
        policy = Policy(max_attempts=4, backoff_initial=0.001, rps=0)
        summary = await run_job(settings(tmp_path, [1], policy=policy))
        assert len(next(iter(m.requests.values()))) == 4
    row = read_report(tmp_path / "r.csv")[0]
    assert (row["status"], row["attempts"], row["error_type"]) == ("failed", "4", "timeout")
    assert "gave up after 4 attempts" in row["message"] and summary.gave_up == 1


@pytest.mark.parametrize(
    ("status", "error_type", "cause"),
    [
        (403, "invalid_token", StopCause.REFUSED),
        (401, "unauthorized", StopCause.REFUSED),
        (429, "quota_requests_by_uid", StopCause.DAILY_QUOTA),
        (420, "quota_requests_by_uid", StopCause.DAILY_QUOTA),
    ],
)
async def test_dead_token_or_daily_quota_defers_the_rest(
    tmp_path: Path, status: int, error_type: str, cause: StopCause
) -> None:
    """The account stops at once; the rest are `deferred` with the reason; exit 3."""
    with aioresponses() as m:
        m.post(re.compile(rf"{BASE}/.*"), status=status, payload=err(status, error_type), repeat=True)
        summary = await run_job(settings(tmp_path, list(range(1, 101))))
        sent = sum(len(v) for v in m.requests.values())
    assert sent <= 3
    rows = read_report(tmp_path / "r.csv")
    assert {r["status"] for r in rows} == {"deferred"}
    assert all(error_type in r["message"] or r["error_type"] == error_type for r in rows)
    assert exit_code(summary) is ExitCode.STOPPED
    assert summary.stops["default"].cause is cause
    assert (summary.deferred_until is not None) == (cause is StopCause.DAILY_QUOTA)


async def test_counter_quota_defers_only_that_counter(tmp_path: Path) -> None:
    """quota_requests_by_counter_id defers one counter; the others go on."""
    with aioresponses() as m:
        m.post(url(1), status=429, payload=err(429, "quota_requests_by_counter_id"))
        m.post(url(2), payload={"success": True})
        summary = await run_job(settings(tmp_path, [1, 2]))
    assert [r.status for r in summary.rows] == [Status.DEFERRED, Status.ENABLED]
    assert exit_code(summary) is ExitCode.STOPPED and summary.deferred_until is not None


async def test_rerun_sends_only_what_is_left(tmp_path: Path) -> None:
    """Second run: enabled counters are not sent again; the failed one is."""
    with aioresponses() as m:
        m.post(url(1), payload={"success": True})
        m.post(url(2), status=500, body="oops", repeat=True)
        policy = Policy(max_attempts=2, backoff_initial=0.001, rps=0)
        await run_job(settings(tmp_path, [1, 2], policy=policy))
    with aioresponses() as m:
        m.post(url(2), payload={"success": True})
        summary = await run_job(settings(tmp_path, [1, 2]))
        assert [str(k[1]) for k in m.requests] == [url(2)]
    assert [r.status for r in summary.rows] == [Status.ENABLED, Status.ENABLED]
    assert summary.skipped == 1 and exit_code(summary) is ExitCode.OK


async def test_one_bad_answer_never_ends_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Handling one counter raises: that counter is `failed` with the reason, the others are done."""
    from bulk_enable import _jobs

    real = _jobs._run_row

    def explode(run: Any, counter: Any, outcome: Any) -> Any:
        if counter.id == 2:
            raise RuntimeError(f"boom {TOKEN}")
        return real(run, counter, outcome)

    monkeypatch.setattr(_jobs, "_run_row", explode)
    with aioresponses() as m:
        m.post(re.compile(rf"{BASE}/.*"), payload={"success": True}, repeat=True)
        summary = await run_job(settings(tmp_path, [1, 2, 3]))
    rows = {r.counter_id: r for r in summary.rows}
    assert [rows[i].status for i in (1, 2, 3)] == [Status.ENABLED, Status.FAILED, Status.ENABLED]
    assert rows[2].error_type == "internal_error" and "RuntimeError: boom" in rows[2].message
    assert TOKEN not in rows[2].message
    assert statuses(tmp_path / "r.csv") == {1: "enabled", 2: "failed", 3: "enabled"}


async def test_history_of_other_configs_is_kept(tmp_path: Path) -> None:
    """Config B on config A's report keeps A's rows in the journal and the report, and says so."""
    with aioresponses() as m:
        m.post(re.compile(rf"{BASE}/.*"), payload={"success": True}, repeat=True)
        await run_job(settings(tmp_path, [1, 2]))
        summary = await run_job(settings(tmp_path, [3]))
    assert summary.elsewhere == 2 and [r.counter_id for r in summary.rows] == [3]
    assert statuses(tmp_path / "r.csv") == {3: "enabled", 1: "enabled", 2: "enabled"}
    lines = journal_path(tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["counter_id"] for line in lines[1:]} == {1, 2, 3}


@pytest.mark.parametrize(
    "args",
    [
        [
            "run",
            "{config}",
            "--report",
            "{report}",
            "--api-base",
            "{url}",
            "--max-attempts",
            "2",
            "--backoff",
            "0",
        ],
        ["check", "{config}", "--report", "{report}", "--api-base", "{url}", "--backoff", "0"],
        ["status", "{config}", "--report", "{report}", "--api-base", "{url}", "--backoff", "0"],
        ["counters", "--api-base", "{url}", "--backoff", "0"],
        [
            "run",
            "{config}",
            "--report",
            "{report}",
            "--api-base",
            "{url}",
            "--preflight",
            "-v",
            "--json",
            "--backoff",
            "0",
        ],
    ],
)
def test_token_never_appears_anywhere(
    tmp_path: Path, sandbox_factory: SandboxFactory, args: list[str]
) -> None:
    """Not on stdout, stderr, in the report or its journal, even when the API echoes it back."""
    box = sandbox_factory(
        counters="1-10", fixed={5: "access_denied"}, fault_rate=0.5, faults=["backend_error", "html_500"]
    )
    config = write_config(tmp_path / "job.yaml", [1, 2, 3, 4, 5])
    report = tmp_path / "r.csv"
    filled = [a.format(config=config, report=report, url=box.url) for a in args]
    done = cli(*filled)
    assert done.returncode in (0, 1, 3) and "Traceback" not in done.stderr, done.stderr  # 3: faults left
    # Into a report of its own: the first one's job may be complete, and a rerun then sends nothing.
    again = [a.format(config=config, report=tmp_path / "dead.csv", url=box.url) for a in args]
    dead = cli(*again, env=cli_env(YANDEX_METRICA_TOKEN="dead-" + TOKEN))
    assert dead.returncode == 3, dead.stderr
    for text in (done.stdout, done.stderr, dead.stdout, dead.stderr):
        assert TOKEN not in text and TOKEN[:8] not in text
    for path in tmp_path.rglob("*"):  # the reports, their journals, the job's lock and preferences
        if path.is_file():
            assert TOKEN[:8] not in path.read_text(encoding="utf-8", errors="replace"), path


def test_accounts_need_their_token_env(tmp_path: Path) -> None:
    """An account whose token_env is unset is refused before anything is sent."""
    config = tmp_path / "a.yaml"
    config.write_text("accounts:\n  - {name: shop, token_env: METRICA_TOKEN_SHOP, counters: [1]}\n")
    done = cli("run", config, "--report", tmp_path / "r.csv")
    assert done.returncode == 2 and "METRICA_TOKEN_SHOP" in done.stderr


def test_a_token_pasted_as_token_env_is_never_echoed(tmp_path: Path) -> None:
    """A token pasted in place of a variable name: refused, and not printed back."""
    pasted = "y0_AgAAAAAtOkEnPaStEd123456789abcdef"
    config = tmp_path / "a.yaml"
    config.write_text(f"accounts:\n  - {{name: shop, token_env: {pasted}, counters: [1]}}\n")
    done = cli("run", config, "--report", tmp_path / "r.csv")
    assert done.returncode == 2 and "looks like a token" in done.stderr
    assert pasted not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("fixed", "shown"),
    [
        (
            {3: "access_denied"},
            "access_denied will fail again until fixed (edit rights for the token's login",
        ),
        (
            {3: "counter_in_connect"},
            "until fixed (Metrica does not change a counter in Connect by API: ask who",
        ),
        ({3: "invalid_parameter"}, "invalid_parameter will fail again until fixed (the ID), so"),
        (
            {3: "counter_in_connect", 4: "access_denied"},
            "access_denied and counter_in_connect will fail again until fixed (access_denied: edit rights "
            "for the token's login, or `ulogin:` for a client's counter; counter_in_connect: Metrica does",
        ),
    ],
    ids=["access_denied", "counter_in_connect", "invalid_parameter", "two kinds"],
)
def test_the_next_step_names_the_fix_of_each_kind_of_refusal(
    tmp_path: Path, sandbox_factory: SandboxFactory, fixed: dict[int, str], shown: str
) -> None:
    """A counter in Connect is not fixed by edit rights or a ulogin: each kind gets its own fix."""
    box = sandbox_factory(fixed=fixed, ip_rps=0)
    done = run_against(box, write_config(tmp_path / "job.yaml", range(1, 6)), tmp_path / "r.csv")
    assert done.returncode == 1, done.stderr
    assert shown in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("config", "kinds", "shown"),
    [
        ("job.yaml", ["access_denied"], "(edit rights for the token's login, or `ulogin:` for a client's"),
        (
            "ids.txt",
            ["access_denied"],
            "(edit rights for the token's login, or a ulogin column or --ulogin for",
        ),
        ("job.csv", ["not_found"], "(the ID, or a ulogin column or --ulogin for a client's counter)"),
        (
            "job.yaml",
            [f"odd_{n}" for n in range(200)] + ["access_denied"] * 3,
            "access_denied, odd_0, odd_1 and odd_10 (197 more kinds in the report's error_type column) will",
        ),
    ],
    ids=["yaml", "txt", "csv", "200 kinds"],
)
def test_the_fix_of_a_refusal_is_said_in_the_configs_words_and_a_handful_of_kinds(
    config: str, kinds: list[str], shown: str
) -> None:
    """A client login is `ulogin:` in a YAML, a column or --ulogin for a plain list; a server that
    answers with 200 kinds of refusal gets the 4 most common named, not a line of 27,000 characters."""
    rows = [Row(n, "", "default", Status.FAILED, error_type=k, final=True) for n, k in enumerate(kinds, 1)]
    lines = summary_lines(Summary(Command.RUN, Path("r.csv"), rows), Path(config))
    step = next(line for line in lines if line.startswith("next:"))
    assert shown in step and len(step) < 700, step
    failed = next(line for line in lines if line.startswith("failed:"))
    assert len(failed) < 200 and ("and 197 more of 197 other kinds" in failed) is (len(kinds) > 4), failed


@pytest.mark.parametrize(("logins", "days"), [({"a": "login-1", "b": "login-1"}, 2), ({}, 5)])
def test_the_days_a_job_needs_count_a_logins_quota_once(logins: dict[str, str], days: int) -> None:
    """Two client accounts on one agency login share its daily quota: 40 answered today between them
    and 80 left is 2 more days, not the 5 that account b alone (10 today, 50 left) would take."""
    today = now_iso()
    rows = [Row(n, "", "a" if n <= 30 else "b", Status.ENABLED, at=today) for n in range(1, 41)]
    rows += [Row(n, "", "a" if n <= 70 else "b", Status.DEFERRED) for n in range(41, 121)]
    reset = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)
    stops = {"a": Stop(StopCause.DAILY_QUOTA), "b": Stop(StopCause.DAILY_QUOTA)}
    summary = Summary(Command.RUN, Path("r.csv"), rows, stops=stops, deferred_until=reset, logins=logins)
    step = next(line for line in summary_lines(summary, Path("job.yaml")) if "quota reset" in line)
    assert f"at this pace the job needs {days} more days" in step, step


def test_run_and_rerun_through_the_cli(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """The CLI's summary names the counts, the report and a next step; a rerun sends nothing done."""
    box = sandbox_factory(fixed={3: "access_denied"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 11))
    first = run_against(box, config, tmp_path / "r.csv", "--rps", "1000")
    assert first.returncode == 1, first.stderr
    assert first.stdout.splitlines()[0].startswith("done: 9 enabled, 1 failed (10 counters, 10 requests")
    assert "failed: 1 access_denied (3)" in first.stdout
    assert (
        "next: access_denied will fail again until fixed (edit rights for the token's login, or `ulogin:`"
        in first.stdout
    )
    second = run_against(box, config, tmp_path / "r.csv", "--rps", "1000")
    assert "9 counters were already done in this report: not sent again" in second.stdout
    assert "1 counter failed for good in earlier runs: not sent again (--retry-failed" in second.stdout
    assert second.returncode == 1 and box.stats()["write_requests"] == 10
    third = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", "--retry-failed")
    assert third.returncode == 1 and box.stats()["write_requests"] == 11
