"""The command line in-process: one-line errors with suggestions, tokens, report paths, --json,
`report`, the summary's words, and what `sandbox` says about itself."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bulk_enable._model import RUN_COLUMNS
from bulk_enable._parser import parse

from .conftest import TOKEN, SandboxFactory, cli, cli_env, read_report, run_against, statuses, write_config


def one_line(text: str) -> bool:
    return text.count("\n") == 1 and "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["rnu", "x.yaml"], "unknown command 'rnu': did you mean 'run'?"),
        (["stauts", "x.yaml"], "did you mean 'status'?"),
        (["run", "x.yaml", "--reprot", "r.csv"], "unknown option '--reprot': did you mean '--report'?"),
        (["run", "x.yaml", "--max-attempt", "3"], "did you mean '--max-attempts'?"),
        (["run"], "bulk-enable run: CONFIG is missing"),
        (["run", "x.yaml", "--rps", "inf"], "--rps: must be a number from 0.1 to 10000, got 'inf'"),
        (["run", "x.yaml", "--rps", "nan"], "--rps: must be a number from 0.1 to 10000, got 'nan'"),
        (["run", "x.yaml", "--rps", "0"], "--rps: must be a number from 0.1 to 10000, got '0'"),
        (["run", "x.yaml", "--timeout", "inf"], "--timeout: must be a number from 0.1 to 600"),
        (["run", "x.yaml", "--backoff", "inf"], "--backoff: must be a number from 0 to 30"),
        (["run", "x.yaml", "--concurrency", "0"], "--concurrency: must be from 1 to 10, got 0"),
        (["run", "x.yaml", "--max-attempts", "many"], "--max-attempts: must be a whole number from 1 to 100"),
        (["run", "x.yaml", "--quota-reset", "25:00"], "--quota-reset: must be a time of day as HH:MM"),
        (["run", "x.yaml", "--window", "call"], "unknown --window 'call': did you mean 'calls'?"),
        (["counters", "--ulogin", "bad login"], "is not a Yandex login"),
        (["counters", "--permission", "owner"], "unknown permission 'owner' (did you mean 'own'?)"),
        (["counters", "--permission", ","], "give some of own, edit, view"),
        (["--verison"], "unknown option '--verison': did you mean '--version'?"),
        (["run", "x.yaml", "--csv-delimiter"], "quote a semicolon: --csv-delimiter ';'"),
        (
            ["run", "x.yaml", "--csv-delimiter", "pipe"],
            "choose , (comma), ';' (semicolon) or tab, got 'pipe'",
        ),
    ],
)
def test_usage_mistakes_are_one_line_with_a_suggestion(args: list[str], shown: str) -> None:
    """Typos and bad values: one line naming the option and what it accepts, exit 2, no usage dump."""
    done = cli(*args)
    assert done.returncode == 2
    assert one_line(done.stderr) and shown in done.stderr, done.stderr
    assert "usage:" not in done.stderr and "_count" not in done.stderr and "invalid" not in done.stderr
    assert "bulk-enable: bulk-enable" not in done.stderr  # the program is named once


@pytest.mark.parametrize(
    "args", [["-q", "run", "{c}"], ["run", "{c}", "-q"], ["-v", "run", "{c}"], ["run", "-v", "{c}"]]
)
def test_verbosity_goes_before_or_after_the_command(
    tmp_path: Path, sandbox_factory: SandboxFactory, args: list[str]
) -> None:
    """-v and -q work on either side of the command; -q keeps stderr free of info lines."""
    box = sandbox_factory(fault_rate=0.4, faults=["backend_error"], seed=3, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 21))
    filled = [a.format(c=config) for a in args]
    done = cli(
        *filled, "--report", tmp_path / "r.csv", "--api-base", box.url, "--backoff", "0", "--rps", "1000"
    )
    assert done.returncode == 0, done.stderr
    verbose = "-v" in args
    assert ("retry counter=" in done.stderr) is verbose  # retries that recover show only with -v
    assert "retries, all recovered" in done.stdout


@pytest.mark.parametrize(
    ("env", "setup", "message"),
    [
        ({"YANDEX_METRICA_TOKEN": ""}, None, "no token: set YANDEX_METRICA_TOKEN"),
        ({"YANDEX_METRICA_TOKEN": "two words"}, None, "characters a token never has"),
        ({"YANDEX_METRICA_TOKEN": "токен-non-ascii"}, None, "characters a token never has"),
        ({}, "missing", "cannot read the token file"),
        ({}, "latin1", "is not text (not UTF-8)"),
        ({}, "empty", "the token file is empty"),
    ],
)
def test_token_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], setup: str | None, message: str
) -> None:
    """Token mistakes: one line, exit 2, nothing sent (no server is even running), token not echoed."""
    config = write_config(tmp_path / "job.yaml", [1])
    extra: list[str | Path] = []
    if setup is not None:
        token_file = tmp_path / "token"
        if setup == "latin1":
            token_file.write_bytes("tok\xe9n".encode("latin-1"))
        elif setup == "empty":
            token_file.write_text("  \n")
        extra = ["--token-file", token_file]
    done = cli("run", config, "--report", tmp_path / "r.csv", *extra, env=cli_env(**env))
    assert done.returncode == 2
    assert one_line(done.stderr) and message in done.stderr, done.stderr
    assert "two words" not in done.stderr and "токен" not in done.stderr


def test_a_token_file_others_can_read_is_warned_about(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Like ssh: a token file readable by group or others gets a warning with the fix (and still runs)."""
    box = sandbox_factory()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    config = write_config(tmp_path / "job.yaml", [1])
    done = run_against(
        box, config, tmp_path / "r.csv", "--token-file", token_file, env=cli_env(YANDEX_METRICA_TOKEN="")
    )
    assert done.returncode == 0
    assert f"permissions 0644 are too open for a token: `chmod 600 {token_file}`" in done.stderr
    token_file.chmod(0o600)
    quiet = run_against(box, config, tmp_path / "r2.csv", "--token-file", token_file)
    assert "too open" not in quiet.stderr


