"""Quota-aware runs against the sandbox, in-process: daily quota, many accounts, the per-address rate,
budgets, tokens that cannot write, a wrong API root, and `--until-done` across resets."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bulk_enable._jobs
from bulk_enable import Policy, Scheduler
from bulk_enable._messages import clock
from bulk_enable._model import Row, Status, Stop, StopCause
from bulk_enable._progress import WAIT_LOG_EVERY, CliEvents
from bulk_enable._rate import RateGate

from .conftest import (
    TOKEN,
    SandboxFactory,
    cli,
    cli_env,
    read_report,
    run_against,
    statuses,
    web_server,
    write_config,
)

FAST = ("--backoff", "0.01")
TOKEN_B = "token-b-51c2e8aa"


def accounts_config(path: Path, a: range, b: range) -> Path:
    def ids(r: range) -> str:
        return ", ".join(map(str, r))

    path.write_text(
        "accounts:\n"
        f"  - {{name: shop-a, token_env: METRICA_TOKEN_A, counters: [{ids(a)}]}}\n"
        f"  - {{name: shop-b, token_env: METRICA_TOKEN_B, counters: [{ids(b)}]}}\n",
        encoding="utf-8",
    )
    return path


def env_ab() -> dict[str, str]:
    return cli_env(METRICA_TOKEN_A=TOKEN, METRICA_TOKEN_B=TOKEN_B)


def test_daily_quota_stops_then_rerun_after_reset_finishes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A daily quota of K stops after about K requests, says when it resets and what to do; after the
    reset a rerun finishes, nothing written twice."""
    box = sandbox_factory(daily_limit=40, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 71))
    report = tmp_path / "r.csv"
    first = run_against(box, config, report, "--rps", "1000", *FAST, "--json")
    stats = box.stats()
    assert first.returncode == 3
    assert 40 <= stats["requests"] <= 43  # K, plus the few in flight when the quota answer came
    counts = list(statuses(report).values())
    assert counts.count("enabled") == 40 and counts.count("deferred") == 30
    deferred = [r for r in read_report(report) if r["status"] == "deferred"]
    assert all("daily request quota is spent" in r["message"] for r in deferred)
    summary = json.loads(first.stdout)
    assert summary["stops"] == {"default": "daily_quota"} and summary["deferred_until"].endswith("T00:00:00Z")
    nexts = [line for line in first.stderr.splitlines() if line.startswith("next:")]
    assert len(nexts) == 1 and re.search(r"after the quota reset at (\S+ )?00:00 UTC", nexts[0])
    assert "--until-done" in nexts[0]
    assert f"at this pace the job needs 1 more day (`bulk-enable report {report}`)" in nexts[0]

    box.reset_day()
    second = run_against(box, config, report, "--rps", "1000", *FAST)
    assert second.returncode == 0, second.stderr
    assert set(statuses(report).values()) == {"enabled"}
    assert box.stats()["counters_written_twice"] == 0


