"""Every exit says itself: one JSON object with --json whatever the exit, one line and 130 for a signal
from the entry point's first instruction, and a sandbox that other machines can reach only when asked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bulk_enable._model import Command, Job
from bulk_enable._report import ReportFile

from .conftest import REPO, cli, cli_env, write_config


def one_json(stdout: str) -> dict[str, object]:
    """stdout holds exactly one JSON object, and nothing else."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    document = json.loads(lines[0])
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        ("bad option", "unknown option '--reprot'"),
        ("bad value", "--rps: must be a number"),
        ("bad config", "line 1"),
        ("no token", "no token"),
        ("report is a folder", "is a directory"),
        ("report locked", "another bulk-enable job"),
        ("unsafe api base", "--api-base 'http://example.com' is plain http to a non-loopback host"),
    ],
)
def test_json_is_printed_on_every_usage_exit(tmp_path: Path, case: str, shown: str) -> None:
    """With --json, an exit-2 path prints one JSON object with its exit code and the error's words."""
    config = write_config(tmp_path / "job.yaml", [1, 2])
    report = tmp_path / "r.csv"
    args: list[str | Path] = ["run", config, "--report", report, "--json"]
    env = cli_env()
    if case == "bad option":
        args.append("--reprot")
    elif case == "bad value":
        args += ["--rps", "0"]
    elif case == "bad config":
        config.write_text("- abc\n", encoding="utf-8")
    elif case == "no token":
        del env["YANDEX_METRICA_TOKEN"]
    elif case == "report is a folder":
        report.mkdir()
    elif case == "unsafe api base":
        args += ["--api-base", "http://example.com"]
    if case == "report locked":
        with ReportFile(report, Command.RUN, Job()):
            done = cli(*args, env=env)
    else:
        done = cli(*args, env=env)
    assert done.returncode == 2, done.stderr
    document = one_json(done.stdout)
    assert document["exit_code"] == 2 and document["command"] == "run"
    assert isinstance(document["error"], str) and shown in document["error"], document
    assert shown in done.stderr


def test_without_json_an_error_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """Without --json, stdout stays empty on an error: it is for data."""
    done = cli("run", tmp_path / "missing.yaml")
    assert done.returncode == 2 and done.stdout == "" and "missing.yaml" in done.stderr


# A child that signals itself when it first imports `module`: the signal lands at a known point of the
# start-up, with no sleep and no race, wherever that point is.
_SIGNAL_ON_IMPORT = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys

    class SignalOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == {module!r}:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), {signum})
            return None

    sys.meta_path.insert(0, SignalOnImport())
    sys.argv = ["bulk-enable", *{args!r}]
    from bulk_enable._entry import main
    sys.exit(main())
    """
)


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize(
    "module",
    [
        "bulk_enable._cli",  # the command line is still loading
        "argparse",  # deep inside that load
        "bulk_enable._parser",
        "yaml",  # reading the config
        "aiohttp",  # loading the HTTP stack, before the job's own handlers
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_a_signal_at_any_point_of_the_start_is_one_line_and_130(
    tmp_path: Path, signum: signal.Signals, module: str, as_json: bool
) -> None:
    """SIGINT, SIGTERM or SIGHUP while the tool loads: exit 130 and one line, never a traceback or death
    by signal; with --json, one JSON object too."""
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    args = ["run", str(config), "--report", str(tmp_path / "r.csv"), "--api-base", "http://127.0.0.1:9"]
    if as_json:
        args.append("--json")
    code = _SIGNAL_ON_IMPORT.format(module=module, signum=int(signum), args=args)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().endswith("bulk-enable: interrupted")
    if as_json:
        document = one_json(done.stdout)
        assert document["exit_code"] == 130 and document["error"] == "interrupted"
    else:
        assert done.stdout == ""
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_a_sandbox_other_machines_reach_needs_expose(host: str) -> None:
    """`sandbox --host 0.0.0.0` is refused with one line naming --expose: it has no authentication."""
    done = cli("sandbox", "--host", host, "--port", "0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--expose" in done.stderr and "no authentication" in done.stderr
