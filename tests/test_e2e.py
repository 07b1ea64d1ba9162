"""End to end: the CLI as a subprocess against the sandbox, judged by the sandbox's stats and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bulk_enable import read_csv
from bulk_enable._report import journal_path

from .conftest import REPO, cli_env, run_against, run_cli, start_cli, statuses, write_config

pytestmark = pytest.mark.e2e
FAST = ("--backoff", "0.01")
UNLIMITED = {"ip_rps": 0}  # sandbox: no per-address limit, for tests whose subject is not the rate


def run(box: Any, config: Path, report: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return run_against(box, config, report, *FAST, *extra, env=env)


def test_in_flight_cap_is_used_and_never_exceeded(tmp_path: Path, sandbox_factory: Any) -> None:
    """Peak in flight is exactly 3 (not 1, never 4), one request per counter on a clean run."""
    box = sandbox_factory(latency=0.2)  # 3 / 0.2 s = 15/s: under the 29/s rate, the cap binds
    config = write_config(tmp_path / "job.yaml", range(1, 46))
    done = run(box, config, tmp_path / "r.csv")
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert stats["peak_in_flight"] == {"agency": 3}
    assert stats["write_requests"] == 45 and stats["quota_answers"] == {}
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    assert "45 enabled" in done.stdout and "report: " in done.stdout


def test_transient_faults_end_enabled_and_written_once(tmp_path: Path, sandbox_factory: Any) -> None:
    """At a 30% fault rate of every kind, every counter ends enabled and none is written twice."""
    box = sandbox_factory(fault_rate=0.3, slow_seconds=3, seed=11, **UNLIMITED)
    config = write_config(tmp_path / "job.yaml", range(1, 201))
    done = run(box, config, tmp_path / "r.csv", "--timeout", "0.5", "--max-attempts", "12", "--rps", "0")
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(stats["faults"]) == {"backend_error", "timeout", "html_500", "drop", "slow"}
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    assert stats["counters_written"] == 200 and stats["counters_written_twice"] == 0
    assert "retry counter=" in done.stderr  # each retry is logged


def test_kill_9_then_rerun_loses_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """kill -9 mid-run, rerun: all enabled; repeated writes at most the 3 that were in flight."""
    box = sandbox_factory(latency=0.02, **UNLIMITED)
    config = write_config(tmp_path / "job.yaml", range(1, 401))
    report = tmp_path / "r.csv"
    args = ["run", str(config), "--report", str(report), "--api-base", box.url, *FAST, "--rps", "0"]
    proc = start_cli(*args)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journal = journal_path(report)
        if journal.exists() and journal.read_text().count("\n") > 60:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = box.stats()
    assert 0 < before["counters_written"] < 400
    done = run(box, config, report, "--rps", "0")
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(statuses(report).values()) == {"enabled"}
    assert stats["counters_written"] == 400
    assert stats["repeated_writes"] <= 3


@pytest.mark.parametrize(
    ("behaviour", "error_type", "status"),
    [
        ("access_denied", "access_denied", "403"),
        ("not_found", "not_found", "404"),
        ("invalid_parameter", "invalid_parameter", "400"),
        ("counter_in_connect", "counter_in_connect", "403"),
        ("success_false", "success_false", "200"),
    ],
)
def test_permanent_errors_fail_after_one_request(
    tmp_path: Path, sandbox_factory: Any, behaviour: str, error_type: str, status: str
) -> None:
    """A permanent answer fails its counter with the API's error_type after exactly one request."""
    box = sandbox_factory(fixed={7: behaviour, 8: behaviour})
    config = write_config(tmp_path / "job.yaml", range(1, 11))
    done = run(box, config, tmp_path / "r.csv")
    rows = {r["counter_id"]: r for r in read_csv(tmp_path / "r.csv")}
    assert done.returncode == 1
    for cid in ("7", "8"):
        assert (rows[cid]["status"], rows[cid]["error_type"], rows[cid]["http_status"]) == (
            "failed",
            error_type,
            status,
        )
        assert box.stats()["write_attempts"][cid] == 1
    assert sum(r["status"] == "enabled" for r in rows.values()) == 8