@pytest.mark.parametrize("shared_by", ["token_file", "--token-file"])
def test_a_token_file_shared_by_accounts_is_warned_about_once(
    tmp_path: Path, sandbox_factory: SandboxFactory, shared_by: str
) -> None:
    """Three accounts with one token file (theirs, or the run's --token-file): one warning, not three."""
    box = sandbox_factory()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    if shared_by == "token_file":
        config = tmp_path / "job.yaml"
        accounts = "".join(f"  - {{name: a{n}, token_file: token, counters: [{n}]}}\n" for n in (1, 2, 3))
        config.write_text("accounts:\n" + accounts)
        extra: list[str | Path] = []
    else:  # a client login per row: an account each, all with the run's token
        config = tmp_path / "job.csv"
        config.write_text("counter_id,ulogin\n1,client-1\n2,client-2\n3,client-3\n")
        extra = ["--token-file", token_file]
    done = cli("check", config, "--api-base", box.url, *extra, env=cli_env(YANDEX_METRICA_TOKEN=""))
    assert done.stderr.count("are too open for a token") == 1, done.stderr


@pytest.mark.parametrize("source", ["YANDEX_METRICA_TOKEN", "token_env", "--token-file", "token_file"])
def test_a_token_with_a_byte_order_mark_reads_alike_from_a_variable_or_a_file(
    tmp_path: Path, sandbox_factory: SandboxFactory, source: str
) -> None:
    """Notepad's byte order mark before the token: a variable and a file both give the token without it."""
    box = sandbox_factory()
    token_file = tmp_path / "token"
    token_file.write_text("\ufeff" + TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    config = write_config(tmp_path / "job.yaml", [1])
    env, extra = cli_env(YANDEX_METRICA_TOKEN=""), list[str | Path]()
    if source == "YANDEX_METRICA_TOKEN":
        env = cli_env(YANDEX_METRICA_TOKEN="\ufeff" + TOKEN)
    elif source == "--token-file":
        extra = ["--token-file", token_file]
    else:
        given = "token_env: MY_TOKEN" if source == "token_env" else f"token_file: {token_file}"
        config.write_text(f"accounts:\n  - {{name: a, {given}, counters: [1]}}\n")
        env = cli_env(MY_TOKEN="\ufeff" + TOKEN)
    done = run_against(box, config, tmp_path / "r.csv", *extra, env=env)
    assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "r.csv") == {1: "enabled"}


