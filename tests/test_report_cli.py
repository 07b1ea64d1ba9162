"""The report from the command line, against hostile paths and journals: `report --as` refuses what
`--report` refuses, a damaged journal is never replaced unasked."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bulk_enable._report import journal_path

from .conftest import SandboxFactory, cli, run_against, write_config


def _symlink_to(target: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "copy.csv").symlink_to(target)
        return tmp / "copy.csv"

    return make


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "copy.csv")
    return tmp / "copy.csv"


@pytest.mark.parametrize(
    "make",
    [_symlink_to("/proc/self/fd/1"), _symlink_to("/dev/null"), _symlink_to("/dev/stdout"), _fifo],
    ids=["/proc/self/fd/1", "/dev/null", "/dev/stdout", "fifo"],
)
def test_report_as_refuses_a_symlink_or_a_fifo(
    tmp_path: Path, sandbox_factory: SandboxFactory, make: Callable[[Path], Path]
) -> None:
    """`report J --as` onto a symlink (to stdout, /dev/null) or a FIFO: exit 2, one line, left as it was."""
    box = sandbox_factory()
    report = tmp_path / "r.csv"
    assert run_against(box, write_config(tmp_path / "job.yaml", [1, 2]), report).returncode == 0
    copy = make(tmp_path)
    kind = copy.lstat().st_mode
    done = cli("report", report, "--as", copy)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"--as {copy}: exists and is not a regular file" in done.stderr and done.stdout == ""
    assert copy.lstat().st_mode == kind


def test_a_run_on_a_damaged_journal_sends_nothing_until_fresh(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A journal whose first line lost its closing brace: the rerun is refused (naming the journal, no
    request, the journal as it was), never resends the done counters unasked; --fresh starts over."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", range(1, 6))
    report = tmp_path / "r.csv"
    assert run_against(box, config, report).returncode == 0
    journal = journal_path(report)
    header, rest = journal.read_bytes().split(b"\n", 1)
    journal.write_bytes(header.rstrip(b"}") + b"\n" + rest)
    before, sent = journal.read_bytes(), box.stats()["write_requests"]
    done = run_against(box, config, report)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{journal}: its first line is damaged" in done.stderr and "--fresh" in done.stderr
    assert journal.read_bytes() == before and box.stats()["write_requests"] == sent
    fresh = run_against(box, config, report, "--fresh")
    assert fresh.returncode == 0 and box.stats()["write_requests"] == sent + 5