def test_dead_token_on_one_account_leaves_the_other_enabled(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Account A's dead token stops A within a handful; B's counters all end enabled; one next step."""
    box = sandbox_factory(tokens={TOKEN_B: "login-b"}, ip_rps=0)
    config = accounts_config(tmp_path / "a.yaml", range(1, 101), range(101, 201))
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", *FAST, env=env_ab())
    assert done.returncode == 3
    rows = read_report(tmp_path / "r.csv")
    assert {r["status"] for r in rows if r["account"] == "shop-b"} == {"enabled"}
    assert {r["status"] for r in rows if r["account"] == "shop-a"} == {"deferred"}
    assert box.stats()["requests"] - 100 <= 3
    assert "account shop-a stopped after" in done.stdout and "the token was refused" in done.stdout
    assert [line for line in done.stdout.splitlines() if line.startswith("next:")] == [
        "next: get a new OAuth token with metrika:read and metrika:write at oauth.yandex.ru, then run the "
        "same command again"
    ]


def test_two_accounts_take_about_the_time_of_one(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """Accounts run in parallel, each with its own 3 in flight: the server sees 3 at once for one
    account and 6 for two, so two take about the time of one."""
    box = sandbox_factory(tokens={TOKEN: "login-a", TOKEN_B: "login-b"}, latency=0.25)  # 2 x 12/s < 29/s
    one = write_config(tmp_path / "one.yaml", range(1, 16))
    both = accounts_config(tmp_path / "both.yaml", range(101, 116), range(201, 216))
    assert run_against(box, one, tmp_path / "1.csv").returncode == 0
    assert box.stats()["peak_in_flight_all"] == 3
    done = run_against(box, both, tmp_path / "2.csv", env=env_ab())
    assert done.returncode == 0, done.stderr
    assert box.stats()["peak_in_flight_all"] == 6
    assert box.stats()["peak_in_flight"] == {"login-a": 3, "login-b": 3}


def test_default_rate_gets_almost_no_per_address_quota_answers(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Against Metrica's 30/s per address, the default rate draws (almost) no quota answers."""
    box = sandbox_factory(ip_rps=30, tokens={TOKEN: "login-a", TOKEN_B: "login-b"})
    config = accounts_config(tmp_path / "a.yaml", range(1, 36), range(101, 136))
    done = run_against(box, config, tmp_path / "r.csv", env=env_ab())
    assert done.returncode == 0, done.stderr
    assert box.stats()["quota_answers"].get("quota_requests_by_ip", 0) <= 2


@pytest.mark.parametrize("quota_status", [420, 429])
def test_a_smaller_address_quota_slows_the_run_and_fails_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory, quota_status: int
) -> None:
    """Another tool shares the address (15/s left for us): every counter is enabled, quota answers
    never fail one (even with --max-attempts 1), and the summary shows the rate it settled at."""
    box = sandbox_factory(ip_rps=15, quota_status=quota_status)
    config = write_config(tmp_path / "job.yaml", range(1, 41))
    done = run_against(box, config, tmp_path / "r.csv", "--max-attempts", "1", *FAST)
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    answers = box.stats()["quota_answers"]["quota_requests_by_ip"]
    assert 0 < answers <= 12
    assert "the rate settled at" in done.stdout


def test_parallel_quota_narrows_and_fails_nothing(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """--concurrency 6 against a 3-request cap: warns, draws parallel-quota answers, fails nothing."""
    box = sandbox_factory(latency=0.05, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 61))
    done = run_against(
        box, config, tmp_path / "r.csv", "--rps", "1000", "--concurrency", "6", "--max-attempts", "1", *FAST
    )
    assert done.returncode == 0, done.stderr
    assert "above Metrica's 3 parallel requests" in done.stderr
    assert 0 < box.stats()["quota_answers"]["quota_parallel_requests"] <= 6
    assert box.stats()["peak_in_flight"]["agency"] == 3
    assert "3 in flight from now on" in done.stderr