@pytest.mark.parametrize("dead_status", [401, 403])
def test_dead_token_stops_within_a_handful(tmp_path: Path, sandbox_factory: Any, dead_status: int) -> None:
    """A token that is dead from the start costs at most the 3 requests in flight."""
    box = sandbox_factory(latency=0.02, tokens={"other": "x"}, dead_token_status=dead_status)
    config = write_config(tmp_path / "job.yaml", range(1, 301))
    done = run(box, config, tmp_path / "r.csv")
    assert done.returncode == 3
    assert box.stats()["requests"] <= 3
    assert set(statuses(tmp_path / "r.csv").values()) == {"deferred"}
    assert "token refused" in done.stdout
    assert "stop counter=" in done.stderr and "account=default after" in done.stderr


def test_token_revoked_mid_run_stops_within_a_handful(tmp_path: Path, sandbox_factory: Any) -> None:
    """A token revoked mid-run: a handful of requests after the revocation, the rest deferred."""
    box = sandbox_factory(latency=0.02)
    config = write_config(tmp_path / "job.yaml", range(1, 401))
    report = tmp_path / "r.csv"
    args = ["run", str(config), "--report", str(report), "--api-base", box.url, *FAST]
    proc = start_cli(*args, capture=True)
    while box.stats()["write_requests"] < 50:
        time.sleep(0.01)
    box.call(lambda sandbox: sandbox.dead.update(sandbox.profile.tokens))
    at_revoke = box.stats()["requests"]
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert box.stats()["requests"] - at_revoke <= 6
    counts = statuses(report)
    assert list(counts.values()).count("deferred") > 300
    assert "deferred" in out


def test_ctrl_c_writes_the_report_and_exits_130(tmp_path: Path, sandbox_factory: Any) -> None:
    """SIGINT: in-flight requests finish, the report is written, the rest deferred; rerun finishes."""
    box = sandbox_factory(latency=0.05, **UNLIMITED)
    config = write_config(tmp_path / "job.yaml", range(1, 301))
    report = tmp_path / "r.csv"
    args = ["run", str(config), "--report", str(report), "--api-base", box.url, *FAST, "--rps", "0"]
    proc = start_cli(*args, capture=True)
    while box.stats()["write_requests"] < 20:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    counts = list(statuses(report).values())
    assert counts.count("enabled") == box.stats()["counters_written"]
    assert counts.count("deferred") == 300 - counts.count("enabled")
    assert "Traceback" not in err and "rerun" in out
    done = run(box, config, report, "--rps", "0")
    assert done.returncode == 0 and box.stats()["repeated_writes"] == 0


def test_unreachable_api_defers_quickly(tmp_path: Path) -> None:
    """Nothing listening: the run stops in seconds with one clear reason, exit 3."""
    config = write_config(tmp_path / "job.yaml", range(1, 500))
    started = time.monotonic()
    done = run_cli("run", config, "--report", tmp_path / "r.csv", "--api-base", "http://127.0.0.1:9", *FAST)
    assert done.returncode == 3
    assert time.monotonic() - started < 20
    assert "cannot reach the API" in done.stdout and "Traceback" not in done.stderr


def test_sandbox_command_prints_its_url_first(tmp_path: Path) -> None:
    """`bulk-enable sandbox` prints the URL as its first stdout line and serves the API."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_enable", "sandbox", "--token", "t=who", "--latency", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        config = write_config(tmp_path / "job.yaml", [5, 6])
        done = run_cli(
            "run",
            config,
            "--report",
            tmp_path / "r.csv",
            "--api-base",
            url,
            env=cli_env(YANDEX_METRICA_TOKEN="t"),
        )
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def test_demo_runs_and_resumes(tmp_path: Path) -> None:
    """`bulk-enable demo` enables the demo config through faults, then resumes sending nothing done."""
    report = tmp_path / "demo.csv"
    env = cli_env()
    env.pop("YANDEX_METRICA_TOKEN")
    first = run_cli("demo", "--report", report, env=env, timeout=180)
    assert first.returncode == 1, first.stderr  # 5 counters of the demo profile cannot be changed
    counts = list(statuses(report).values())
    assert counts.count("enabled") == 295 and counts.count("failed") == 5
    assert "failed: 3 access_denied, 1 counter_in_connect, 1 not_found" in first.stdout
    second = run_cli("demo", "--report", report, env=env)
    assert "295 counters were already done in this report: not sent again" in second.stdout
    assert os.path.getsize(report) > 0
