"""Shared fixtures: the aioresponses shim, sandboxes, and the CLI run in-process or as a process."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

import aioresponses.core
import pytest
import yarl
from aiohttp import ClientResponse

from bulk_enable import SandboxThread
from bulk_enable._cli import main

from .support import fifo_maker as fifo_maker
from .support import journal_statuses as journal_statuses
from .support import read_report as read_report
from .support import sandbox_thread
from .support import serve_app as serve_app
from .support import statuses as statuses
from .support import symlink_maker as symlink_maker
from .support import web_server as web_server
from .support import write_config as write_config

TOKEN = "test-token-7f3a9c2e41"  # distinctive, so a leak is found by a plain substring search
REPO = Path(__file__).resolve().parent.parent
TEST_COUNTERS = "1-3000"  # the sandbox's counters unless a test says otherwise


def pytest_configure(config: pytest.Config) -> None:
    """Child processes get the signal dispositions of a command typed at a terminal. A CI runner that
    starts `make test` in the background leaves SIGINT ignored, a child would inherit that, and the
    tool rightly keeps an inherited "ignore" (`nohup`, `cmd &`); the signal tests need the usual case.
    And every test, and every process it starts, sees the same time zone."""
    for signum, usual in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGHUP, signal.SIG_DFL),
    ):
        if signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, usual)
    os.environ["TZ"] = "UTC"  # times in messages are said in UTC and local: one zone for every test
    time.tzset()
    # Processes the tests start trust no certificate authority. The tests reach only loopback over
    # plain HTTP, so a test that tried TLS to a real host would fail at once; and aiohttp, which loads
    # the system's whole CA bundle when it is imported, starts each child ~0.1 s of CPU sooner.
    os.environ["SSL_CERT_FILE"] = os.devnull


# --- aioresponses on aiohttp >= 3.14 ---------------------------------------------------------------
# aiohttp 3.14.0 (a security release) added a required keyword-only `stream_writer` to
# ClientResponse.__init__; aioresponses 0.7.9 does not pass it (pnuckowski/aioresponses#289; the fix,
# PR #288, is unmerged). aiohttp only reads `stream_writer.output_size`, so a stand-in with
# output_size=0 is enough. The shim applies only when aioresponses actually fails this way: once a
# fixed aioresponses is installed, it is a no-op and can be deleted.


class _ResponseWithStreamWriter(ClientResponse):
    def __init__(self, method: str, url: yarl.URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))  # a Mock costs 0.2 ms
        super().__init__(method, url, **kwargs)


def aioresponses_needs_shim() -> bool:
    """True while aioresponses cannot build a response on the installed aiohttp."""
    try:
        aioresponses.core.RequestMatch("http://127.0.0.1/")._build_response(yarl.URL("http://127.0.0.1/"))
    except TypeError as e:
        return "stream_writer" in str(e)
    return False


@pytest.fixture(autouse=True, scope="session")
def _aioresponses_compat() -> Iterator[None]:
    if not aioresponses_needs_shim():
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aioresponses.core, "ClientResponse", _ResponseWithStreamWriter)
        yield


# --- what a test starts -----------------------------------------------------------------------------
# `make test-fast` runs only tests that start no process, serve no port and fuzz nothing. A test says
# what it starts with a marker (pyproject.toml): `e2e` or `process` for a child process, `sandbox` or
# `server` for a loopback server; hypothesis marks its own tests `hypothesis`. Tests using these
# fixtures are marked here; any other test that starts one without its marker fails, naming it.

MARKED_BY_FIXTURE = {"sandbox_factory": "sandbox", "serve": "server", "lock_holder": "process"}
MAY_START = {"process": ("e2e", "process"), "server": ("e2e", "sandbox", "server")}


# Scheduling order: seconds of processes, big inputs and fuzzing first; then the servers' tests, which
# mostly wait on loopback; the many quick CPU-only tests last, to fill every worker to the end.
ORDER = (("e2e", "process", "slow", "hypothesis"), ("sandbox", "server"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start a sandbox, a server or a process by the fixtures they use; then put
    them in ORDER, so that xdist hands out the long ones first and no worker ends on one alone."""
    for item in items:
        for fixture, marker in MARKED_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)

    def rank(item: pytest.Item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return next((i for i, kinds in enumerate(ORDER) if marks.intersection(kinds)), len(ORDER))

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _starts_only_what_it_is_marked_for(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unmarked test that starts a process or listens on a port fails at once, naming the marker."""
    marks = {mark.name for mark in request.node.iter_markers()}

    def refuse(what: str, marker: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(
                f"this test {what}: mark it @pytest.mark.{marker} (make test-fast skips those)"
            )

        return refused

    if not marks.intersection(MAY_START["process"]):
        monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process", "process"))
    if not marks.intersection(MAY_START["server"]):
        monkeypatch.setattr(socket.socket, "listen", refuse("serves a port", "server"))


# --- sandboxes -------------------------------------------------------------------------------------


class SandboxFactory(Protocol):
    """Starts a sandbox with these profile settings (tokens default to {TOKEN: "agency"})."""

    def __call__(self, **settings: Any) -> SandboxThread: ...


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes in background threads; all stopped at the end of the test."""
    started: list[SandboxThread] = []

    def start(**settings: Any) -> SandboxThread:
        box = sandbox_thread(TOKEN, TEST_COUNTERS, **settings).__enter__()
        started.append(box)
        return box

    yield start
    for box in started:
        box.__exit__(None, None, None)


# --- the CLI ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """A finished CLI run: its exit code and what it wrote to stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICA_", "YANDEX_"))}
    env["YANDEX_METRICA_TOKEN"] = TOKEN
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Done:
    """`bulk-enable ARGS` in this process (fast): main() with its own environment and captured output."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env or cli_env(), clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main([str(a) for a in args])
    return Done(int(code), out.getvalue(), err.getvalue())


def run_against(
    box: SandboxThread, config: Path, report: Path, *extra: str | Path, env: dict[str, str] | None = None
) -> Done:
    """`bulk-enable run CONFIG --report REPORT --api-base <sandbox> EXTRA...`, in-process."""
    return cli("run", config, "--report", report, "--api-base", box.url, *extra, env=env)


def run_process(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """`python -m bulk_enable ARGS` as a separate process, for what only a process shows."""
    return subprocess.run(
        [sys.executable, "-m", "bulk_enable", *map(str, args)],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def start_process(
    *args: str | Path, capture: bool = False, ignoring: signal.Signals | None = None
) -> subprocess.Popen[str]:
    """Start `python -m bulk_enable ARGS` in the background (to kill or interrupt it); `ignoring`: as
    `nohup` or a script's `cmd &` would, with that signal ignored from before the start."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    launch = [sys.executable, "-m", "bulk_enable"]
    if ignoring is not None:  # an ignored signal stays ignored across exec, as it does for nohup
        launch = [
            sys.executable,
            "-c",
            "import os, signal, sys; "
            f"signal.signal({int(ignoring)}, signal.SIG_IGN); "
            "os.execv(sys.executable, [sys.executable, '-m', 'bulk_enable', *sys.argv[1:]])",
        ]
    return subprocess.Popen(
        [*launch, *map(str, args)],
        env=cli_env(),
        cwd=REPO,
        stdout=out,
        stderr=out,
        text=True,
    )