def test_a_spent_budget_stops_at_once_and_says_why(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-requests 10 over 3,000 counters: 10 requests, the rest deferred in well under a second
    of waiting (the rate gives out a handful of 1/29 s slots, not 3,000), with the reason in the
    summary and the rows."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 3001))
    slots = [0]  # turns the run waited for at the rate gate, 1/29 s each
    wait_turn = RateGate.wait_turn

    async def counted(gate: RateGate) -> None:
        slots[0] += 1
        await wait_turn(gate)

    monkeypatch.setattr(RateGate, "wait_turn", counted)
    done = run_against(box, config, tmp_path / "r.csv", "--max-requests", "10")
    # the budget's 10, and one turn for each worker already waiting when it ran out: 22/29 s at most
    assert slots[0] <= 10 + Policy().workers < 29
    assert done.returncode == 3
    assert box.stats()["requests"] == 10
    rows = read_report(tmp_path / "r.csv")
    assert sum(r["status"] == "enabled" for r in rows) == 10
    assert all("--max-requests 10" in r["message"] for r in rows if r["status"] == "deferred")
    assert "request budget is spent (--max-requests 10)" in done.stdout


def test_counter_quota_defers_one_counter(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """quota_requests_by_counter_id defers that counter only, with the reason."""
    box = sandbox_factory(counter_daily_limit=1, ip_rps=0)
    report = tmp_path / "r.csv"
    cli("run", write_config(tmp_path / "a.yaml", [1, 2]), "--report", report, "--api-base", box.url)
    # 1 and 2 have had their one write today; 3 has not
    done = cli(
        "run",
        write_config(tmp_path / "b.yaml", [1, 2, 3]),
        "--report",
        report,
        "--fresh",
        "--api-base",
        box.url,
    )
    assert done.returncode == 3
    rows = read_report(report)
    assert [r["status"] for r in rows] == ["deferred", "deferred", "enabled"]
    assert rows[0]["error_type"] == "quota_requests_by_counter_id" and "run again after" in rows[0]["message"]


def test_a_token_that_cannot_write_stops_within_ten_writes(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Reads work, every write is access_denied: the account stops after about ten writes, exit 3,
    one line says why and how to tell; a rerun tries other counters first, so it never loops on the
    same ones; once the token can write, a rerun finishes."""
    box = sandbox_factory(write_denied_tokens=[TOKEN], ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 501))
    report = tmp_path / "r.csv"
    first = run_against(box, config, report, "--rps", "1000", *FAST)
    assert first.returncode == 3
    writes = box.stats()["write_requests"]
    assert 10 <= writes <= 12
    assert "lack metrika:write" in first.stdout and "bulk-enable check" in first.stdout
    assert 'next: it answered "403 access_denied: Access is denied"' in first.stdout
    second = run_against(box, config, report, "--rps", "1000", *FAST)
    tried = set(box.stats()["write_attempts"])
    assert second.returncode == 3 and len(tried) >= 2 * 10  # the rerun wrote to new counters
    box.grant_write(TOKEN)
    third = run_against(box, config, report, "--rps", "1000", *FAST)
    assert third.returncode == 0, third.stdout
    assert set(statuses(report).values()) == {"enabled"}


def test_denials_after_a_success_fail_only_their_counters(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """An account that can write but has 30 counters without edit rights: no stop, exit 1."""
    box = sandbox_factory(fixed=dict.fromkeys(range(2, 32), "access_denied"), ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 41))
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", *FAST)
    assert done.returncode == 1
    assert list(statuses(tmp_path / "r.csv").values()).count("failed") == 30


@pytest.mark.parametrize(
    "api_base",
    [
        "{url}/management/v1",
        "{url}/",
        " {url}",
        "{url}?x=1",
        "http://user:s3cretpw@127.0.0.1:9",
        "{url}#frag",
    ],
)
def test_a_wrong_api_root_is_refused_before_anything_is_sent(
    tmp_path: Path, sandbox_factory: SandboxFactory, api_base: str
) -> None:
    """A path, a query, credentials or spaces in --api-base: one line with the right form, exit 2."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1])
    done = cli("run", config, "--report", tmp_path / "r.csv", "--api-base", api_base.format(url=box.url))
    if api_base == "{url}/":
        assert done.returncode == 0  # a trailing slash is the root
        return
    assert done.returncode == 2 and box.stats()["requests"] == 0
    assert done.stderr.count("\n") == 1 and "http://127.0.0.1:" in done.stderr
    assert "s3cretpw" not in done.stderr


@pytest.mark.server
def test_a_server_that_is_not_the_api_stops_early(tmp_path: Path) -> None:
    """An --api-base that answers bare 404s (another web server): the account stops after three."""
    config = write_config(tmp_path / "job.yaml", range(1, 301))
    with web_server(404, "<html>Not Found</html>") as (url, hits):
        done = cli("run", config, "--report", tmp_path / "r.csv", "--api-base", url)
    assert done.returncode == 3
    assert len(hits) <= 5
    assert "does not look like the Metrica API" in done.stdout
    assert "next: give --api-base as the API root only" in done.stdout


def test_until_done_finishes_across_resets(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login with a daily limit of 25 and 40 counters: --until-done waits for the reset and runs to
    exit 0 by itself, no counter written twice, at most a few quota answers for the reset."""
    box = sandbox_factory(daily_limit=25, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 41))
    # The reset is announced an hour ahead, so it is still to come however slowly the run reaches the
    # quota. Once the run waits for it, the sandbox's day turns and the run's clock jumps past the
    # reset (as a machine's clock does after a suspend): nothing waits an hour, or for any time.
    reset = time.time() + 3600
    ahead = [0.0]
    waiting = CliEvents.waiting

    def wait_begins(events: CliEvents, *args: Any) -> None:
        if not ahead[0]:
            box.reset_day()
            ahead[0] = 3600.0
        waiting(events, *args)

    monkeypatch.setattr(CliEvents, "waiting", wait_begins)
    monkeypatch.setattr(
        bulk_enable._jobs, "Scheduler", functools.partial(Scheduler, clock=lambda: time.time() + ahead[0])
    )
    reset_at = dt.datetime.fromtimestamp(reset, dt.UTC).strftime("%H:%M:%S.%f")
    done = run_against(
        box, config, tmp_path / "r.csv", "--rps", "1000", "--until-done", "--quota-reset", reset_at, *FAST
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    stats = box.stats()
    assert stats["counters_written_twice"] == 0
    assert stats["quota_answers"].get("quota_requests_by_uid", 0) <= 3
    assert "waiting until" in done.stderr and "the quota has reset" in done.stderr


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the machine's time zone for this test (TZ and tzset), UTC again after."""

    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("zone_name", "when", "said"),
    [
        ("UTC", dt.datetime(2026, 11, 29, 21, 0, tzinfo=dt.UTC), "21:00 UTC"),
        ("UTC", dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC), "2026-11-30 00:00 UTC"),
        ("Europe/Moscow", dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC), "18:00 UTC, 21:00 local"),
        (
            "Europe/Moscow",
            dt.datetime(2026, 11, 29, 21, 0, tzinfo=dt.UTC),
            "21:00 UTC, 2026-11-30 00:00 local",
        ),
        (
            "Asia/Vladivostok",
            dt.datetime(2026, 11, 29, 13, 0, 30, tzinfo=dt.UTC),
            "13:00:30 UTC, 23:00:30 local",
        ),
        (
            "America/New_York",
            dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC),
            "2026-11-30 00:00 UTC, 2026-11-29 19:00 local",
        ),
        (
            "Europe/Moscow",
            dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC),
            "2026-11-30 00:00 UTC, 03:00 local",
        ),
    ],
)
def test_a_time_is_said_in_utc_and_in_the_machines_zone(
    zone: Callable[[str], None], zone_name: str, when: dt.datetime, said: str
) -> None:
    """The quota reset and every other time: UTC, plus the local time when the zone is not UTC."""
    zone(zone_name)
    assert clock(when, NOW) == said


