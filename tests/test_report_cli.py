"""The report from the command line, against hostile paths: `report --as` refuses what `--report`
refuses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

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
