"""Read-only plans, --preflight, `counters`, --disable and --window against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bulk_enable import read_csv

from .conftest import TOKEN, cli_env, run_against, run_cli, statuses, write_config

pytestmark = pytest.mark.e2e
# 300 counters exist; 11 and 12 are already on, 13 is view-only, 14 is not visible
FIXED = {11: "already_enabled", 12: "already_enabled", 13: "read_only", 14: "not_found"}
EXPECTED = {11: "already_enabled", 12: "already_enabled", 13: "read_only", 14: "not_found", 999: "not_found"}


def sandbox(factory: Any, **kw: Any) -> Any:
    return factory(counters="1-300", fixed=FIXED, ip_rps=0, **kw)


def test_check_plans_hundreds_in_one_request_and_writes_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """`check` of 301 counters costs one listing request, no write, and gives every plan status."""
    box = sandbox(sandbox_factory)
    config = write_config(tmp_path / "job.yaml", [*range(1, 301), 999])
    done = run_cli("check", config, "--report", tmp_path / "plan.csv", "--api-base", box.url)
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert stats["requests"] == 1 and stats["write_requests"] == 0
    got = statuses(tmp_path / "plan.csv")
    assert {k: v for k, v in got.items() if k in EXPECTED} == EXPECTED
    assert [v for k, v in got.items() if k not in EXPECTED] == ["would_enable"] * 296


def test_check_pages_through_big_accounts(tmp_path: Path, sandbox_factory: Any) -> None:
    """An account of 25,000 counters is listed in 3 pages of 10,000."""
    box = sandbox_factory(counters="1-25000", ip_rps=0)
    config = write_config(tmp_path / "job.yaml", [1, 15000, 25000, 25001])
    done = run_cli("check", config, "--report", tmp_path / "plan.csv", "--api-base", box.url)
    assert done.returncode == 0
    assert box.stats()["requests"] == 3
    assert list(statuses(tmp_path / "plan.csv").values()) == ["would_enable"] * 3 + ["not_found"]


def test_check_without_offline_options_plans_a_write(tmp_path: Path, sandbox_factory: Any) -> None:
    """When the listing lacks offline_options, editable counters are `would_enable`, never an error."""
    box = sandbox(sandbox_factory, offline_options=False)
    config = write_config(tmp_path / "job.yaml", [11, 13, 14])
    assert run_cli("check", config, "--report", tmp_path / "p.csv", "--api-base", box.url).returncode == 0
    assert list(statuses(tmp_path / "p.csv").values()) == ["would_enable", "read_only", "not_found"]


def test_dry_run_is_check(tmp_path: Path, sandbox_factory: Any) -> None:
    """`run --dry-run` writes the plan and sends no write."""
    box = sandbox(sandbox_factory)
    config = write_config(tmp_path / "job.yaml", [1, 11])
    done = run_cli("run", config, "--dry-run", "--report", tmp_path / "p.csv", "--api-base", box.url)
    assert done.returncode == 0 and box.stats()["write_requests"] == 0
    assert list(statuses(tmp_path / "p.csv").values()) == ["would_enable", "already_enabled"]


def test_preflight_writes_exactly_where_needed(tmp_path: Path, sandbox_factory: Any) -> None:
    """--preflight: one listing, then writes only to the counters the plan says need it."""
    box = sandbox(sandbox_factory)
    config = write_config(tmp_path / "job.yaml", [*range(1, 51), 999])
    report = tmp_path / "r.csv"
    done = run_cli("run", config, "--preflight", "--report", report, "--api-base", box.url, "--rps", "0")
    stats = box.stats()
    assert done.returncode == 1  # read_only and not_found counters cannot be done
    assert set(map(int, stats["write_attempts"])) == set(range(1, 51)) - set(EXPECTED)
    assert stats["read_requests"] == 1
    got = statuses(report)
    assert {k: v for k, v in got.items() if k in EXPECTED} == EXPECTED
    assert list(got.values()).count("enabled") == 46
    rerun = run_cli("run", config, "--preflight", "--report", report, "--api-base", box.url)
    assert box.stats()["write_requests"] == stats["write_requests"]  # nothing left to write
    assert "48 counters were already done" in rerun.stdout  # 46 enabled + 2 already_enabled


def test_counters_output_runs_as_it_is(tmp_path: Path, sandbox_factory: Any) -> None:
    """`counters` prints YAML to stdout (only YAML) that `run` accepts unchanged."""
    box = sandbox_factory(counters="500-519", fixed={519: "read_only"}, ip_rps=0)
    listed = run_cli("counters", "--api-base", box.url, "--permission", "own,edit")
    assert listed.returncode == 0, listed.stderr
    data = yaml.safe_load(listed.stdout)
    assert [c["id"] for c in data["counters"]] == list(range(500, 519))
    assert data["counters"][0]["label"] == "Counter 500 — site-500.example"
    config = tmp_path / "mine.yaml"
    config.write_text(listed.stdout, encoding="utf-8")
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "0")
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}


@pytest.mark.parametrize(
    ("args", "method", "status"),
    [
        ([], "POST calls", "enabled"),
        (["--disable"], "DELETE calls", "disabled"),
        (["--window", "conversions"], "POST conversions", "enabled"),
        (["--window", "conversions", "--disable"], "DELETE conversions", "disabled"),
    ],
)
def test_window_and_disable_hit_the_right_method(
    tmp_path: Path, sandbox_factory: Any, args: list[str], method: str, status: str
) -> None:
    """--disable sends DELETE and reports `disabled`; --window conversions uses extended_threshold."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 11))
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "0", *args)
    assert done.returncode == 0, done.stderr
    assert box.stats()["methods"] == {method: 10}
    assert set(statuses(tmp_path / "r.csv").values()) == {status}