def test_the_bar_counts_down_a_quota_wait_without_a_made_up_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the bar's description counts down to the reset and its ETA is dropped while an
    account waits; both come back when the quota has reset."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    events = CliEvents(progress=True)
    events.started(10)
    for _ in range(3):
        events.finished(Row(1, "", "default", Status.ENABLED))
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2, minutes=5)
    events.waiting("default", until, Stop(StopCause.DAILY_QUOTA))
    events.tick()
    waiting = err.getvalue().rsplit("\r", 1)[-1]
    assert "default: waiting for the daily quota until" in waiting and "(in 2 h 0" in waiting
    assert "3/10" in waiting and "<" not in waiting  # tqdm writes the ETA as [elapsed<remaining]
    events.resumed("default")
    events.tick()
    events.bar.refresh()
    going = err.getvalue().rsplit("\r", 1)[-1]
    assert "waiting" not in going and "<" in going
    events.close()


def test_without_a_terminal_a_wait_says_so_every_ten_minutes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a bar: one line when the wait starts, then one each WAIT_LOG_EVERY seconds, not every tick."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    events = CliEvents(progress=False)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    with caplog.at_level(logging.INFO, logger="bulk_enable"):
        events.waiting("default", until, Stop(StopCause.DAILY_QUOTA))
        for _ in range(int(WAIT_LOG_EVERY) * 2):
            clock[0] += 1
            events.tick()
    still = [r.getMessage() for r in caplog.records if r.getMessage().startswith("still")]
    assert len(caplog.records) == 3 and len(still) == 2
    assert "default: waiting for the daily quota until" in still[0]


@pytest.mark.parametrize("budget", [None, 4])  # 4: the first write alone (slow start), then 3 at once
def test_two_clients_of_one_agency_login_share_its_quotas(
    tmp_path: Path, sandbox_factory: SandboxFactory, budget: int | None
) -> None:
    """Two accounts on one token with different `ulogin`: Metrica's 3 in flight and --max-requests
    are the login's, so the run never gets a parallel-quota answer and spends the budget once."""
    box = sandbox_factory(
        tokens={TOKEN: "agency"},
        clients={"cl1": "101-106", "cl2": "201-206"},
        represents={"agency": ["cl1", "cl2"]},
        latency=0.05,
        ip_rps=0,
    )
    config = tmp_path / "job.yaml"
    config.write_text(
        "accounts:\n"
        "  - {name: client-1, token_env: TA, ulogin: cl1, counters: [101, 102, 103, 104, 105, 106]}\n"
        "  - {name: client-2, token_env: TA, ulogin: cl2, counters: [201, 202, 203, 204, 205, 206]}\n"
    )
    extra = ["--rps", "1000", *(["--max-requests", str(budget)] if budget else [])]
    done = run_against(box, config, tmp_path / "r.csv", *extra, env=cli_env(TA=TOKEN))
    stats = box.stats()
    assert stats["quota_answers"] == {} and stats["peak_in_flight"] == {"agency": 3}
    assert stats["requests_by_login"] == {"agency": budget or 12}
    assert done.returncode == (3 if budget else 0), done.stderr
    assert list(statuses(tmp_path / "r.csv").values()).count("enabled") == (budget or 12)
