"""The report: exact columns, BOM, neutralised formulas, crash-safe journal, per-job resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulk_enable import COLUMNS, Counter, Job, Row, read_csv
from bulk_enable._report import ReportError, ReportWriter, journal_path, neutralise

CALLS = Job("calls", True)
COUNTERS = [
    Counter(1, "Клиент А", "default"),
    Counter(2, '=HYPERLINK("x")', "default"),
    Counter(3, "", "b"),
]


def test_columns_bom_and_input_order(tmp_path: Path) -> None:
    """UTF-8 with BOM, the exact header, one row per input counter in input order."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.record(Row.of(COUNTERS[2], "enabled", attempts=1, http_status=200))
        writer.record(Row.of(COUNTERS[0], "failed", attempts=1, http_status=403, error_type="access_denied"))
        writer.finish(COUNTERS, {})
    raw = report.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf" + ",".join(COLUMNS).encode() + b"\r\n")
    rows = list(read_csv(report))
    assert [r["counter_id"] for r in rows] == ["1", "2", "3"]
    assert [r["status"] for r in rows] == ["failed", "deferred", "enabled"]
    assert rows[0]["label"] == "Клиент А" and rows[0]["error_type"] == "access_denied"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+7 495", "'+7 495"),
        ("-x", "'-x"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_formula_cells_are_neutralised(cell: str, shown: str) -> None:
    """Cells a spreadsheet would run are made text."""
    assert neutralise(cell) == shown


def test_formula_label_in_the_file(tmp_path: Path) -> None:
    """A label that starts with = is written with a leading quote."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.finish(COUNTERS[1:2], {})
    assert next(read_csv(report))["label"].startswith("'=")


def test_each_row_is_on_disk_before_the_next(tmp_path: Path) -> None:
    """The journal holds every recorded row at once, before any final write (kill -9 safety)."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.record(Row.of(COUNTERS[0], "enabled", attempts=1))
        lines = journal_path(report).read_text(encoding="utf-8").splitlines()
        assert json.loads(lines[-1])["counter_id"] == 1
        assert not report.exists()


def test_rerun_skips_done_and_resends_the_rest(tmp_path: Path) -> None:
    """Enabled counters are done; failed, deferred and missing ones are not."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.record(Row.of(COUNTERS[0], "enabled"))
        writer.record(Row.of(COUNTERS[1], "failed"))
    # killed here: no finish(); the journal alone carries the state
    with ReportWriter(report, CALLS) as writer:
        assert [writer.done(c.id) for c in COUNTERS] == [True, False, False]
        final = writer.finish(COUNTERS, {"b": "stopped"})
    assert [r.status for r in final] == ["enabled", "deferred", "deferred"]
    with ReportWriter(report, CALLS, fresh=True) as writer:
        assert not any(writer.done(c.id) for c in COUNTERS)


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A line cut short by a kill does not stop the next run."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.record(Row.of(COUNTERS[0], "enabled"))
    with open(journal_path(report), "a", encoding="utf-8") as f:
        f.write('{"counter_id": 2, "label": "x", "acc')
    with ReportWriter(report, CALLS) as writer:
        assert writer.done(1) and not writer.done(2)


@pytest.mark.parametrize("other", [Job("conversions", True), Job("calls", False)])
def test_a_report_of_another_job_skips_nothing(tmp_path: Path, other: Job) -> None:
    """A report made for one window or action never makes another skip a counter."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS) as writer:
        writer.record(Row.of(COUNTERS[0], "enabled"))
        writer.finish(COUNTERS, {})
    with ReportWriter(report, other) as writer:
        assert not writer.done(1)


def test_disable_done_statuses(tmp_path: Path) -> None:
    """For --disable, `disabled` and `already_disabled` are done."""
    report = tmp_path / "r.csv"
    job = Job("calls", False)
    with ReportWriter(report, job) as writer:
        writer.record(Row.of(COUNTERS[0], "disabled"))
        writer.record(Row.of(COUNTERS[1], "already_disabled"))
        writer.record(Row.of(COUNTERS[2], "enabled"))
    with ReportWriter(report, job) as writer:
        assert [writer.done(c.id) for c in COUNTERS] == [True, True, False]


def test_two_runs_cannot_share_a_report(tmp_path: Path) -> None:
    """A second run on the same report is refused at once."""
    report = tmp_path / "r.csv"
    with ReportWriter(report, CALLS), pytest.raises(ReportError, match="another bulk-enable run"):
        ReportWriter(report, CALLS).__enter__()
