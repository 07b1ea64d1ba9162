"""Plans (`check`, `--preflight`), `counters`, agency access (ulogin), --disable and --window, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import TOKEN, SandboxFactory, cli, cli_env, read_report, run_against, statuses, write_config

# 300 counters exist; 11 and 12 are already on, 13 is view-only, 14 is not visible
FIXED = {11: "already_enabled", 12: "already_enabled", 13: "read_only", 14: "not_found"}


def sandbox(factory: SandboxFactory, **kw: Any) -> Any:
    return factory(counters="1-300", fixed=FIXED, ip_rps=0, **kw)


def check(box: Any, config: Path, report: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return cli("check", config, "--report", report, "--api-base", box.url, *extra, env=env)


@pytest.mark.parametrize("offline_options", [False, True])
def test_check_plans_hundreds_in_one_request_and_writes_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory, offline_options: bool
) -> None:
    """`check` of 301 counters: one listing request, no write; it claims a state only when shown."""
    box = sandbox(sandbox_factory, offline_options=offline_options)
    config = write_config(tmp_path / "job.yaml", [*range(1, 301), 999])
    done = check(box, config, tmp_path / "plan.csv")
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert stats["requests"] == 1 and stats["write_requests"] == 0
    got = statuses(tmp_path / "plan.csv")
    on = "already_enabled" if offline_options else "would_enable"
    expected = {11: on, 12: on, 13: "read_only", 14: "not_found", 999: "not_found"}
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert [v for k, v in got.items() if k not in expected] == ["would_enable"] * 296
    unknown = "the listing does not show whether the window is on"
    assert (unknown in done.stdout) is not offline_options
    if not offline_options:
        assert "bulk-enable status" in done.stdout
        row = next(r for r in read_report(tmp_path / "plan.csv") if r["counter_id"] == "11")
        assert "does not show the window's state" in row["message"]


def test_a_plan_labels_an_unlabelled_counter_with_its_name_in_metrica(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A bare list of IDs: the plan shows each counter's name and site from the listing, to check the
    IDs by; a label the config gives stays, and an unseen counter has none."""
    box = sandbox(sandbox_factory)
    config = tmp_path / "job.yaml"
    config.write_text("counters:\n  - 1\n  - {id: 2, label: Our shop}\n  - 999\n")
    assert check(box, config, tmp_path / "plan.csv").returncode == 0
    labels = {r["counter_id"]: r["label"] for r in read_report(tmp_path / "plan.csv")}
    assert labels == {"1": "Counter 1 — site-1.example", "2": "Our shop", "999": ""}