def test_enable_then_disable_on_one_report_skips_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """A report made for enabling never makes a --disable run skip a counter, and back."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 6))
    report = tmp_path / "r.csv"
    base = ("--report", report, "--api-base", box.url, "--rps", "0")
    assert run_cli("run", config, *base).returncode == 0
    undo = run_cli("run", config, *base, "--disable")
    assert undo.returncode == 0 and "was made to enable the calls window" in undo.stderr
    redo = run_cli("run", config, *base, "--window", "conversions")
    assert redo.returncode == 0
    assert box.stats()["methods"] == {"POST calls": 5, "DELETE calls": 5, "POST conversions": 5}


def test_plan_and_run_with_accounts(tmp_path: Path, sandbox_factory: Any) -> None:
    """`check` and `--preflight` list each account with its own token."""
    box = sandbox(sandbox_factory, tokens={TOKEN: "a", "tb-9": "b"})
    config = tmp_path / "acc.yaml"
    config.write_text(
        "accounts:\n  - {name: a, token_env: TA, counters: [1, 11]}\n"
        "  - {name: b, token_env: TB, counters: [2, 13]}\n"
    )
    env = cli_env(TA=TOKEN, TB="tb-9")
    plan = run_cli("check", config, "--report", tmp_path / "p.csv", "--api-base", box.url, env=env)
    assert plan.returncode == 0
    assert box.stats()["requests_by_login"] == {"a": 1, "b": 1}
    rows = list(read_csv(tmp_path / "p.csv"))
    assert [(r["account"], r["status"]) for r in rows] == [
        ("a", "would_enable"),
        ("a", "already_enabled"),
        ("b", "would_enable"),
        ("b", "read_only"),
    ]
    run = run_cli(
        "run", config, "--preflight", "--report", tmp_path / "r.csv", "--api-base", box.url, env=env
    )
    assert run.returncode == 1
    assert set(map(int, box.stats()["write_attempts"])) == {1, 2}


def test_check_with_a_dead_token_defers_and_exits_3(tmp_path: Path, sandbox_factory: Any) -> None:
    """A plan that cannot list the account says why and exits 3."""
    box = sandbox(sandbox_factory, tokens={"someone-else": "x"})
    config = write_config(tmp_path / "job.yaml", [1, 2])
    done = run_cli("check", config, "--report", tmp_path / "p.csv", "--api-base", box.url)
    assert done.returncode == 3
    assert set(statuses(tmp_path / "p.csv").values()) == {"deferred"}
    assert box.stats()["requests"] == 1
