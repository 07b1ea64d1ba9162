"""Shared fixtures: the aioresponses compatibility shim, the sandbox, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import aioresponses.core
import pytest
import yarl
from aiohttp import ClientResponse

from bulk_enable import Profile, SandboxThread, read_csv

TOKEN = "test-token-7f3a9c"  # distinctive, so a leak is found by a plain substring search
REPO = Path(__file__).resolve().parent.parent


# --- aioresponses on aiohttp >= 3.14 ---------------------------------------------------------------
# aiohttp 3.14.0 (a security release) added a required keyword-only `stream_writer` to
# ClientResponse.__init__; aioresponses 0.7.9 does not pass it (pnuckowski/aioresponses#289; the fix,
# PR #288, is unmerged). aiohttp only reads `stream_writer.output_size`, so a stand-in with
# output_size=0 is enough. The shim applies only when aioresponses actually fails this way: once a
# fixed aioresponses is installed, it is a no-op and can be deleted.


class _ResponseWithStreamWriter(ClientResponse):
    def __init__(self, method: str, url: yarl.URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
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


# --- the sandbox and the CLI ---------------------------------------------------------------------


@pytest.fixture
def sandbox_factory() -> Iterator[Any]:
    """Start sandboxes in background threads; all stopped at the end of the test."""
    started: list[SandboxThread] = []

    def start(**settings: Any) -> SandboxThread:
        settings.setdefault("tokens", {TOKEN: "agency"})
        box = SandboxThread(Profile().updated(settings)).__enter__()
        started.append(box)
        return box

    yield start
    for box in started:
        box.__exit__(None, None, None)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICA_")}
    env["YANDEX_METRICA_TOKEN"] = TOKEN
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bulk_enable ARGS` as a user would; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "bulk_enable", *map(str, args)],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def run_against(
    box: SandboxThread, config: Path, report: Path, *extra: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`bulk-enable run CONFIG --report REPORT --api-base <sandbox> EXTRA...`."""
    return run_cli("run", config, "--report", report, "--api-base", box.url, *extra, env=env)


def start_cli(*args: str | Path, capture: bool = False) -> subprocess.Popen[str]:
    """Start `python -m bulk_enable ARGS` in the background (to kill or interrupt it)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "bulk_enable", *map(str, args)],
        env=cli_env(),
        cwd=REPO,
        stdout=out,
        stderr=out,
        text=True,
    )


def write_config(path: Path, ids: range | list[int]) -> Path:
    path.write_text("".join(f"- {i}\n" for i in ids), encoding="utf-8")
    return path


def statuses(report: Path) -> dict[int, str]:
    return {int(r["counter_id"]): r["status"] for r in read_csv(report)}
