"""The report from the command line, against hostile disks and paths: a full disk is exit 3 and never a
report named that was not written, `report --as` refuses what `--report` refuses, a damaged journal is
never replaced unasked."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bulk_enable._render
from bulk_enable._report import journal_path

from .conftest import (
    SandboxFactory,
    cli,
    fifo_maker,
    journal_statuses,
    run_against,
    statuses,
    symlink_maker,
    write_config,
)


def _no_space(*args: object, **kwargs: object) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_journal_that_cannot_be_created_is_exit_3_and_nothing_is_sent(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk before the first counter: exit 3 (the job stopped), not 2 (bad input), one line with
    the reason and what to do, no request sent."""
    box = sandbox_factory()
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    monkeypatch.setattr(os, "fsync", _no_space)
    done = run_against(box, config, tmp_path / "r.csv")
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (
        "r.csv.journal: cannot write the journal (No space left on device): nothing was sent" in done.stderr
    )
    assert "free some disk space" in done.stderr and box.stats()["requests"] == 0


@pytest.mark.parametrize("json_output", [False, True])
def test_a_disk_that_fills_mid_run_never_names_a_report_it_did_not_write(
    tmp_path: Path, sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch, json_output: bool
) -> None:
    """The disk fills after five journal lines, and every render fails: exit 3, and neither the summary
    nor the JSON names a report file that does not exist; `bulk-enable report` writes it from the
    journal afterwards."""
    real_write, writes = os.write, []

    def fills_up(fd: int, data: bytes) -> int:  # (in this process only the journal's lines use os.write)
        writes.append(fd)
        return _no_space() if len(writes) > 5 else real_write(fd, data)

    monkeypatch.setattr(os, "write", fills_up)
    monkeypatch.setattr(bulk_enable._render, "_write_csv", _no_space)
    box = sandbox_factory(latency=0.01)
    config = write_config(tmp_path / "job.yaml", range(1, 101))
    report = tmp_path / "r.csv"
    done = run_against(box, config, report, *(["--json"] if json_output else []))
    assert done.returncode == 3, done.stderr
    assert "r.csv.journal: cannot write the journal (No space left on device)" in done.stderr + done.stdout
    assert not report.exists()
    words = done.stderr if json_output else done.stdout
    assert f"report: {report}\n" not in words
    assert f"report: not written ({report} could not be written)" in words
    assert f"`bulk-enable report {report}` writes it from its journal" in words
    if json_output:
        summary = json.loads(done.stdout)
        assert summary["report"] is None and summary["exit_code"] == 3
    monkeypatch.undo()
    again = cli("report", report)
    assert again.returncode == 0, again.stderr
    assert statuses(report) == journal_statuses(report) and len(statuses(report)) == 100


@pytest.mark.parametrize(
    "make",
    [
        symlink_maker("copy.csv", "/proc/self/fd/1"),
        symlink_maker("copy.csv", "/dev/null"),
        symlink_maker("copy.csv", "/dev/stdout"),
        fifo_maker("copy.csv"),
    ],
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


@pytest.mark.parametrize("given", [".", "..", "/"])
def test_report_names_a_path_that_is_not_a_file_as_given(given: str) -> None:
    """`report .`: the path came as REPORT, so the one line says REPORT, never --report, which the
    command was not given."""
    done = cli("report", given)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"REPORT {given!r} is not a file name" in done.stderr and "--report" not in done.stderr