def test_each_accounts_token_file_is_checked_like_token_file(tmp_path: Path) -> None:
    """token_file gets --token-file's checks (readable, not empty, bounded, not others'), each problem
    naming its account, all at once, nothing sent; and --token-file is refused beside them."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "empty.token").write_text("\n")
    (tokens / "huge.token").write_text("x" * 10_000)
    (tokens / "open.token").write_text(TOKEN)
    (tokens / "open.token").chmod(0o644)
    config = tmp_path / "a.yaml"
    config.write_text(
        "accounts:\n"
        "  - {name: gone, token_file: tokens/missing.token, counters: [1]}\n"
        "  - {name: blank, token_file: tokens/empty.token, counters: [2]}\n"
        "  - {name: big, token_file: tokens/huge.token, counters: [3]}\n"
        "  - {name: fine, token_file: tokens/open.token, counters: [4]}\n"
    )
    done = cli("run", config, "--report", tmp_path / "r.csv", "--api-base", "http://127.0.0.1:9")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert (
        f"bulk-enable: {config}: account `gone`: {tokens / 'missing.token'}: cannot read the token file"
        in lines[1]
    )
    assert "account `blank`:" in lines[2] and "the token file is empty" in lines[2]
    assert "account `big`:" in lines[3] and "too long for a token file" in lines[3]
    assert "permissions 0644 are too open for a token" in lines[0] and len(lines) == 4
    both = cli("run", config, "--report", tmp_path / "r.csv", "--token-file", tokens / "open.token")
    assert both.returncode == 2 and "token_env or token_file" in both.stderr
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ("{tmp}", "is a directory"),
        ("", "is not a file name"),
        ("/", "is not a file name"),
        ("{tmp}/notes.csv", "exists and is not a bulk-enable report"),
        ("{tmp}/r.xls", "give the report a .csv or .xlsx name"),
        ("{tmp}/file.txt/r.csv", "is a file, not a folder"),
    ],
)
def test_bad_report_paths_are_refused_before_anything_is_sent(
    tmp_path: Path, sandbox_factory: SandboxFactory, report: str, message: str
) -> None:
    """A directory, an empty path or /, someone else's file, a file as a folder: one line, exit 2, no request
    sent."""
    box = sandbox_factory()
    (tmp_path / "notes.csv").write_text("my notes\n")
    (tmp_path / "file.txt").write_text("x")
    config = write_config(tmp_path / "job.yaml", [1, 2])
    done = run_against(box, config, Path(report.format(tmp=tmp_path)))
    assert done.returncode == 2 and one_line(done.stderr) and message in done.stderr, done.stderr
    assert box.stats()["requests"] == 0
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"


def test_fresh_replaces_a_file_that_is_not_a_report(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """--fresh is the way to write over an unrelated file; a missing parent folder is created."""
    box = sandbox_factory()
    (tmp_path / "old.csv").write_text("a,b\n1,2\n")
    config = write_config(tmp_path / "job.yaml", [1])
    assert run_against(box, config, tmp_path / "old.csv", "--fresh").returncode == 0
    assert statuses(tmp_path / "old.csv") == {1: "enabled"}
    assert run_against(box, config, tmp_path / "new" / "deep" / "r.csv").returncode == 0


def test_check_will_not_write_over_a_runs_report(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`check` (and `status`) pointed at a run's report refuse it instead of clobbering it."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1])
    assert run_against(box, config, tmp_path / "r.csv").returncode == 0
    for command in ("check", "status"):
        done = cli(command, config, "--report", tmp_path / "r.csv", "--api-base", box.url)
        assert done.returncode == 2 and "is the report of a `run`" in done.stderr
    assert statuses(tmp_path / "r.csv") == {1: "enabled"}


@pytest.mark.parametrize("command", ["run", "check", "status"])
def test_json_is_the_only_thing_on_stdout_and_matches_the_report(
    tmp_path: Path, sandbox_factory: SandboxFactory, command: str
) -> None:
    """--json: exactly one JSON object on stdout with the documented keys; the words go to stderr."""
    box = sandbox_factory(fixed={3: "access_denied"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 6))
    report = tmp_path / f"{command}.csv"
    done = cli(command, config, "--report", report, "--api-base", box.url, "--json")
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "command",
        "config",
        "counts",
        "requests",
        "elapsed_s",
        "report",
        "exit_code",
        "error",
        "complete",
        "left",
        "accounts",
        "stops",
        "report_error",
        "deferred_until",
    }
    assert summary["command"] == command and summary["exit_code"] == done.returncode
    assert summary["error"] is None
    counted: dict[str, int] = {}
    for status in statuses(report).values():
        counted[status] = counted.get(status, 0) + 1
    assert summary["counts"] == counted and summary["report"] == str(report)
    assert summary["accounts"] == {"default": counted} and (summary["complete"], summary["left"]) == (True, 0)
    assert summary["requests"] == box.stats()["requests"] and summary["stops"] == {}
    assert "report: " in done.stderr


def test_report_renders_again_from_the_journal(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`bulk-enable report REPORT` rebuilds a deleted report exactly, with no token and no request."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", range(1, 8))
    report = tmp_path / "r.csv"
    assert run_against(box, config, report, "--csv-delimiter", ";").returncode == 0
    original = report.read_bytes()
    report.unlink()
    requests = box.stats()["requests"]
    done = cli("report", report, env=cli_env(YANDEX_METRICA_TOKEN=""))
    assert done.returncode == 0, done.stderr
    assert report.read_bytes() == original and box.stats()["requests"] == requests
    missing = cli("report", tmp_path / "nothing.csv")
    assert missing.returncode == 2 and one_line(missing.stderr) and "no journal" in missing.stderr


def test_xlsx_and_semicolon_reports(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """--report x.xlsx writes a workbook with the same columns; --csv-delimiter ';' a ;-separated CSV."""
    box = sandbox_factory()
    config = tmp_path / "job.yaml"
    config.write_text('counters:\n  - {id: 1, label: "  +Плюс Маркет"}\n  - {id: 2, label: "=SUM(A1)"}\n')
    assert run_against(box, config, tmp_path / "r.xlsx").returncode == 0
    rows = read_report(tmp_path / "r.xlsx")
    assert list(rows[0]) == list(RUN_COLUMNS)
    assert [r["label"] for r in rows] == ["  +Плюс Маркет", "=SUM(A1)"]
    assert run_against(box, config, tmp_path / "r.csv", "--csv-delimiter", ";").returncode == 0
    first = (tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert first == ";".join(RUN_COLUMNS)


def test_txt_and_csv_job_files_run(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """A .txt of IDs and a .csv (an earlier report, even) run as they are."""
    box = sandbox_factory()
    (tmp_path / "ids.txt").write_text("1\n2\n\n# a comment\n3\n")
    assert run_against(box, tmp_path / "ids.txt", tmp_path / "a.csv").returncode == 0
    assert statuses(tmp_path / "a.csv") == {1: "enabled", 2: "enabled", 3: "enabled"}
    assert run_against(box, tmp_path / "a.csv", tmp_path / "b.csv").returncode == 0
    assert statuses(tmp_path / "b.csv") == {1: "enabled", 2: "enabled", 3: "enabled"}


@pytest.mark.parametrize(
    ("n_failed", "listed"),
    [(1, True), (10, True), (11, False)],
)
def test_the_summary_names_failed_ids_when_few(
    tmp_path: Path, sandbox_factory: SandboxFactory, n_failed: int, listed: bool
) -> None:
    """Up to 10 failed counters are named in the summary; plurals are right."""
    box = sandbox_factory(fixed=dict.fromkeys(range(1, n_failed + 1), "counter_in_connect"))
    config = write_config(tmp_path / "job.yaml", range(1, n_failed + 2))
    done = run_against(box, config, tmp_path / "r.csv", "--max-failures", "0")  # 11 alike: no stop
    failed_line = next(line for line in done.stdout.splitlines() if line.startswith("failed:"))
    assert ("(1," in failed_line or "(1)" in failed_line) is listed
    assert f"{n_failed + 1} counters" in done.stdout.splitlines()[0]
    assert not re.search(r"\b1 (counters|requests)", done.stdout)


def test_a_plan_with_only_unreachable_counters_points_at_ulogin(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """--preflight where the only problems are plan statuses: no talk of failed rows that do not exist."""
    box = sandbox_factory(counters="1-5")
    config = write_config(tmp_path / "job.yaml", [1, 2, 99])
    done = run_against(box, config, tmp_path / "r.csv", "--preflight")
    assert done.returncode == 1
    assert "failed rows" not in done.stdout and "`ulogin:`" in done.stdout


@pytest.mark.process
def test_sandbox_help_names_its_token() -> None:
    """`sandbox --help` says which token it accepts."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulk_enable", "sandbox", "--help"], capture_output=True, text=True, timeout=30
    )
    assert "sandbox-token" in proc.stdout


