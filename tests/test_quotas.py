"""Quota-aware runs against the sandbox: daily quota, many accounts, per-address rate, budgets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bulk_enable import read_csv

from .conftest import TOKEN, cli_env, run_against, run_cli, statuses, write_config

pytestmark = pytest.mark.e2e
FAST = ("--backoff", "0.01")
TOKEN_B = "token-b-51c2e8"


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


def test_daily_quota_stops_then_rerun_after_reset_finishes(tmp_path: Path, sandbox_factory: Any) -> None:
    """A daily quota of K stops after about K requests; after the reset a rerun finishes, nothing twice."""
    box = sandbox_factory(daily_limit=40, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 71))
    report = tmp_path / "r.csv"
    args = ("run", config, "--report", report, "--api-base", box.url, "--rps", "0", *FAST)
    first = run_cli(*args)
    stats = box.stats()
    assert first.returncode == 3
    assert 40 <= stats["requests"] <= 43  # K, plus the few in flight when the quota answer came
    counts = list(statuses(report).values())
    assert counts.count("enabled") == 40 and counts.count("deferred") == 30
    deferred = [r for r in read_csv(report) if r["status"] == "deferred"]
    assert all("00:00 GMT" in r["message"] for r in deferred)
    assert "resets at 00:00 GMT" in first.stdout and "rerun the same command" in first.stdout

    box.call(lambda sandbox: sandbox._daily.clear())  # midnight GMT
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert set(statuses(report).values()) == {"enabled"}
    assert box.stats()["counters_written_twice"] == 0


def test_dead_token_on_one_account_leaves_the_other_enabled(tmp_path: Path, sandbox_factory: Any) -> None:
    """Account A's dead token stops A within a handful; B's counters all end enabled."""
    box = sandbox_factory(tokens={TOKEN_B: "login-b"}, ip_rps=0)
    config = accounts_config(tmp_path / "a.yaml", range(1, 101), range(101, 201))
    done = run_against(
        box,
        config,
        tmp_path / "r.csv",
        "--rps",
        "0",
        *FAST,
        env=env_ab(),
    )
    assert done.returncode == 3
    rows = list(read_csv(tmp_path / "r.csv"))
    assert {r["status"] for r in rows if r["account"] == "shop-b"} == {"enabled"}
    assert {r["status"] for r in rows if r["account"] == "shop-a"} == {"deferred"}
    assert box.stats()["requests"] - 100 <= 3
    assert "account shop-a stopped: token refused" in done.stdout


def test_two_accounts_take_about_the_time_of_one(tmp_path: Path, sandbox_factory: Any) -> None:
    """Accounts run in parallel, each with its own 3 in flight."""
    box = sandbox_factory(tokens={TOKEN: "login-a", TOKEN_B: "login-b"}, latency=0.25)
    one = write_config(tmp_path / "one.yaml", range(1, 37))
    both = accounts_config(tmp_path / "both.yaml", range(101, 137), range(201, 237))
    started = time.monotonic()
    assert run_against(box, one, tmp_path / "1.csv").returncode == 0
    alone = time.monotonic() - started
    started = time.monotonic()
    done = run_against(box, both, tmp_path / "2.csv", env=env_ab())
    together = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert together < alone * 1.3
    assert box.stats()["peak_in_flight"] == {"login-a": 3, "login-b": 3}
    assert {r["account"] for r in read_csv(tmp_path / "2.csv")} == {"shop-a", "shop-b"}


def test_default_rate_gets_almost_no_per_address_quota_answers(tmp_path: Path, sandbox_factory: Any) -> None:
    """Against a 30/s per-address limit, the default rate draws (almost) no quota answers."""
    box = sandbox_factory(ip_rps=30, tokens={TOKEN: "login-a", TOKEN_B: "login-b"})
    config = accounts_config(tmp_path / "a.yaml", range(1, 101), range(101, 201))
    done = run_against(box, config, tmp_path / "r.csv", env=env_ab())
    assert done.returncode == 0, done.stderr
    assert box.stats()["quota_answers"].get("quota_requests_by_ip", 0) <= 2


def test_per_address_quota_answers_slow_down_but_fail_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """Asked to go far past the per-address limit, the run draws quota answers and still enables all."""
    box = sandbox_factory(ip_rps=10, quota_status=420)
    config = write_config(tmp_path / "job.yaml", range(1, 41))
    done = run_against(
        box,
        config,
        tmp_path / "r.csv",
        "--rps",
        "0",
        "--max-attempts",
        "20",
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    assert box.stats()["quota_answers"]["quota_requests_by_ip"] > 0
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}


def test_parallel_quota_is_retried(tmp_path: Path, sandbox_factory: Any) -> None:
    """--concurrency 6 against a 3-request cap: warns, draws parallel-quota answers, fails nothing."""
    box = sandbox_factory(latency=0.05, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 61))
    done = run_against(
        box,
        config,
        tmp_path / "r.csv",
        "--rps",
        "0",
        "--concurrency",
        "6",
        "--max-attempts",
        "20",
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    assert "above Metrica's 3 parallel requests" in done.stderr
    assert 0 < box.stats()["quota_answers"]["quota_parallel_requests"] <= 6
    assert box.stats()["peak_in_flight"]["agency"] == 3
    assert "3 in flight from now on" in done.stderr


def test_max_requests_keeps_quota_for_other_tools(tmp_path: Path, sandbox_factory: Any) -> None:
    """--max-requests N: N requests per account, the rest deferred with the reason; exit 3."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 51))
    done = run_against(
        box,
        config,
        tmp_path / "r.csv",
        "--rps",
        "0",
        "--max-requests",
        "20",
    )
    assert done.returncode == 3
    assert box.stats()["requests"] == 20
    rows = list(read_csv(tmp_path / "r.csv"))
    assert sum(r["status"] == "enabled" for r in rows) == 20
    assert all("--max-requests 20" in r["message"] for r in rows if r["status"] == "deferred")


def test_counter_quota_defers_one_counter(tmp_path: Path, sandbox_factory: Any) -> None:
    """quota_requests_by_counter_id defers that counter only, with the reason."""
    box = sandbox_factory(counter_daily_limit=1, ip_rps=0)
    report = tmp_path / "r.csv"
    run_cli("run", write_config(tmp_path / "a.yaml", [1, 2]), "--report", report, "--api-base", box.url)
    # 1 and 2 have had their one write today; 3 has not
    done = run_cli(
        "run",
        write_config(tmp_path / "b.yaml", [1, 2, 3]),
        "--report",
        report,
        "--fresh",
        "--api-base",
        box.url,
    )
    assert done.returncode == 3
    rows = list(read_csv(report))
    assert [r["status"] for r in rows] == ["deferred", "deferred", "enabled"]
    assert rows[0]["error_type"] == "quota_requests_by_counter_id" and "rerun tomorrow" in rows[0]["message"]
