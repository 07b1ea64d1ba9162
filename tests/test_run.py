"""The `run` job end to end in-process (aioresponses), and the token never leaving its header."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from bulk_enable import Job, Policy, Settings, parse_config, read_csv, run_job

from .conftest import TOKEN, cli_env, run_cli, write_config

BASE = "https://api-metrica.yandex.net"
FAST = Policy(backoff_initial=0.001, backoff_max=0.01, slow_down=0.01, rps=0)


def url(cid: int) -> str:
    return f"{BASE}/management/v1/counter/{cid}/offline_conversions/calls_extended_threshold"


def err(status: int, error_type: str, message: str = "msg") -> dict[str, Any]:
    return {
        "errors": [{"error_type": error_type, "message": message}],
        "code": status,
        "message": message,
    }


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
    rows = {r["counter_id"]: r for r in read_csv(tmp_path / "r.csv")}
    assert (rows["1"]["status"], rows["1"]["attempts"]) == ("enabled", "3")
    assert (rows["2"]["status"], rows["2"]["error_type"], rows["2"]["message"]) == (
        "failed",
        "access_denied",
        "Access is denied",
    )
    assert (rows["3"]["status"], rows["3"]["error_type"]) == ("failed", "success_false")
    assert sent == {url(1): 3, url(2): 1, url(3): 1}
    assert summary.exit_code == 1


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    """A counter that never stops failing transiently fails after --max-attempts requests."""
    with aioresponses() as m:
        m.post(url(1), status=504, payload=err(504, "timeout"), repeat=True)
        await run_job(settings(tmp_path, [1], policy=Policy(max_attempts=4, backoff_initial=0.001, rps=0)))
        assert len(next(iter(m.requests.values()))) == 4
    row = next(read_csv(tmp_path / "r.csv"))
    assert (row["status"], row["attempts"], row["error_type"]) == ("failed", "4", "timeout")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (403, "invalid_token"),
        (401, "unauthorized"),
        (429, "quota_requests_by_uid"),
        (420, "quota_requests_by_uid"),
    ],
)
async def test_dead_token_or_daily_quota_defers_the_rest(
    tmp_path: Path, status: int, error_type: str
) -> None:
    """The account stops at once; the rest are `deferred` with the reason; exit 3."""
    with aioresponses() as m:
        m.post(re.compile(rf"{BASE}/.*"), status=status, payload=err(status, error_type), repeat=True)
        summary = await run_job(settings(tmp_path, list(range(1, 101))))
        sent = sum(len(v) for v in m.requests.values())
    assert sent <= 3
    rows = list(read_csv(tmp_path / "r.csv"))
    assert {r["status"] for r in rows} == {"deferred"}
    assert all(error_type in r["message"] or r["error_type"] == error_type for r in rows)
    assert summary.exit_code == 3
    assert any(error_type in line for line in summary.lines())


async def test_counter_quota_defers_only_that_counter(tmp_path: Path) -> None:
    """quota_requests_by_counter_id defers one counter; the others go on."""
    with aioresponses() as m:
        m.post(url(1), status=429, payload=err(429, "quota_requests_by_counter_id"))
        m.post(url(2), payload={"success": True})
        summary = await run_job(settings(tmp_path, [1, 2]))
    assert [r.status for r in summary.rows] == ["deferred", "enabled"]
    assert summary.exit_code == 3


async def test_rerun_sends_only_what_is_left(tmp_path: Path) -> None:
    """Second run: enabled counters are not sent again; the failed one is."""
    with aioresponses() as m:
        m.post(url(1), payload={"success": True})
        m.post(url(2), status=500, body="oops", repeat=True)
        await run_job(settings(tmp_path, [1, 2], policy=Policy(max_attempts=2, backoff_initial=0.001, rps=0)))
    with aioresponses() as m:
        m.post(url(2), payload={"success": True})
        summary = await run_job(settings(tmp_path, [1, 2]))
        assert [str(k[1]) for k in m.requests] == [url(2)]
    assert [r.status for r in summary.rows] == ["enabled", "enabled"]
    assert summary.skipped == 1 and summary.exit_code == 0


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
        ["check", "{config}", "--report", "{report}", "--api-base", "{url}"],
        ["counters", "--api-base", "{url}"],
        ["run", "{config}", "--report", "{report}", "--api-base", "{url}", "--preflight", "-v"],
    ],
)
def test_token_never_appears_anywhere(tmp_path: Path, sandbox_factory: Any, args: list[str]) -> None:
    """Not on stdout, stderr, in the report or its journal, even when the API echoes it back."""
    box = sandbox_factory(fixed={5: "access_denied"}, fault_rate=0.5, faults=["backend_error", "html_500"])
    config = write_config(tmp_path / "job.yaml", [1, 2, 3, 4, 5])
    report = tmp_path / "r.csv"
    filled = [a.format(config=config, report=report, url=box.url) for a in args]
    done = run_cli(*filled)
    assert done.returncode in (0, 1), done.stderr
    dead = run_cli(*filled, env=cli_env(YANDEX_METRICA_TOKEN="dead-" + TOKEN))
    assert dead.returncode == 3, dead.stderr
    for text in (done.stdout, done.stderr, dead.stdout, dead.stderr):
        assert TOKEN not in text
    for path in tmp_path.iterdir():
        assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path


@pytest.mark.parametrize(
    ("env", "extra", "message"),
    [
        ({"YANDEX_METRICA_TOKEN": ""}, [], "no token: set YANDEX_METRICA_TOKEN"),
        ({}, ["--token-file", "/nonexistent/token"], "cannot read the token file"),
        ({}, ["--api-base", "http://api-metrica.yandex.net"], "clear text"),
        ({"YANDEX_METRICA_TOKEN": "two words"}, [], "spaces or control characters"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], extra: list[str], message: str
) -> None:
    """Token and address mistakes: one line, exit 2, nothing sent (no server is even running)."""
    config = write_config(tmp_path / "job.yaml", [1])
    done = run_cli("run", config, "--report", tmp_path / "r.csv", *extra, env=cli_env(**env))
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert "two words" not in done.stderr


def test_accounts_need_their_token_env(tmp_path: Path) -> None:
    """An account whose token_env is unset is refused before anything is sent."""
    config = tmp_path / "a.yaml"
    config.write_text("accounts:\n  - {name: shop, token_env: METRICA_TOKEN_SHOP, counters: [1]}\n")
    done = run_cli("run", config, "--report", tmp_path / "r.csv")
    assert done.returncode == 2 and "METRICA_TOKEN_SHOP" in done.stderr


def test_job_identity_in_default_report_names(tmp_path: Path) -> None:
    """Default report paths differ per window and action, so jobs never share one by accident."""
    from bulk_enable._report import default_report_path

    paths = {
        default_report_path(Path("configs/x.yaml"), Job(w, e))
        for w in ("calls", "conversions")
        for e in (True, False)
    }
    assert len(paths) == 4 and Path("reports/x.csv") in paths