def test_sandbox_on_a_busy_port_is_one_line(sandbox_factory: SandboxFactory) -> None:
    """`bulk-enable sandbox --port N` with N taken: one line, exit 2, no traceback."""
    box = sandbox_factory()
    port = box.url.rsplit(":", 1)[1]
    done = cli("sandbox", "--port", port)
    assert done.returncode == 2 and one_line(done.stderr) and "cannot listen" in done.stderr


@pytest.mark.process
def test_help_does_not_load_the_http_stack() -> None:
    """`bulk-enable --help` imports neither aiohttp nor yaml nor tqdm (it must answer at once)."""
    code = (
        "import sys\nfrom bulk_enable._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aiohttp', 'yaml', 'tqdm', 'tenacity') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=os.environ
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("kind", ["device", "fifo", "huge", "long token"])
def test_a_token_file_is_read_with_bounds(tmp_path: Path, kind: str) -> None:
    """/dev/zero, a FIFO or a huge file as --token-file: one line, exit 2, at once (never read to the end)."""
    if kind == "device":
        token_file = Path("/dev/zero")
    elif kind == "fifo":
        token_file = tmp_path / "fifo"
        os.mkfifo(token_file)
    else:
        token_file = tmp_path / "token"
        token_file.write_text("x" * (5_000_000 if kind == "huge" else 600) + "\n")
        token_file.chmod(0o600)
    config = write_config(tmp_path / "job.yaml", [1])
    done = cli("run", config, "--report", tmp_path / "r.csv", "--token-file", token_file)
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    expected = {
        "device": "not a regular file",
        "fifo": "not a regular file",
        "huge": "too long for a token file",
    }
    assert expected.get(kind, "longer than any OAuth token") in done.stderr


def test_token_problems_of_many_accounts_are_capped_at_ten(tmp_path: Path) -> None:
    """Fifteen accounts without their token: ten lines and one "... and 5 more", exit 2."""
    config = tmp_path / "a.yaml"
    accounts = "".join(f"  - {{name: a{i}, token_env: T{i}, counters: [{i + 1}]}}\n" for i in range(15))
    config.write_text("accounts:\n" + accounts, encoding="utf-8")
    done = cli("run", config, "--report", tmp_path / "r.csv")
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 11 and lines[-1].endswith("... and 5 more accounts like these"), done.stderr


def test_a_report_that_cannot_be_written_stops_the_run_with_a_summary(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal cannot be written mid-run (a full disk): the run stops sending, exits 3 (not 2: requests
    were sent), and still says what it did and what to do."""
    from bulk_enable import _report

    real = _report.ReportFile.record
    seen = []

    def full_disk(self: _report.ReportFile, row: object) -> None:
        seen.append(row)
        if len(seen) > 5:
            raise _report.ReportError(f"{self.journal}: cannot write the journal (No space left on device)")
        real(self, row)  # type: ignore[arg-type]

    monkeypatch.setattr(_report.ReportFile, "record", full_disk)
    box = sandbox_factory(latency=0.01)
    config = write_config(tmp_path / "job.yaml", range(1, 201))
    done = run_against(box, config, tmp_path / "r.csv", "--json")
    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout)
    assert "No space left" in summary["report_error"] and summary["exit_code"] == 3
    assert box.stats()["write_requests"] < 30  # it stopped sending
    assert "next: free some disk space" in done.stderr and "sent again, harmlessly" in done.stderr


def test_retries_that_never_went_through_are_not_called_recovered(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Every request fails transiently: the summary must not say "all recovered"."""
    box = sandbox_factory(fault_rate=1.0, faults=["backend_error"])
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    done = run_against(box, config, tmp_path / "r.csv", "--max-attempts", "2", "--backoff", "0")
    assert done.returncode == 3  # work left: a rerun sends them again
    assert (
        "all recovered" not in done.stdout and "3 of the retried requests did not go through" in done.stdout
    )


@pytest.mark.parametrize("command", ["run", "check", "status"])
def test_the_counters_file_is_never_its_own_report(
    tmp_path: Path, sandbox_factory: SandboxFactory, command: str
) -> None:
    """`--report ids.csv` for CONFIG ids.csv is refused, even with --fresh, and the file is untouched."""
    box = sandbox_factory()
    config = tmp_path / "ids.csv"
    config.write_text("Счётчик;Менеджер\n1;Аня\n", encoding="utf-8")
    fresh = ["--fresh"] if command == "run" else []
    done = cli(command, config, "--report", config, "--api-base", box.url, *fresh)
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    assert "is the counters file itself" in done.stderr
    assert config.read_text(encoding="utf-8") == "Счётчик;Менеджер\n1;Аня\n" and box.stats()["requests"] == 0


def test_only_run_offers_fresh_for_a_file_that_is_not_a_report(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`check` has no --fresh, so its refusal does not suggest it."""
    box = sandbox_factory()
    (tmp_path / "notes.csv").write_text("my notes\n")
    config = write_config(tmp_path / "job.yaml", [1])
    done = cli("check", config, "--report", tmp_path / "notes.csv", "--api-base", box.url)
    assert (
        done.returncode == 2 and "is not a bulk-enable report" in done.stderr and "--fresh" not in done.stderr
    )
    done = run_against(box, config, tmp_path / "notes.csv")
    assert done.returncode == 2 and "pass --fresh to replace it" in done.stderr


def first_line(report: Path) -> str:
    return report.read_text(encoding="utf-8-sig").splitlines()[0]


@pytest.mark.parametrize("given", [";", "semicolon", "SEMICOLON"])
def test_a_rerun_keeps_the_reports_separator(
    tmp_path: Path, sandbox_factory: SandboxFactory, given: str
) -> None:
    """`next: run the same command again` without --csv-delimiter keeps the report's `;`."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1, 2])
    report = tmp_path / "r.csv"
    assert run_against(box, config, report, "--csv-delimiter", given, "--max-requests", "1").returncode == 3
    assert run_against(box, config, report).returncode == 0
    assert first_line(report) == ";".join(RUN_COLUMNS) and set(statuses(report).values()) == {"enabled"}
    plan = tmp_path / "plan.csv"
    assert (
        cli("check", config, "--report", plan, "--api-base", box.url, "--csv-delimiter", ";").returncode == 0
    )
    assert cli("check", config, "--report", plan, "--api-base", box.url).returncode == 0
    assert first_line(plan).startswith("counter_id;")
    assert run_against(box, config, report, "--fresh", "--csv-delimiter", "comma").returncode == 0
    assert first_line(report) == ",".join(RUN_COLUMNS)


@pytest.mark.parametrize(
    ("name", "content", "separator"),
    [
        ("ids.csv", "Номер счётчика;Клиент\n1;Плюс\n2;Минус\n".encode("cp1251"), ";"),
        ("u16.txt", "Счётчик\tНазвание\r\n1\tмагазин\r\n".encode("utf-16"), ","),
    ],
)
def test_a_counters_files_separator_shapes_the_csv_report(
    tmp_path: Path, sandbox_factory: SandboxFactory, name: str, content: bytes, separator: str
) -> None:
    """An Excel CSV with `;` (Russian locale) gets a `;` report with no option; Excel's "Unicode
    text" (tabs) a comma one; a .tsv report has tabs either way."""
    box = sandbox_factory()
    config = tmp_path / name
    config.write_bytes(content)
    assert run_against(box, config, tmp_path / "r.csv").returncode == 0
    assert first_line(tmp_path / "r.csv") == separator.join(RUN_COLUMNS)
    assert run_against(box, config, tmp_path / "r.tsv").returncode == 0
    assert first_line(tmp_path / "r.tsv") == "\t".join(RUN_COLUMNS)


def test_counters_filters_by_permission_and_says_how_many_it_kept(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`--permission 'own, edit'` (a space too) keeps those; the header says how many of how many."""
    box = sandbox_factory(counters="1-5")
    done = cli("counters", "--api-base", box.url, "--permission", "own, edit")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# 5 with permission own,edit of 5 counters visible to this token")
    done = cli("counters", "--api-base", box.url, "--permission", "view")
    assert done.stdout.startswith("# 0 with permission view of 5 counters visible")


@pytest.mark.parametrize(("ulogin", "hinted"), [((), True), (("--ulogin", "client-x"), False)])
def test_a_plain_listing_points_at_clients(
    sandbox_factory: SandboxFactory, ulogin: tuple[str, ...], hinted: bool
) -> None:
    """`counters` lists the token's own login: stderr says how to list the clients it represents too
    (`--clients`), unless a client login was asked for."""
    box = sandbox_factory(counters="1-5", represents={"agency": ["client-x"]}, clients={"client-x": [7]})
    done = cli("counters", "--api-base", box.url, *ulogin)
    assert done.returncode == 0, done.stderr
    assert ("add --clients" in done.stderr) is hinted


@pytest.mark.server
def test_the_demo_runs_a_file_of_your_own_into_its_own_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --config mine.txt`: its IDs exist in the demo's sandbox, the report is reports/mine.demo.csv
    (not rows mixed into the demo's), and --csv-delimiter works there too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("5\n6\n41000017\n")
    done = cli("demo", "--config", "mine.txt", "--csv-delimiter", ";")
    assert done.returncode == 1, done.stderr  # 41000017 is one of the demo's staged failures
    report = tmp_path / "reports" / "mine.demo.csv"
    assert statuses(report) == {5: "enabled", 6: "enabled", 41000017: "failed"}
    assert first_line(report).startswith("counter_id;") and not (tmp_path / "reports" / "demo.csv").exists()
    (tmp_path / "agency.yaml").write_text("ulogin: client-b\ncounters: [7, 8]\n")
    assert cli("demo", "--config", "agency.yaml").returncode == 0
    assert statuses(tmp_path / "reports" / "agency.demo.csv") == {7: "enabled", 8: "enabled"}


@pytest.mark.server
def test_a_second_demo_says_how_to_see_it_all_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` twice: the second run sends nothing (the demo's report is complete) and says that is
    a rerun at work, and that --fresh runs it all again; with --fresh it does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("5\n6\n")
    assert cli("demo", "--config", "mine.txt").returncode == 0
    again = cli("demo", "--config", "mine.txt")
    assert "0 requests" in again.stdout and "`bulk-enable demo --fresh` runs it all again" in again.stdout
    fresh = cli("demo", "--config", "mine.txt", "--fresh")
    assert "--fresh" not in fresh.stdout and " 0 requests" not in fresh.stdout, fresh.stdout


def test_report_as_writes_another_format_without_a_request(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`report r.csv --as r.xlsx`: the same rows as a workbook, no token, no request; r.csv stays the
    report reruns use. A run into a new path instead warns that it would send everything again."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", range(1, 6))
    report = tmp_path / "reports" / "job.csv"
    assert run_against(box, config, report).returncode == 0
    requests, original = box.stats()["requests"], report.read_bytes()
    done = cli("report", report, "--as", tmp_path / "job.xlsx", env=cli_env(YANDEX_METRICA_TOKEN=""))
    assert done.returncode == 0, done.stderr
    same = ("counter_id", "status", "attempts", "http_status")  # (the workbook's dates are real dates)
    workbook = [{k: r[k] for k in same} for r in read_report(tmp_path / "job.xlsx")]
    assert workbook == [{k: r[k] for k in same} for r in read_report(report)] and len(workbook) == 5
    assert cli("report", report, "--as", tmp_path / "job.tsv").returncode == 0
    assert first_line(tmp_path / "job.tsv") == "\t".join(RUN_COLUMNS)
    done = cli("report", report, "--as", tmp_path / "semi.csv", "--csv-delimiter", ";")
    assert done.returncode == 0 and first_line(tmp_path / "semi.csv").startswith("counter_id;")
    assert box.stats()["requests"] == requests and report.read_bytes() == original
    (tmp_path / "notes.csv").write_text("my notes\n")
    for target, said in [
        (report, "that is the report itself"),
        (tmp_path / "notes.csv", "not a bulk-enable report"),
        (config, "give the copy a .csv or .xlsx name"),
    ]:
        refused = cli("report", report, "--as", target)
        assert refused.returncode == 2 and one_line(refused.stderr) and said in refused.stderr
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"
    counters_file = cli("report", config)
    assert counters_file.returncode == 2 and "looks like a counters file" in counters_file.stderr


def test_a_run_into_a_new_report_warns_when_the_usual_one_has_the_results(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results in reports/job.csv, a run with --report job.xlsx: one warning naming `report --as`."""
    monkeypatch.chdir(tmp_path)
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1, 2])
    assert cli("run", "job.yaml", "--api-base", box.url).returncode == 0
    done = cli("run", "job.yaml", "--api-base", box.url, "--report", "job.xlsx")
    assert "bulk-enable report reports/job.csv --as job.xlsx" in done.stderr and config.exists()


@pytest.mark.parametrize(
    ("given", "utc"),
    [
        ("00:00", dt.time(0, 0)),
        ("3:00", dt.time(3, 0)),
        ("21:00:30", dt.time(21, 0, 30)),
        ("00:00+03:00", dt.time(21, 0)),  # Moscow midnight
        ("01:30-05:00", dt.time(6, 30)),
        ("23:00Z", dt.time(23, 0)),
    ],
)
def test_quota_reset_takes_an_offset_and_means_utc(given: str, utc: dt.time) -> None:
    """`--quota-reset 00:00+03:00` is 21:00 UTC, not midnight UTC with the offset dropped."""
    args = parse(["run", "x.yaml", "--quota-reset", given])
    assert args.quota_reset == utc and args.quota_reset.tzinfo is None


def test_report_as_refuses_what_it_must_not_write(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """--as onto another job's report (it has a journal), into a file posing as a folder, or
    --csv-delimiter without --as: one line, exit 2, nothing written."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1, 2])
    mine, theirs = tmp_path / "mine.csv", tmp_path / "theirs.csv"
    assert run_against(box, config, mine).returncode == 0
    assert run_against(box, write_config(tmp_path / "other.yaml", [3]), theirs).returncode == 0
    before = theirs.read_bytes()
    (tmp_path / "afile").write_text("x")
    cases: list[tuple[list[str | Path], str]] = [
        (["--as", theirs], "the report of another job"),
        (["--as", tmp_path / "afile" / "x.csv"], "is a file, not a folder"),
        (["--csv-delimiter", ";"], "--csv-delimiter goes with --as"),
    ]
    for args, said in cases:
        done = cli("report", mine, *args)
        assert done.returncode == 2 and one_line(done.stderr) and said in done.stderr, done.stderr
    assert theirs.read_bytes() == before


@pytest.fixture
def job_txt_done(tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """In tmp_path: job.txt (counters 1 and 2) run into reports/job.csv; the sandbox's URL."""
    monkeypatch.chdir(tmp_path)
    box = sandbox_factory()
    (tmp_path / "job.txt").write_text("1\n2\n")
    assert cli("run", "job.txt", "--api-base", box.url).returncode == 0
    return box.url


def test_no_warning_for_another_configs_report_of_the_same_name(tmp_path: Path, job_txt_done: str) -> None:
    """reports/job.csv of job.txt says nothing about job.csv's counters: no 'sends them again'."""
    (tmp_path / "job.csv").write_text("counter_id\n3\n")
    done = cli("run", "job.csv", "--api-base", job_txt_done, "--report", "other.csv")
    assert done.returncode == 0 and "sends them again" not in done.stderr


def test_an_earlier_report_as_the_job_reports_beside_it(tmp_path: Path, job_txt_done: str) -> None:
    """`run reports/job.csv` (a report fed back as the job) writes reports/job.again.csv, not over itself."""
    before = (tmp_path / "reports" / "job.csv").read_bytes()
    done = cli("run", "reports/job.csv", "--api-base", job_txt_done)
    assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "reports" / "job.again.csv") == {1: "enabled", 2: "enabled"}
    assert (tmp_path / "reports" / "job.csv").read_bytes() == before


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("x"), TypeError("y")])
def test_a_programming_error_crashes_loudly_not_as_exit_2(
    bug: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a UserError becomes a line and an exit code; any other exception is a bug and propagates."""
    from bulk_enable import _report

    def broken(path: Path) -> list[object]:
        raise bug

    monkeypatch.setattr(_report, "render_again", broken)
    with pytest.raises(type(bug)):
        cli("report", tmp_path / "r.csv")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("UsageError", 2),
        ("JobStopped", 3),
    ],
)
def test_a_user_error_carries_its_own_exit_code(
    error: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exit code comes from the error itself, and its words are one line on stderr."""
    from bulk_enable import _errors, _report

    def refused(path: Path) -> list[object]:
        raise getattr(_errors, error)("a reason the user can act on")

    monkeypatch.setattr(_report, "render_again", refused)
    done = cli("report", tmp_path / "r.csv")
    assert done.returncode == code and one_line(done.stderr) and "a reason the user" in done.stderr


@pytest.mark.parametrize(
    ("extra", "report", "shown"),
    [
        ([], "r.csv", True),
        (["--csv-delimiter", ","], "r.csv", False),  # a comma chosen is not a default to explain
        (["--csv-delimiter", ";"], "r.csv", False),
        ([], "r.xlsx", False),
    ],
    ids=["default comma", "comma chosen", "semicolon", "xlsx"],
)
def test_a_new_csv_report_with_the_default_comma_says_what_russian_excel_needs(
    tmp_path: Path, sandbox_factory: SandboxFactory, extra: list[str], report: str, shown: bool
) -> None:
    """Russian Excel opens a comma-separated file as one column: a new CSV report with the comma no one
    chose says how to get `;` (once: a rerun of that report does not say it again)."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1, 2])
    first = run_against(box, config, tmp_path / report, *extra)
    tip = "Excel with Russian regional settings wants `;`: add --csv-delimiter ';' once"
    assert (tip in first.stdout) is shown, first.stdout
    again = run_against(box, config, tmp_path / report, *extra)
    assert tip not in again.stdout
    if shown:  # its other way, a workbook of the report, sends nothing and keeps the job where it is
        command = shlex.split(first.stdout.split("make a workbook of it: `")[1].split("`")[0])
        sent = box.stats()["requests"]
        assert command[0] == "bulk-enable" and cli(*command[1:]).returncode == 0
        assert (tmp_path / "r.xlsx").is_file() and box.stats()["requests"] == sent