def test_a_listing_served_1000_a_page_plans_every_counter(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """2,500 counters, 1,000 a page whatever per_page asks: three requests, none missed."""
    box = sandbox_factory(counters="1-2500", ip_rps=0, page_cap=1000)
    config = write_config(tmp_path / "job.yaml", [*range(1, 2501), 2501])
    done = check(box, config, tmp_path / "plan.csv")
    assert done.returncode == 0, done.stderr
    assert box.stats()["requests"] == 3
    got = list(statuses(tmp_path / "plan.csv").values())
    assert got == ["would_enable"] * 2500 + ["not_found"]


@pytest.mark.parametrize("page_cap", [7, 1000])
def test_preflight_sends_every_counter_past_the_first_page(
    tmp_path: Path, sandbox_factory: SandboxFactory, page_cap: int
) -> None:
    """--preflight over a small page size still writes to every counter that needs it."""
    box = sandbox_factory(counters="1-40", ip_rps=0, page_cap=page_cap)
    config = write_config(tmp_path / "job.yaml", range(1, 41))
    done = run_against(box, config, tmp_path / "r.csv", "--preflight", "--rps", "1000")
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    assert box.stats()["write_requests"] == 40


def test_dry_run_is_check(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`run --dry-run` writes the plan and sends no write."""
    box = sandbox(sandbox_factory, offline_options=True)
    config = write_config(tmp_path / "job.yaml", [1, 11])
    done = cli("run", config, "--dry-run", "--report", tmp_path / "p.csv", "--api-base", box.url)
    assert done.returncode == 0 and box.stats()["write_requests"] == 0
    assert list(statuses(tmp_path / "p.csv").values()) == ["would_enable", "already_enabled"]


def test_preflight_writes_exactly_where_needed(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """--preflight: one listing, then writes only to the counters the plan says need it."""
    box = sandbox(sandbox_factory, offline_options=True)
    config = write_config(tmp_path / "job.yaml", [*range(1, 51), 999])
    report = tmp_path / "r.csv"
    done = run_against(box, config, report, "--preflight", "--rps", "1000")
    stats = box.stats()
    assert done.returncode == 1  # read_only and not_found counters cannot be done
    assert set(map(int, stats["write_attempts"])) == set(range(1, 51)) - {11, 12, 13, 14}
    assert stats["read_requests"] == 1
    got = statuses(report)
    assert (got[11], got[13], got[14], got[999]) == ("already_enabled", "read_only", "not_found", "not_found")
    assert list(got.values()).count("enabled") == 46
    rerun = run_against(box, config, report, "--preflight")
    assert box.stats()["write_requests"] == stats["write_requests"]  # nothing left to write
    assert "48 counters were already done" in rerun.stdout  # 46 enabled + 2 already_enabled


def test_counters_output_runs_as_it_is(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`counters` prints YAML on stdout (only YAML), labelled from site2.site, that `run` accepts."""
    box = sandbox_factory(counters="500-519", fixed={519: "read_only"}, ip_rps=0)
    listed = cli("counters", "--api-base", box.url, "--permission", "own,edit")
    assert listed.returncode == 0, listed.stderr
    data = yaml.safe_load(listed.stdout)
    assert [c["id"] for c in data["counters"]] == list(range(500, 519))
    assert data["counters"][0]["label"] == "Counter 500 — site-500.example"
    config = tmp_path / "mine.yaml"
    config.write_text(listed.stdout, encoding="utf-8")
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000")
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}


def test_a_clients_counters_need_ulogin(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """Agency access: a client's counters are not found and refused without ulogin, and are listed,
    planned, enabled and read with it; every request carries it."""
    box = sandbox_factory(
        counters="1-10", clients={"client-x": "700-709"}, represents={"agency": ["client-x"]}, ip_rps=0
    )
    bare = write_config(tmp_path / "bare.yaml", [700, 701])
    plan = check(box, bare, tmp_path / "bare.plan.csv")
    assert list(statuses(tmp_path / "bare.plan.csv").values()) == ["not_found", "not_found"]
    assert "ulogin" in read_report(tmp_path / "bare.plan.csv")[0]["message"] and plan.returncode == 0
    refused = run_against(box, bare, tmp_path / "bare.csv", "--max-denied", "0")
    assert refused.returncode == 1 and set(statuses(tmp_path / "bare.csv").values()) == {"failed"}

    listed = cli("counters", "--api-base", box.url, "--ulogin", "client-x")
    config = tmp_path / "client.yaml"
    config.write_text(listed.stdout, encoding="utf-8")
    assert yaml.safe_load(listed.stdout)["ulogin"] == "client-x"
    before = box.stats()["ulogins"].get("client-x", 0)
    assert check(box, config, tmp_path / "c.plan.csv").returncode == 0
    assert set(statuses(tmp_path / "c.plan.csv").values()) == {"would_enable"}
    done = run_against(box, config, tmp_path / "c.csv", "--preflight", "--rps", "1000")
    assert done.returncode == 0 and set(statuses(tmp_path / "c.csv").values()) == {"enabled"}
    state = cli("status", config, "--report", tmp_path / "c.status.csv", "--api-base", box.url)
    assert state.returncode == 0 and set(statuses(tmp_path / "c.status.csv").values()) == {"short"}
    sent = box.stats()["ulogins"]["client-x"] - before
    assert sent == 1 + 1 + 10 + 10  # check's listing, preflight's listing, 10 writes, 10 reads


def test_ulogin_in_the_accounts_form(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """Each account sends its own ulogin; an account without one acts for itself."""
    box = sandbox_factory(
        counters="1-10",
        clients={"client-x": "700-709"},
        represents={"a": ["client-x"]},
        tokens={TOKEN: "a", "tb": "b"},
        ip_rps=0,
    )
    config = tmp_path / "acc.yaml"
    config.write_text(
        "accounts:\n"
        "  - {name: shop, token_env: TA, ulogin: client-x, counters: [700, 701]}\n"
        "  - {name: own, token_env: TB, counters: [1, 2]}\n",
        encoding="utf-8",
    )
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", env=cli_env(TA=TOKEN, TB="tb"))
    assert done.returncode == 0, done.stderr
    assert box.stats()["ulogins"] == {"client-x": 2}
    assert [r["account"] for r in read_report(tmp_path / "r.csv")] == ["shop", "shop", "own", "own"]


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
    tmp_path: Path, sandbox_factory: SandboxFactory, args: list[str], method: str, status: str
) -> None:
    """--disable sends DELETE and reports `disabled`; --window conversions uses extended_threshold."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 11))
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", *args)
    assert done.returncode == 0, done.stderr
    assert box.stats()["methods"] == {method: 10}
    assert set(statuses(tmp_path / "r.csv").values()) == {status}


def test_enable_then_disable_on_one_report_skips_nothing(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A report made for enabling never makes a --disable run skip a counter, and back."""
    box = sandbox_factory(ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 6))
    report = tmp_path / "r.csv"
    base = ("--report", report, "--api-base", box.url, "--rps", "1000")
    assert cli("run", config, *base).returncode == 0
    undo = cli("run", config, *base, "--disable")
    assert undo.returncode == 0 and "was made to enable the calls window" in undo.stderr
    redo = cli("run", config, *base, "--window", "conversions")
    assert redo.returncode == 0
    assert box.stats()["methods"] == {"POST calls": 5, "DELETE calls": 5, "POST conversions": 5}


def test_plan_and_run_with_accounts(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`check` and `--preflight` list each account with its own token."""
    box = sandbox(sandbox_factory, tokens={TOKEN: "a", "tb-9": "b"}, offline_options=True)
    config = tmp_path / "acc.yaml"
    config.write_text(
        "accounts:\n"
        "  - {name: a, token_env: TA, counters: [1, 11]}\n"
        "  - {name: b, token_env: TB, counters: [2, 13]}\n"
    )
    env = cli_env(TA=TOKEN, TB="tb-9")
    plan = check(box, config, tmp_path / "p.csv", env=env)
    assert plan.returncode == 0
    assert box.stats()["requests_by_login"] == {"a": 1, "b": 1}
    rows = read_report(tmp_path / "p.csv")
    assert [(r["account"], r["status"]) for r in rows] == [
        ("a", "would_enable"),
        ("a", "already_enabled"),
        ("b", "would_enable"),
        ("b", "read_only"),
    ]
    run = cli("run", config, "--preflight", "--report", tmp_path / "r.csv", "--api-base", box.url, env=env)
    assert run.returncode == 1
    assert set(map(int, box.stats()["write_attempts"])) == {1, 2}


@pytest.mark.parametrize("bad_status", [401, 403])
def test_check_with_a_dead_token_defers_and_exits_3(
    tmp_path: Path, sandbox_factory: SandboxFactory, bad_status: int
) -> None:
    """A plan that cannot list the account says why, in one line per account, and exits 3."""
    box = sandbox(sandbox_factory, tokens={"someone-else": "x"}, bad_token_status=bad_status)
    config = write_config(tmp_path / "job.yaml", [1, 2])
    done = check(box, config, tmp_path / "p.csv")
    assert done.returncode == 3
    assert set(statuses(tmp_path / "p.csv").values()) == {"deferred"}
    assert box.stats()["requests"] == 1
    assert "the token was refused" in done.stdout and "next: get a new OAuth token" in done.stdout


@pytest.mark.server
def test_a_listing_that_never_ends_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that pages on forever: `check` keeps only the config's counters and stops once it has
    them; `counters` stops at the cap with one line, exit 3; memory stays bounded either way."""
    from aiohttp import web

    from bulk_enable import _plan

    from .conftest import serve_app

    monkeypatch.setattr(_plan, "MAX_LISTED", 500)
    pages: list[int] = []

    async def endless(request: web.Request) -> web.Response:
        offset = int(request.query["offset"])
        pages.append(offset)
        items = [{"id": offset + i, "name": "N" * 50, "permission": "edit"} for i in range(100)]
        items.append({"id": 2**63, "permission": "own"})  # beyond what a config can hold: dropped
        return web.json_response({"rows": 10**15, "counters": items})

    app = web.Application()
    app.router.add_get("/management/v1/counters", endless)
    config = write_config(tmp_path / "job.yaml", [5, 250])
    with serve_app(app) as url:
        plan = cli("check", config, "--report", tmp_path / "p.csv", "--api-base", url)
        assert plan.returncode == 0 and len(pages) == 3  # counter 250 is on the third page: done
        listed = cli("counters", "--api-base", url)
    assert listed.returncode == 3 and "went past 500 counters" in listed.stderr
    assert "9223372036854775808" not in listed.stdout


@pytest.mark.server
def test_a_repeated_id_in_the_listing_keeps_its_first_entry(tmp_path: Path) -> None:
    """Two listing entries for one ID: the first stands (its permission decides the plan)."""
    from aiohttp import web

    from .conftest import serve_app

    async def twice(request: web.Request) -> web.Response:
        items = [{"id": 1, "permission": "edit"}, {"id": 1, "permission": "view", "name": "dup"}]
        return web.json_response({"rows": 2, "counters": items})

    app = web.Application()
    app.router.add_get("/management/v1/counters", twice)
    config = write_config(tmp_path / "job.yaml", [1])
    with serve_app(app) as url:
        done = cli("check", config, "--report", tmp_path / "p.csv", "--api-base", url)
    assert done.returncode == 0 and statuses(tmp_path / "p.csv") == {1: "would_enable"}
