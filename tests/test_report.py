"""The report on disk: columns, formula guards, xlsx, crash-safe journal, resume, paths, lock, renders."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import dataclasses
import datetime as dt
import errno
import functools
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
import types
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import openpyxl
import pytest
import xlsxwriter.workbook
import xlsxwriter.worksheet
from openpyxl.worksheet.worksheet import Worksheet

import bulk_enable._render
import bulk_enable._report
from bulk_enable._jobs import JobEvents, _rendering
from bulk_enable._legend import status_words
from bulk_enable._model import COLUMNS, Command, Counter, ExitCode, Job, Row, Status, Window
from bulk_enable._progress import CliEvents
from bulk_enable._render import looks_like_report, neutralise, render
from bulk_enable._report import (
    Header,
    ReportError,
    ReportFile,
    check_target,
    default_report_path,
    journal_path,
    lock_path,
    pending_row,
    read_journal,
    render_again,
    render_copy,
)

from .conftest import fifo_maker, read_report, symlink_maker
from .virtual_time import VirtualTimeLoop, virtual_time

T = TypeVar("T")

AT = "2025-03-01T10:00:00Z"
BOM = b"\xef\xbb\xbf"
RUN_HEADER = "counter_id,label,account,status,attempts,http_status,error_type,message,finished_at"
STATUS_HEADER = "counter_id,label,account,status,since,days,full_on,http_status,error_type,message,checked_at"
CALLS = Job()
CONVERSIONS = Job(Window.CONVERSIONS)
DISABLE = Job(Window.CALLS, enable=False)
RUN, CHECK, STATUS = Command.RUN, Command.CHECK, Command.STATUS
PENDING = pending_row("ещё не отправлен")

ROMASHKA = Counter(101, "Клиент «Ромашка»", "агентство")
SPACES = Counter(7, "  два пробела впереди", "b")
FORMULA = Counter(55, "=SUM(A1)", "b")
PHONE = Counter(3, "+7 495 123-45-67", "c")
CONFIG = (ROMASHKA, SPACES, FORMULA, PHONE)


def row(counter: Counter, status: Status, **fields: Any) -> Row:
    """A row stamped at a fixed time, so two renders of it are byte-identical."""
    fields.setdefault("at", AT)
    return Row.of(counter, status, **fields)


def some_rows(command: Command) -> list[Row]:
    """Finished rows for a run or a status report, recorded out of config order."""
    if command is STATUS:
        growing = {"since": "2025-02-20", "days": 9, "full_on": "2025-03-13"}
        return [
            row(FORMULA, Status.GROWING, attempts=1, http_status=200, **growing),
            row(ROMASHKA, Status.FULL, attempts=2, http_status=200, since="2025-01-01", days=59),
        ]
    denied = {"http_status": 403, "error_type": "access_denied", "message": "нет, доступа"}
    return [
        row(PHONE, Status.ENABLED, attempts=1, http_status=200),
        row(ROMASHKA, Status.FAILED, attempts=3, **denied),
    ]


def run_once(
    path: Path,
    counters: Sequence[Counter],
    records: Sequence[Row],
    *,
    command: Command = RUN,
    job: Job = CALLS,
    delimiter: str = ",",
    fresh: bool = False,
    finish: bool = True,
) -> ReportFile:
    """One job on `path`: lay out `counters`, record `records`, finish unless killed first."""
    with ReportFile(path, command, job, delimiter=delimiter, fresh=fresh) as report:
        report.begin(counters, PENDING)
        for r in records:
            report.record(r)
        if finish:
            report.finish()
    return report


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line(error: pytest.ExceptionInfo[ReportError]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def csv_rows(path: Path, delimiter: str) -> list[dict[str, str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def statuses(path: Path) -> dict[int, str]:
    """Status codes by counter, from a CSV (`enabled`) or an xlsx report (`включено сейчас (enabled)`)."""
    return {int(r["counter_id"]): r["status"].rsplit("(", 1)[-1].rstrip(")") for r in read_report(path)}


def journal_rows(path: Path) -> dict[int, Row]:
    return read_journal(journal_path(path))[1]


async def until(condition: Callable[[], bool], within: float = 60) -> float:
    """Seconds on the loop's clock until `condition` holds (a hang fails the test after `within`)."""
    now = asyncio.get_running_loop().time
    started = now()
    while not condition():
        assert now() - started < within, "timed out"
        await asyncio.sleep(0.005)
    return now() - started


def render_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualTimeLoop:
    """The running virtual loop, made the clock a render's duration is measured on: a render then
    takes exactly the virtual time it spends (`VirtualTimeLoop.spend`), however busy the machine."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    monkeypatch.setattr(bulk_enable._report, "time", types.SimpleNamespace(perf_counter=loop.time))
    return loop


# --- 1, 2: the CSV report ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "header", "first_line"),
    [
        (RUN, RUN_HEADER, f"101|Клиент «Ромашка»|агентство|failed|3|403|access_denied|нет, доступа|{AT}"),
        (STATUS, STATUS_HEADER, f"101|Клиент «Ромашка»|агентство|full|2025-01-01|59||200|||{AT}"),
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_columns_bom_and_config_order(
    tmp_path: Path, command: Command, header: str, first_line: str, delimiter: str
) -> None:
    """UTF-8 with BOM, the exact header, one row per config counter in config order; `;` for Excel-ru."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, some_rows(command), command=command, delimiter=delimiter)
    raw = path.read_bytes()
    assert raw.startswith(BOM + header.replace(",", delimiter).encode() + b"\r\n")
    assert raw.count(BOM) == 1
    lines = raw[len(BOM) :].decode().split("\r\n")
    expected = first_line.replace("|", delimiter)
    assert lines[1] == (expected if delimiter == ";" else expected.replace("нет, доступа", '"нет, доступа"'))
    rows = csv_rows(path, delimiter)
    assert list(rows[0]) == header.split(",")
    assert [r["counter_id"] for r in rows] == ["101", "7", "55", "3"]
    assert [r["label"] for r in rows] == [
        "Клиент «Ромашка»",
        "  два пробела впереди",
        "'=SUM(A1)",
        "'+7 495 123-45-67",
    ]
    assert rows[1]["status"] == "deferred" and rows[1]["message"] == "ещё не отправлен"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+7 495", "'+7 495"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("=", "'="),
        ("plain", "plain"),
        ("", ""),
        ("a=b", "a=b"),
        ("7-495", "7-495"),
        (" =1", " =1"),
        ("Клиент", "Клиент"),
        ("'quoted", "'quoted"),
    ],
)
def test_neutralise(cell: str, shown: str) -> None:
    """Cells starting with = + - @ TAB CR get a leading apostrophe; all others are unchanged."""
    assert neutralise(cell) == shown


@pytest.mark.parametrize("column", ["label", "account", "error_type", "message"])
@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x","y")', "+1", "-1", "@A1", "\tx", "\rx"])
def test_csv_text_cells_are_guarded_in_the_file(tmp_path: Path, column: str, cell: str) -> None:
    """Every text column of the CSV is neutralised; numbers stay plain numbers."""
    path = tmp_path / "r.csv"
    counter = Counter(9, "x", "a")
    change: dict[str, Any] = {column: cell}
    record = dataclasses.replace(row(counter, Status.FAILED, attempts=2, http_status=500), **change)
    run_once(path, [counter], [record])
    (written,) = csv_rows(path, ",")
    assert written[column] == "'" + cell
    assert (written["counter_id"], written["attempts"], written["http_status"]) == ("9", "2", "500")


# --- 3: the xlsx report ------------------------------------------------------------------------------

BIG = Counter(2**53 + 1, "=SUM(A1)", "big")
EXACT = Counter(2**53 - 1, "+7 495", "big")


@pytest.mark.parametrize("command", [RUN, STATUS])
def test_xlsx_report(tmp_path: Path, command: Command) -> None:
    """Sheet Report: our columns, frozen header, autofilter, typed cells, no formulas, words; a legend."""
    path = tmp_path / "r.xlsx"
    counters = [*CONFIG, BIG, EXACT]
    records = [*some_rows(command), row(BIG, Status.ENABLED, attempts=1, http_status=200)]
    run_once(path, counters, records, command=command)
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Report", "Statuses", "Columns", "Summary"]
    sheet = workbook["Report"]
    assert isinstance(sheet, Worksheet)
    columns = COLUMNS[command]
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    assert values[0] == list(columns)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{chr(ord('A') + len(columns) - 1)}{len(counters) + 1}"
    numbers = {"counter_id", "attempts", "http_status", "days"}
    dates = {"since", "full_on", "finished_at", "checked_at"}  # the spreadsheet's own dates, UTC
    for cells in sheet.iter_rows(min_row=2):
        for name, cell in zip(columns, cells, strict=True):
            assert cell.data_type != "f"
            if cell.value is None:
                continue
            big_id = name == "counter_id" and cell.value == str(2**53 + 1)
            kind = int if name in numbers and not big_id else dt.datetime if name in dates else str
            assert isinstance(cell.value, kind), (name, cell.value)
            assert not str(cell.value).startswith("'")
    by_id = {r[0]: dict(zip(columns, r, strict=True)) for r in values[1:]}
    assert list(by_id) == [101, 7, 55, 3, str(2**53 + 1), 2**53 - 1]
    assert [by_id[k]["label"] for k in (101, 7, 55, 3)] == [c.label for c in CONFIG]
    assert by_id[str(2**53 + 1)]["label"] == "=SUM(A1)" and by_id[2**53 - 1]["label"] == "+7 495"
    done = "full" if command is STATUS else "failed"
    assert re.fullmatch(rf"[а-яё][^()]+ \({done}\)", str(by_id[101]["status"]))
    assert str(by_id[7]["status"]) == "ещё не сделано: запустите снова (deferred)"
    if command is STATUS:
        assert by_id[55]["days"] == 9 and by_id[55]["since"] == dt.datetime(2025, 2, 20)
    else:
        assert "(enabled)" in str(by_id[str(2**53 + 1)]["status"])
    legend = workbook["Statuses"]
    assert isinstance(legend, Worksheet)
    explained = {str(r[0]): r[1:] for r in legend.iter_rows(min_row=2, values_only=True)}
    assert set(explained) == {status_words(s.value) for s in Status}  # as the Report's cells read
    assert legend.column_dimensions["A"].width >= max(map(len, explained))  # none clipped by column B
    assert all(isinstance(text, str) and text for texts in explained.values() for text in texts)
    columns_sheet = workbook["Columns"]
    assert isinstance(columns_sheet, Worksheet)
    described = {str(r[0]): r[1:] for r in columns_sheet.iter_rows(min_row=2, values_only=True)}
    assert list(described) == list(columns)  # every column of this report, in its order, no other
    assert all(isinstance(text, str) and text for texts in described.values() for text in texts)
    assert all("UTC" in str(text) for text in described[columns[-1]])


ROWS_MEASURED = 5_000  # 100,000 rows take ~16 s under tracemalloc: the figures are in the bench
MEMORY_BUDGET = 2e6  # bytes, whatever the rows: streamed, xlsx peaks at 0.8 MB; built in memory, 5.1 MB


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_large_report_renders_in_bounded_memory(tmp_path: Path, suffix: str) -> None:
    """5,000 rows render in seconds of CPU within a budget that does not grow with the rows (xlsx
    streams rows to disk; the whole book in memory would take 2.5 times the budget). CPU time, not the
    wall clock: other processes on the machine cannot stretch it."""
    rows = [
        Row(10_000_000 + i, f"Клиент №{i}", f"acc{i % 7}", Status.ENABLED, 1, 200, "", "", AT)
        for i in range(ROWS_MEASURED)
    ]
    render(tmp_path / f"warm-up.{suffix}", rows[:10], COLUMNS[RUN])  # imports and caches, once a process
    path = tmp_path / f"r.{suffix}"
    tracemalloc.start()
    try:
        cpu = time.thread_time()
        render(path, rows, COLUMNS[RUN])
        elapsed = time.thread_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET, f"{peak / 1e6:.1f} MB"
    assert elapsed < 30, f"{elapsed:.1f} s of CPU"
    if suffix == "csv":
        assert path.read_bytes().count(b"\r\n") == ROWS_MEASURED + 1
    else:
        sheet = openpyxl.load_workbook(path, read_only=True)["Report"]
        assert sheet.max_row == ROWS_MEASURED + 1


# --- 4: the journal ----------------------------------------------------------------------------------


def test_each_record_is_on_disk_before_the_next(tmp_path: Path) -> None:
    """After begin() the journal holds the layout; each record() is readable at once, before any render."""
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        header, rows = read_journal(journal_path(path))
        assert header == Header(RUN, CALLS, ",")
        assert list(rows) == [c.id for c in CONFIG] and {r.status for r in rows.values()} == {Status.DEFERRED}
        for i, counter in enumerate(CONFIG):
            report.record(row(counter, Status.ENABLED, attempts=1))
            expected = [Status.ENABLED] * (i + 1) + [Status.DEFERRED] * (len(CONFIG) - i - 1)
            assert [r.status for r in journal_rows(path).values()] == expected
            assert not path.exists()


@pytest.mark.parametrize(
    "torn",
    [
        b'{"counter_id": 7, "label": "  \xd0\xb4\xd0\xb2\xd0',  # cut inside a Cyrillic letter
        b'{"counter_id": 7, "status": "enabled"',
        b'{"counter_id": 7, "label": "", "account": "b", "status": "no_such_status"}\n',
        b'{"counter_id": 7, "label": "", "account": "b", "status": "enabled", "extra": 1}\n',
        b"\x00\x00\x00\x00",
    ],
)
def test_a_torn_line_is_skipped(tmp_path: Path, torn: bytes) -> None:
    """A line a kill cut short (or any line that is not a row) is skipped; the rest reads and resumes."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, [row(ROMASHKA, Status.ENABLED)], finish=False)
    with open(journal_path(path), "ab") as f:
        f.write(torn)
    rows = journal_rows(path)
    assert list(rows) == [101, 7, 55, 3]
    assert rows[101].status is Status.ENABLED and rows[7].status is Status.DEFERRED
    report = run_once(path, CONFIG, [row(SPACES, Status.ENABLED)])
    assert report.done(101) and not report.done(7)
    assert statuses(path) == {101: "enabled", 7: "enabled", 55: "deferred", 3: "deferred"}


@pytest.mark.parametrize(
    ("command", "job", "first", "later", "kept"),
    [
        (RUN, CALLS, Status.ENABLED, Status.FAILED, Status.ENABLED),
        (RUN, CALLS, Status.ALREADY_ENABLED, Status.DEFERRED, Status.ALREADY_ENABLED),
        (RUN, CALLS, Status.ENABLED, Status.ALREADY_ENABLED, Status.ALREADY_ENABLED),
        (RUN, CALLS, Status.FAILED, Status.ENABLED, Status.ENABLED),
        (RUN, CALLS, Status.FAILED, Status.DEFERRED, Status.FAILED),
        (RUN, CALLS, Status.DEFERRED, Status.FAILED, Status.FAILED),
        (RUN, CALLS, Status.NOT_FOUND, Status.DEFERRED, Status.NOT_FOUND),
        (STATUS, CALLS, Status.SHORT, Status.DEFERRED, Status.SHORT),
        (RUN, DISABLE, Status.DISABLED, Status.FAILED, Status.DISABLED),
        (RUN, DISABLE, Status.ENABLED, Status.FAILED, Status.FAILED),
        (RUN, CONVERSIONS, Status.ENABLED, Status.NOT_FOUND, Status.ENABLED),
        (STATUS, CALLS, Status.FULL, Status.FAILED, Status.FAILED),
        (STATUS, CALLS, Status.ENABLED, Status.FAILED, Status.FAILED),
    ],
)
def test_done_stays_done_in_the_journal(
    tmp_path: Path, command: Command, job: Job, first: Status, later: Status, kept: Status
) -> None:
    """Later lines win, except that a counter done for a run journal's job stays done, and an answer
    (a failure too) stays against a later line without one (deferred)."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, [row(SPACES, first), row(SPACES, later)], command=command, job=job, finish=False)
    assert journal_rows(path)[7].status is kept
    assert list(journal_rows(path)) == [101, 7, 55, 3]


GOOD_LINE = {"counter_id": 1, "label": "", "account": "default", "status": "enabled", "attempts": 1}


@pytest.mark.parametrize(
    "bad",
    [
        '{"counter_id": [7], "label": "", "account": "default", "status": "failed"}',
        '{"counter_id": {"a": 1}, "label": "", "account": "default", "status": "failed"}',
        '{"counter_id": true, "label": "", "account": "default", "status": "enabled"}',
        '{"counter_id": 7.5, "label": "", "account": "default", "status": "enabled"}',
        '{"counter_id": -7, "label": "", "account": "default", "status": "enabled"}',
        '{"counter_id": 7, "label": ["x"], "account": "default", "status": "enabled"}',
        '{"counter_id": 7, "label": "", "account": "default", "status": "enabled", "attempts": "1"}',
        '{"counter_id": 7, "label": "", "account": "default", "status": "enabled", "days": [1]}',
        '{"counter_id": 7, "label": "", "account": "default", "status": "enabled", "extra": 1}',
        '{"counter_id": 7, "label": "", "account": "default", "status": "enabled_sort_of"}',
        "[" * 100_000,
        '{"counter_id": 7, "label": "", "acc',
        "7",
        "null",
    ],
)
def test_a_hand_edited_or_hostile_journal_line_is_skipped(tmp_path: Path, bad: str) -> None:
    """A line that is not one of ours is skipped, as a line cut by a kill is: no traceback in `run`
    or `report`, and the good lines around it count."""
    path = tmp_path / "r.csv"
    header = {"bulk_enable_journal": 2, "command": "run", "window": "calls", "enable": True}
    good_after = {**GOOD_LINE, "counter_id": 2}
    text = (
        "".join(json.dumps(x) + "\n" for x in (header, GOOD_LINE))
        + bad
        + "\n"
        + json.dumps(good_after)
        + "\n"
    )
    journal_path(path).write_text(text, "utf-8")
    assert list(read_journal(journal_path(path))[1]) == [1, 2]
    render_again(path)
    assert [r["counter_id"] for r in read_report(path)] == ["1", "2"]


def test_a_hostile_journal_header_is_no_journal(tmp_path: Path) -> None:
    """A first line nested 100,000 deep is not a journal (no RecursionError)."""
    path = tmp_path / "r.csv"
    journal_path(path).write_text("[" * 100_000 + "\n", "utf-8")
    assert read_journal(journal_path(path)) == (None, {})


@pytest.mark.parametrize("job", [CALLS, CONVERSIONS, DISABLE])
def test_a_version_1_journal_still_reads(tmp_path: Path, job: Job) -> None:
    """A journal written by 0.1 (`finished_at`, no command) reads as a run's, resumes and renders again."""
    path = tmp_path / "r.csv"
    done = job.changed.value
    lines = [
        {"bulk_enable_journal": 1, "window": job.window.value, "enable": job.enable},
        {"counter_id": 1, "label": "Клиент", "account": "default", "status": done, "attempts": 1,
         "http_status": 200, "error_type": "", "message": "", "finished_at": "2024-05-01T00:00:00Z"},
        {"counter_id": 2, "label": "два", "account": "default", "status": "failed", "attempts": 3,
         "http_status": 503, "error_type": "server_error", "message": "x",
         "finished_at": "2024-05-01T00:00:01Z"},
    ]  # fmt: skip
    journal_path(path).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    header, rows = read_journal(journal_path(path))
    assert header == Header(RUN, job, ",")
    assert rows[1] == Row(1, "Клиент", "default", job.changed, 1, 200, "", "", "2024-05-01T00:00:00Z")
    assert rows[2].status is Status.FAILED and rows[2].at == "2024-05-01T00:00:01Z"
    render_again(path)
    assert [(r["status"], r["finished_at"]) for r in read_report(path)] == [
        (done, "2024-05-01T00:00:00Z"),
        ("failed", "2024-05-01T00:00:01Z"),
    ]
    with ReportFile(path, RUN, job) as report:
        assert report.done(1) and not report.done(2)


# --- 5: resume ---------------------------------------------------------------------------------------


def test_begin_keeps_done_and_failed_rows_and_lays_out_new_ones(tmp_path: Path) -> None:
    """A rerun lays out the config in order: done rows kept, failed kept until retried, new ones deferred."""
    path = tmp_path / "r.csv"
    first = [row(ROMASHKA, Status.ENABLED, attempts=1), row(SPACES, Status.FAILED, message="503")]
    run_once(path, [ROMASHKA, SPACES], first, finish=False)  # killed: the journal alone carries the state
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        assert list(report.rows) == [101, 7, 55, 3] and report.elsewhere == 0
        assert report.rows[101] == first[0] and report.rows[7] == first[1]
        assert report.rows[55] == Row.of(FORMULA, Status.DEFERRED, message="ещё не отправлен", at="")
        assert [report.done(c.id) for c in CONFIG] == [True, False, False, False]
        assert journal_rows(path) == report.rows
        report.record(row(SPACES, Status.ENABLED))
        assert report.rows[7].status is Status.ENABLED
        report.finish()
    assert statuses(path) == {101: "enabled", 7: "enabled", 55: "deferred", 3: "deferred"}


def test_rows_of_other_configs_are_kept_after_this_configs(tmp_path: Path) -> None:
    """Config B on config A's report: A's rows stay in the journal, counted elsewhere, rendered after B's."""
    path = tmp_path / "r.csv"
    config_a, config_b = [ROMASHKA, SPACES, FORMULA], [FORMULA, PHONE]
    run_once(path, config_a, [row(ROMASHKA, Status.ENABLED), row(SPACES, Status.FAILED)])
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(config_b, PENDING)
        assert list(report.rows) == [55, 3, 101, 7] and report.elsewhere == 2
        assert report.done(101) and not report.done(7) and not report.done(55)
        report.record(row(PHONE, Status.ENABLED))
        report.finish()
    assert list(statuses(path).items()) == [(55, "deferred"), (3, "enabled"), (101, "enabled"), (7, "failed")]
    assert list(journal_rows(path)) == [55, 3, 101, 7]
    report = run_once(path, config_a, [])
    assert report.elsewhere == 1 and list(statuses(path)) == [101, 7, 55, 3]


@pytest.mark.parametrize("job", [CALLS, CONVERSIONS, DISABLE])
def test_done_is_true_only_for_the_jobs_done_statuses(tmp_path: Path, job: Job) -> None:
    """done() holds for changed/already of this job and for no other status."""
    path = tmp_path / "r.csv"
    counters = [Counter(i, s.value, "a") for i, s in enumerate(Status, start=1)]
    run_once(path, counters, [row(c, Status(c.label)) for c in counters], job=job)
    with ReportFile(path, RUN, job) as report:
        done = {Status(c.label) for c in counters if report.done(c.id)}
    assert done == {job.changed, job.already}


@pytest.mark.parametrize(
    ("made_by", "made_for", "job", "fresh"),
    [
        (RUN, CALLS, CONVERSIONS, False),
        (RUN, CALLS, DISABLE, False),
        (RUN, DISABLE, CALLS, False),
        (STATUS, CALLS, CALLS, False),
        (RUN, CALLS, CALLS, True),
    ],
)
def test_a_journal_of_another_job_is_not_reused(
    tmp_path: Path, made_by: Command, made_for: Job, job: Job, fresh: bool
) -> None:
    """Another window, --disable, another command or --fresh: no counter is skipped, nothing kept."""
    path = tmp_path / "r.csv"
    records = [row(ROMASHKA, Status.ENABLED), row(PHONE, Status.DISABLED)]
    run_once(path, [ROMASHKA, PHONE], records, command=made_by, job=made_for)
    with ReportFile(path, RUN, job, fresh=fresh) as report:
        assert report.previous == {} and not report.done(101) and not report.done(3)
        report.begin([ROMASHKA], PENDING)
        assert report.elsewhere == 0 and list(report.rows) == [101]
        report.finish()
    assert read_journal(journal_path(path))[0] == Header(RUN, job, ",")
    assert statuses(path) == {101: "deferred"}


# --- 6: render again ---------------------------------------------------------------------------------

NASTY = Counter(77, 'кавычки " и ; и , и\u2028и\x85', "a;b")


@pytest.mark.parametrize("command", [RUN, STATUS])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_render_again_reproduces_the_report_byte_for_byte(
    tmp_path: Path, command: Command, delimiter: str
) -> None:
    """Deleting the report and rendering it from its journal gives the same bytes."""
    path = tmp_path / "r.csv"
    records = [
        *some_rows(command),
        row(NASTY, Status.FAILED, message="строка 1\nстрока 2\r\n=1", http_status=429),
    ]
    run_once(path, [*CONFIG, NASTY], records, command=command, delimiter=delimiter)
    original = path.read_bytes()
    path.unlink()
    rows = render_again(path)
    assert path.read_bytes() == original
    assert [r.counter_id for r in rows] == [101, 7, 55, 3, 77]


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_render_again_after_a_kill(tmp_path: Path, suffix: str) -> None:
    """A report killed mid-run renders from its journal: config order, recorded statuses, history after."""
    path = tmp_path / f"r.{suffix}"
    run_once(path, [PHONE], [row(PHONE, Status.ENABLED)])
    run_once(path, [ROMASHKA, SPACES], [row(SPACES, Status.FAILED)], finish=False)
    render_again(path)
    assert list(statuses(path).items()) == [(101, "deferred"), (7, "failed"), (3, "enabled")]


@pytest.mark.parametrize(
    ("journal", "match"),
    [
        (None, "no journal beside it"),
        (b"", "not a bulk-enable journal"),
        (b"counter_id,label\n", "not a bulk-enable journal"),
        (
            b'{"bulk_enable_journal": 2, "command": "run", "window": "nope", "enable": true}\n',
            "not a bulk-enable",
        ),
        (b'{"something": "else"}\n{"counter_id": 1}\n', "not a bulk-enable journal"),
    ],
)
def test_render_again_refuses_without_our_journal(tmp_path: Path, journal: bytes | None, match: str) -> None:
    """No journal, or one that is not ours: one-line ReportError, nothing written."""
    path = tmp_path / "r.csv"
    if journal is not None:
        journal_path(path).write_bytes(journal)
    before = tree(tmp_path)
    with pytest.raises(ReportError, match=match) as error:
        render_again(path)
    one_line(error)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("path", [Path(""), Path("/"), Path("x/..")])
def test_render_again_refuses_a_path_with_no_name(path: Path) -> None:
    """`bulk-enable report .` is a one-line ReportError, not a ValueError from pathlib."""
    with pytest.raises(ReportError, match="not a file name") as error:
        render_again(path)
    one_line(error)


# --- 7: report paths ---------------------------------------------------------------------------------


def _directory(tmp: Path) -> Path:
    (tmp / "reports").mkdir()
    return tmp / "reports"


def _file(tmp: Path, name: str, content: bytes) -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


def _foreign_xlsx(tmp: Path) -> Path:
    openpyxl.Workbook().save(tmp / "book.xlsx")
    return tmp / "book.xlsx"


def _symlink(tmp: Path, target: str) -> Path:
    if target == "ours.csv":
        render(tmp / target, [], COLUMNS[RUN])
    (tmp / "r.csv").symlink_to(tmp / target)
    return tmp / "r.csv"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "r.csv")
    return tmp / "r.csv"


BAD_PATHS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("directory", _directory, "is a directory"),
    ("empty", lambda _: Path(""), "not a file name"),
    ("dot", lambda _: Path("."), "not a file name"),
    ("root", lambda _: Path("/"), "not a file name"),
    ("dotdot", lambda _: Path("x/.."), "not a file name"),
    ("parent is a file", lambda t: _file(t, "file", b"x") / "r.csv", "is a file, not a folder"),
    ("grandparent is a file", lambda t: _file(t, "file", b"x") / "sub" / "r.csv", "is a file, not a folder"),
    (
        "foreign csv",
        lambda t: _file(t, "notes.csv", "name,phone\nИван,+7\n".encode()),
        "not a bulk-enable report",
    ),
    ("other header", lambda t: _file(t, "r.csv", b"counter_id,label\n1,x\n"), "not a bulk-enable report"),
    ("foreign xlsx", _foreign_xlsx, "not a bulk-enable report"),
    ("not a zip", lambda t: _file(t, "r.xlsx", b"PK\x03\x04junk"), "not a bulk-enable report"),
    ("symlink to our report", lambda t: _symlink(t, "ours.csv"), "not a regular file"),
    ("dangling symlink", lambda t: _symlink(t, "nowhere.csv"), "not a regular file"),
    ("fifo", _fifo, "not a regular file"),
]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, also as the working directory (relative report paths land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _attempt(via: str, path: Path, command: Command, fresh: bool = False) -> None:
    if via == "check_target":
        check_target(path, command, fresh)
    else:
        ReportFile(path, command, CALLS, fresh=fresh).__enter__()


@pytest.mark.parametrize(("make", "match"), [pytest.param(m, x, id=i) for i, m, x in BAD_PATHS])
@pytest.mark.parametrize("via", ["check_target", "ReportFile"])
@pytest.mark.parametrize("command", [RUN, STATUS])
def test_unusable_report_paths_are_refused(
    in_tmp: Path, make: Callable[[Path], Path], match: str, via: str, command: Command
) -> None:
    """Each bad --report is a one-line ReportError, and nothing is created."""
    path = make(in_tmp)
    before = tree(in_tmp)
    with pytest.raises(ReportError, match=match) as error:
        _attempt(via, path, command)
    one_line(error)
    assert tree(in_tmp) == before


@pytest.mark.parametrize("command", [CHECK, STATUS])
@pytest.mark.parametrize("fresh", [False, True])
@pytest.mark.parametrize("via", ["check_target", "ReportFile"])
def test_check_and_status_refuse_a_run_report(
    tmp_path: Path, command: Command, fresh: bool, via: str
) -> None:
    """A path with a `run` journal beside it is refused to check/status, even with --fresh."""
    path = tmp_path / "r.csv"
    run_once(path, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)])
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ReportError, match=f"report of a `run`.*r.{command.value}.csv") as error:
        _attempt(via, path, command, fresh)
    one_line(error)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("name", ["notes.csv", "book.xlsx"])
def test_a_foreign_file_is_replaced_only_with_fresh(tmp_path: Path, name: str) -> None:
    """A file that is not our report is accepted with fresh=True (and replaced by the report)."""
    path = _foreign_xlsx(tmp_path) if name.endswith("xlsx") else _file(tmp_path, name, b"name,phone\n")
    with pytest.raises(ReportError):
        check_target(path, RUN)
    check_target(path, RUN, fresh=True)
    run_once(path, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)], fresh=True)
    assert looks_like_report(path) and statuses(path) == {101: "enabled"}


def _ours(tmp: Path, name: str, command: Command, delimiter: str) -> Path:
    render(tmp / name, [row(ROMASHKA, Status.ENABLED)], COLUMNS[command], delimiter)
    return tmp / name


GOOD_PATHS: list[tuple[str, Callable[[Path], Path]]] = [
    ("run csv", lambda t: _ours(t, "r.csv", RUN, ",")),
    ("run csv ;", lambda t: _ours(t, "r.csv", RUN, ";")),
    ("run csv tab", lambda t: _ours(t, "r.tsv", RUN, "\t")),
    ("status csv", lambda t: _ours(t, "r.csv", STATUS, ",")),
    ("header only", lambda t: _file(t, "r.csv", BOM + RUN_HEADER.encode() + b"\n")),
    ("our xlsx", lambda t: _ours(t, "r.xlsx", RUN, ",")),
    ("empty file", lambda t: _file(t, "r.csv", b"")),
    ("missing", lambda t: t / "r.csv"),
    ("missing folder", lambda t: t / "new" / "deeper" / "r.csv"),
    ("relative", lambda _: Path("r.csv")),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in GOOD_PATHS])
@pytest.mark.parametrize("command", [RUN, CHECK, STATUS])
def test_our_reports_and_new_paths_are_accepted(
    in_tmp: Path, make: Callable[[Path], Path], command: Command
) -> None:
    """Our CSV (any delimiter, any command), our xlsx, an empty file or a new path: accepted; folders made."""
    path = make(in_tmp)
    check_target(path, command)
    with ReportFile(path, command, CALLS, journaled=command is not CHECK) as report:
        assert path.parent.is_dir()
        report.begin([PHONE], PENDING)
        report.finish()
    assert statuses(path) == {3: "deferred"}
    assert journal_path(path).exists() is (command is not CHECK)


# --- 8: temporary files and symlinks -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_planted_symlinks_are_not_written_through(tmp_path: Path, suffix: str) -> None:
    """Symlinks at likely temp names (and at the journal) never lead a write to their target."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    folder = tmp_path / "reports"
    folder.mkdir()
    name = f"r.{suffix}"
    planted = [
        f"{name}.tmp",
        f"{name}.journal.tmp",
        f".{name}.tmp",
        f".{name}.journal.tmp",
        f"{name}.lock.tmp",
    ]
    for link in [*planted, f"{name}.journal"]:
        (folder / link).symlink_to(victim)
    path = folder / name
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        report.record(row(ROMASHKA, Status.ENABLED))
        report.render()
        report.record(row(SPACES, Status.FAILED))
        report.finish()
    render_again(path)
    assert victim.read_text() == "precious\n"
    assert all((folder / link).readlink() == victim for link in planted)
    assert not journal_path(path).is_symlink() and journal_rows(path)[101].status is Status.ENABLED
    assert statuses(path) == {101: "enabled", 7: "failed", 55: "deferred", 3: "deferred"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*planted, name, f"{name}.journal", f"{name}.lock"]
    )


@pytest.mark.parametrize("victim_exists", [True, False])
def test_a_symlinked_lock_is_not_followed(tmp_path: Path, victim_exists: bool) -> None:
    """<report>.lock as a symlink: ReportError (O_NOFOLLOW), its target neither written nor created."""
    victim = tmp_path / "victim.txt"
    if victim_exists:
        victim.write_text("precious\n")
    path = tmp_path / "r.csv"
    lock_path(path).symlink_to(victim)
    with pytest.raises(ReportError, match="symbolic link") as error:
        ReportFile(path, RUN, CALLS).__enter__()
    one_line(error)
    if victim_exists:
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()


def _no_space(*args: object, **kwargs: object) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_failed_render_is_a_report_error_and_keeps_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """Disk full while rendering (CSV or xlsx): one-line ReportError, the old report intact, no temp file."""
    path = tmp_path / f"r.{suffix}"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        report.render()
        before = path.read_bytes()
        report.record(row(ROMASHKA, Status.ENABLED))
        with monkeypatch.context() as patched:
            if suffix == "xlsx":
                patched.setattr(xlsxwriter.workbook, "ZipFile", _no_space)
            else:
                patched.setattr(bulk_enable._render, "_write_csv", _no_space)
            with pytest.raises(
                ReportError, match=r"cannot write the report \(No space left on device\)"
            ) as error:
                report.render()
        one_line(error)
        assert path.read_bytes() == before
    assert tree(tmp_path) == sorted([path.name, f"{path.name}.journal", f"{path.name}.lock"])


def test_a_journal_that_cannot_be_written_is_a_report_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed compaction or append is a one-line ReportError; a failed compaction keeps the old journal."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, [row(ROMASHKA, Status.ENABLED)])
    journal = journal_path(path).read_bytes()
    with ReportFile(path, RUN, CALLS) as report:
        with monkeypatch.context() as patched:
            patched.setattr(os, "fsync", _no_space)
            with pytest.raises(ReportError, match="cannot write the journal") as error:
                report.begin(CONFIG, PENDING)
        one_line(error)
        assert journal_path(path).read_bytes() == journal
        report.begin(CONFIG, PENDING)
        with monkeypatch.context() as patched:
            patched.setattr(os, "write", _no_space)
            with pytest.raises(ReportError, match="cannot write the journal") as error:
                report.record(row(SPACES, Status.ENABLED))
        one_line(error)
    assert tree(tmp_path) == sorted(["r.csv", "r.csv.journal", "r.csv.lock"])


# --- 9: the lock -------------------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["run", "status", "render_again"])
def test_a_second_job_on_the_same_report_is_refused(tmp_path: Path, second: str) -> None:
    """While one job holds the report, another (or `bulk-enable report`) fails at once, and works after."""
    path = tmp_path / "r.csv"
    status_path = tmp_path / "s.csv"
    run_once(path, [ROMASHKA], [])
    run_once(status_path, [ROMASHKA], [], command=STATUS)
    target = status_path if second == "status" else path
    attempts: dict[str, Callable[[], object]] = {
        "run": lambda: run_once(path, [ROMASHKA], []),
        "status": lambda: run_once(status_path, [ROMASHKA], [], command=STATUS),
        "render_again": lambda: render_again(path),
    }
    with ReportFile(target, STATUS if second == "status" else RUN, CALLS):
        with pytest.raises(ReportError, match="another bulk-enable job") as error:
            attempts[second]()
        one_line(error)
    attempts[second]()


def test_the_lock_file_is_never_deleted(tmp_path: Path) -> None:
    """The lock file outlives every job: a third job cannot lock a new inode while a second holds the old."""
    path = tmp_path / "r.csv"
    run_once(path, [ROMASHKA], [])
    inode = lock_path(path).stat().st_ino
    with ReportFile(path, RUN, CALLS):
        with pytest.raises(ReportError, match="another bulk-enable job"):
            ReportFile(path, RUN, CALLS).__enter__()
        assert lock_path(path).stat().st_ino == inode
        with pytest.raises(ReportError, match="another bulk-enable job"):
            ReportFile(path, RUN, CALLS).__enter__()
    assert lock_path(path).stat().st_ino == inode


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Path]:
    """A report whose lock another process holds (flock) until the test ends."""
    path = tmp_path / "r.csv"
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(lock_path(path))], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            yield path
        finally:
            holder.kill()


def test_a_lock_held_by_another_process_blocks(lock_holder: Path) -> None:
    """flock is across processes: a job cannot use a report another process has locked."""
    with pytest.raises(ReportError, match="another bulk-enable job") as error:
        ReportFile(lock_holder, RUN, CALLS).__enter__()
    one_line(error)
    assert not lock_holder.exists() and not journal_path(lock_holder).exists()


# --- 10: background rendering ------------------------------------------------------------------------


def _shows(path: Path, counter_id: int, status: str) -> bool:
    return path.exists() and statuses(path).get(counter_id) == status


@virtual_time
async def test_background_render_follows_the_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With keep_current() running, the file on disk shows each record within one period; idle when idle."""
    render_clock(monkeypatch)
    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.2)
    monkeypatch.setattr(bulk_enable._report, "RENDER_SHARE", 1)  # a render slowed by a busy disk: still 0.2 s
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        task = asyncio.create_task(report.keep_current())
        try:
            lags = []
            for counter in CONFIG[:3]:
                report.record(row(counter, Status.ENABLED))
                shown = functools.partial(_shows, path, counter.id, "enabled")
                lags.append(await until(shown))
            assert max(lags) < 0.25, lags  # one period (0.2 s), and the 5 ms the check polls at
            await asyncio.sleep(0.05)  # the render that showed the last record has counted itself
            renders = report.renders
            await asyncio.sleep(0.3)
            assert report.renders == renders  # nothing changed: nothing rendered
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@virtual_time
async def test_a_slow_render_is_repeated_less_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a render takes t, the next waits RENDER_SHARE x t: a slow report does not hog the run."""
    loop = render_clock(monkeypatch)

    def slow_render(*args: Any) -> None:
        loop.spend(0.03)
        render(*args)

    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.01)
    monkeypatch.setattr(bulk_enable._report, "RENDER_SHARE", 10)  # renders ~0.3 s apart, not 0.04 s
    monkeypatch.setattr(bulk_enable._report, "render", slow_render)
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        started = loop.time()
        task = asyncio.create_task(report.keep_current())
        try:
            for i in range(40):
                report.record(row(CONFIG[i % len(CONFIG)], Status.ENABLED, attempts=i))
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elapsed = loop.time() - started  # ~0.9 s: ~20 renders if they were not spaced out, 3 if they are
        assert 1 <= report.renders <= 1 + elapsed / (10 * 0.03), (report.renders, elapsed)
        assert report.render_seconds >= 0.03


async def test_cancel_during_a_slow_render_then_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling keep_current() waits for the render in progress; finish() then writes the final rows."""
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_render(*args: Any) -> None:
        if not started.is_set():
            started.set()
            assert release.wait(60)  # the render is in progress until the test lets it end
            render(*args)
            finished.set()
        else:
            render(*args)

    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.02)
    monkeypatch.setattr(bulk_enable._report, "render", slow_render)
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        report.record(row(ROMASHKA, Status.FAILED))
        task = asyncio.create_task(report.keep_current())
        await until(started.is_set)
        for counter in CONFIG:
            report.record(row(counter, Status.ENABLED))
        task.cancel()
        for _ in range(10):  # ample turns of the loop for a cancellation that did not wait to land
            await asyncio.sleep(0)
        assert not task.done()  # it waits for the render in progress...
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()  # ...and ends once that is done
        report.finish()
    assert statuses(path) == dict.fromkeys((101, 7, 55, 3), "enabled")
    assert {r.status for r in journal_rows(path).values()} == {Status.ENABLED}


class LateStart(concurrent.futures.ThreadPoolExecutor):
    """An executor whose jobs start late, once `go` is set: a background render that begins after a
    newer one."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.go = threading.Event()
        self.submitted = threading.Event()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        def late() -> T:
            assert self.go.wait(60)
            return fn(*args, **kwargs)

        self.submitted.set()
        return super().submit(late)


async def test_a_stale_render_never_replaces_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background render of older rows that starts after a newer render does not overwrite it."""
    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.02)
    executor = LateStart()
    asyncio.get_running_loop().set_default_executor(executor)
    path = tmp_path / "r.csv"
    with executor, ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        report.record(row(ROMASHKA, Status.FAILED))
        task = asyncio.create_task(report.keep_current())
        await until(executor.submitted.is_set)  # a render of the old rows is on its way
        for counter in CONFIG:
            report.record(row(counter, Status.ENABLED))
        report.render()
        executor.go.set()  # the old render starts only now, after the newer one
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # ...and has now run
        assert report.renders == 1
        assert statuses(path) == dict.fromkeys((101, 7, 55, 3), "enabled")


# --- 11: default report paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "command", "expected"),
    [
        (CALLS, RUN, "reports/job.csv"),
        (CONVERSIONS, RUN, "reports/job.conversions-enable.csv"),
        (DISABLE, RUN, "reports/job.calls-disable.csv"),
        (Job(Window.CONVERSIONS, False), RUN, "reports/job.conversions-disable.csv"),
        (CALLS, CHECK, "reports/job.plan.csv"),
        (CONVERSIONS, CHECK, "reports/job.conversions-enable.plan.csv"),
        (DISABLE, CHECK, "reports/job.calls-disable.plan.csv"),
        (CALLS, STATUS, "reports/job.status.csv"),
        (DISABLE, STATUS, "reports/job.status.csv"),
        (CONVERSIONS, STATUS, "reports/job.conversions.status.csv"),
    ],
)
def test_default_report_path(job: Job, command: Command, expected: str) -> None:
    """reports/<stem>.csv for the default job; the job, .plan or .status in the name otherwise."""
    assert default_report_path(Path("configs/job.yaml"), job, command) == Path(expected)


def test_default_report_paths_never_collide() -> None:
    """Every (job, command) that keeps its own report gets its own file name."""
    jobs = [Job(w, e) for w in Window for e in (True, False)]
    paths = [default_report_path(Path("job.yaml"), j, c) for j in jobs for c in (RUN, CHECK)]
    paths += [default_report_path(Path("job.yaml"), Job(w), STATUS) for w in Window]
    assert len(set(paths)) == len(paths) == 10


def test_numbers_are_never_guarded_and_pre_1900_dates_stay_text(tmp_path: Path) -> None:
    """The formula guard is for text: a negative number is `-1`, not `'-1`; a date no spreadsheet
    can hold (before 1900) is written as text, not as an invalid date serial."""
    odd = Row(1, "-label", "default", Status.FULL, since="0001-01-01", days=-1, at="2026-11-29T09:00:00Z")
    render(tmp_path / "s.csv", [odd], COLUMNS[STATUS])
    line = (tmp_path / "s.csv").read_text(encoding="utf-8-sig").splitlines()[1].split(",")
    assert line[1] == "'-label" and line[5] == "-1" and line[4] == "0001-01-01"
    render(tmp_path / "s.xlsx", [odd], COLUMNS[STATUS])
    sheet = openpyxl.load_workbook(tmp_path / "s.xlsx")["Report"]
    assert isinstance(sheet, Worksheet)
    assert sheet["E2"].value == "0001-01-01" and sheet["F2"].value == -1


def test_every_status_has_its_words_once() -> None:
    """One table describes each status: its cell words and its legend line, in English and Russian."""
    from bulk_enable._legend import STATUS_LEGEND, STATUS_WORDS, status_words

    assert set(STATUS_WORDS) == set(Status)
    assert [code for code, _, _ in STATUS_LEGEND] == [s.value for s in STATUS_WORDS]
    for status, words in STATUS_WORDS.items():
        assert all((words.short, words.short_ru, words.meaning, words.meaning_ru))
        assert status_words(status.value) == f"{words.short_ru} ({status.value})"
    assert status_words("from_a_newer_version") == "from_a_newer_version"


# --- 12: cells a spreadsheet cannot carry ------------------------------------------------------------


@pytest.mark.parametrize("column", ["label", "account", "error_type", "message"])
@pytest.mark.parametrize(
    ("char", "shown"),
    [("\x00", "\\x00"), ("\uffff", "\\uffff"), ("\ufffe", "\\ufffe"), ("\x1b", "\\x1b"), ("\x0b", "\\x0b")],
)
def test_csv_cells_escape_what_the_xlsx_escapes(tmp_path: Path, column: str, char: str, shown: str) -> None:
    """A NUL, U+FFFF (a config label, an API message...) is escaped in the CSV as the xlsx escapes it:
    never raw in the file, which a CSV reader then reads; tab and line breaks stay as they are."""
    path = tmp_path / "r.csv"
    counter = Counter(9, "x", "a")
    change: dict[str, Any] = {column: f"a{char}b\tc\nd"}
    run_once(path, [counter], [dataclasses.replace(row(counter, Status.FAILED), **change)])
    assert char.encode() not in path.read_bytes()
    (written,) = csv_rows(path, ",")
    assert written[column] == f"a{shown}b\tc\nd"


# --- 13: our workbooks, exactly ------------------------------------------------------------------------


def _workbook_described(tmp: Path, description: str) -> Path:
    book = openpyxl.Workbook()
    book.properties.description = description
    book.save(tmp / "book.xlsx")
    return tmp / "book.xlsx"


@pytest.mark.parametrize(
    "description",
    ["not a bulk_enable report", "bulk_enable report (a copy)", " bulk_enable report", "Bulk_enable report"],
)
def test_a_workbook_that_only_mentions_the_marker_is_not_ours(tmp_path: Path, description: str) -> None:
    """Someone's workbook whose description contains our marker is not ours: refused without --fresh."""
    path = _workbook_described(tmp_path, description)
    before = path.read_bytes()
    assert not looks_like_report(path)
    with pytest.raises(ReportError, match="not a bulk-enable report") as error:
        run_once(path, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)])
    one_line(error)
    assert path.read_bytes() == before
    run_once(path, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)], fresh=True)
    assert looks_like_report(path) and statuses(path) == {101: "enabled"}


def test_a_workbook_described_exactly_as_ours_is_ours(tmp_path: Path) -> None:
    """The marker is the whole description; openpyxl saving it there (as Excel does on save) keeps it ours."""
    assert looks_like_report(_workbook_described(tmp_path, bulk_enable._render.XLSX_MARKER))


def test_a_workbook_with_a_hostile_core_xml_is_not_ours(tmp_path: Path) -> None:
    """Entities (a billion laughs) or a huge docProps/core.xml: not ours, and not expanded."""
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "bulk_enable report">]>'
        '<cp:coreProperties xmlns:cp="x" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:description>&a;</dc:description></cp:coreProperties>"
    )
    for name, core in [("entity.xlsx", laughs.encode()), ("huge.xlsx", b" " * 200_000)]:
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("docProps/core.xml", core)
        assert not looks_like_report(tmp_path / name)


# --- 14: Excel's row limit -----------------------------------------------------------------------------


@pytest.fixture
def small_sheets(monkeypatch: pytest.MonkeyPatch) -> int:
    """Excel (and xlsxwriter) with sheets of 5 rows, the header included; our limit follows (it is one
    module constant), so a workbook past the limit is tested without a million rows."""
    limit = 5
    real_init = xlsxwriter.worksheet.Worksheet.__init__

    def small(self: xlsxwriter.worksheet.Worksheet) -> None:
        real_init(self)
        self.xls_rowmax = limit

    monkeypatch.setattr(xlsxwriter.worksheet.Worksheet, "__init__", small)
    monkeypatch.setattr(bulk_enable._render, "EXCEL_ROWS", limit, raising=False)  # (old code: none)
    return limit


def _sheets(path: Path) -> dict[str, list[list[Any]]]:
    workbook = openpyxl.load_workbook(path)
    return {
        name: [list(r) for r in sheet.iter_rows(values_only=True)]
        for name, sheet in zip(workbook.sheetnames, workbook.worksheets, strict=True)
    }


@pytest.mark.filterwarnings("ignore:Cannot insert chart")  # the sheet limit lowered to 5 rows
@pytest.mark.parametrize(
    ("rows", "sheets"),
    [
        (0, ["Report"]),
        (4, ["Report"]),
        (5, ["Report", "Report 2"]),
        (13, ["Report", "Report 2", "Report 3", "Report 4"]),
    ],
)
def test_rows_past_excels_sheet_limit_continue_on_the_next_sheet(
    tmp_path: Path, small_sheets: int, rows: int, sheets: list[str]
) -> None:
    """Past Excel's rows a sheet, the report goes on in `Report 2`, `Report 3`... with the header on
    each (frozen, filtered): every counter is in the workbook, in order, none silently dropped."""
    counters = [Counter(1000 + i, f"клиент {i}", "a") for i in range(rows)]
    path = tmp_path / "r.xlsx"
    run_once(path, counters, [row(c, Status.ENABLED) for c in counters])
    found = _sheets(path)
    assert list(found) == [*sheets, "Statuses", "Columns", "Summary"]
    reports = [found[name] for name in sheets]
    assert all(sheet[0] == list(RUN_HEADER.split(",")) for sheet in reports)
    assert all(1 <= len(sheet) <= small_sheets for sheet in reports)
    assert [r[0] for sheet in reports for r in sheet[1:]] == [c.id for c in counters]
    workbook = openpyxl.load_workbook(path)
    for name, sheet in zip(sheets, reports, strict=True):
        assert workbook[name].freeze_panes == "A2"
        assert workbook[name].auto_filter.ref == f"A1:I{max(2, len(sheet))}"


# --- 15: --as refuses what --report refuses ------------------------------------------------------------


def _ours_linked(tmp: Path) -> Path:
    render(tmp / "ours.csv", [], COLUMNS[RUN])
    return symlink_maker("copy.csv", "ours.csv")(tmp)


BAD_COPIES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("symlink to stdout", symlink_maker("copy.csv", "/proc/self/fd/1"), "not a regular file"),
    ("symlink to /dev/null", symlink_maker("copy.csv", "/dev/null"), "not a regular file"),
    ("symlink to our report", _ours_linked, "not a regular file"),
    ("dangling symlink", symlink_maker("copy.csv", "nowhere.csv"), "not a regular file"),
    ("fifo", fifo_maker("copy.csv"), "not a regular file"),
    ("directory", _directory, "is a directory"),
    ("dot", lambda _: Path("."), "not a file name"),
    ("parent is a file", lambda t: _file(t, "file", b"x") / "copy.csv", "is a file, not a folder"),
    ("foreign csv", lambda t: _file(t, "copy.csv", b"name,phone\n"), "not a bulk-enable report"),
]


@pytest.mark.parametrize(("make", "match"), [pytest.param(m, x, id=i) for i, m, x in BAD_COPIES])
def test_render_copy_refuses_what_report_refuses(
    in_tmp: Path, make: Callable[[Path], Path], match: str
) -> None:
    """`report J --as` onto a symlink (to stdout, /dev/null...), a FIFO, a directory or someone's file:
    one line, `--as` named, and the target stays what it was (never replaced by a regular file)."""
    report = in_tmp / "r.csv"
    run_once(report, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)])
    copy = make(in_tmp)
    before = {p: (p.lstat().st_mode, p.is_symlink() and p.readlink()) for p in in_tmp.rglob("*")}
    with pytest.raises(ReportError, match=match) as error:
        render_copy(report, copy)
    assert one_line(error).startswith("--as ")
    assert {p: (p.lstat().st_mode, p.is_symlink() and p.readlink()) for p in in_tmp.rglob("*")} == before


# --- 16: a damaged journal header ----------------------------------------------------------------------


def _damage(first_line: bytes) -> bytes:
    return first_line.rstrip(b"\n").rstrip(b"}") + b"\n"  # lost its closing brace


def _damage_header(path: Path, damage: Callable[[bytes], bytes] = _damage) -> bytes:
    """The journal of `path` with its first line damaged; its bytes now."""
    header, rest = journal_path(path).read_bytes().split(b"\n", 1)
    journal_path(path).write_bytes(damage(header + b"\n") + rest)
    return journal_path(path).read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        _damage,
        lambda line: line[: len(line) // 2] + b"\n",
        lambda line: b"\x00" * len(line),
        lambda line: b'{"counter_id": 101, "label": "", "account": "a", "status": "enabled"}\n',
        lambda line: line.replace(b'"window": "calls"', b'"window": "calsl"'),
    ],
    ids=["brace", "half", "nul", "a row", "edited"],
)
@pytest.mark.parametrize("via", ["check_target", "ReportFile"])
def test_a_damaged_journal_header_is_refused_not_replaced(
    tmp_path: Path, damage: Callable[[bytes], bytes], via: str
) -> None:
    """A journal whose first line no longer says its job: a run is refused (naming the journal, nothing
    sent, the journal as it was) and takes it over only with --fresh; nothing done is forgotten unasked."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, [row(ROMASHKA, Status.ENABLED), row(PHONE, Status.ENABLED)])
    before = _damage_header(path, damage)
    with pytest.raises(ReportError, match=r"first line is damaged.*--fresh") as error:
        _attempt(via, path, RUN)
    assert one_line(error).startswith(str(journal_path(path)))
    assert journal_path(path).read_bytes() == before
    report = run_once(path, CONFIG, [], fresh=True)
    assert not report.done(101) and read_journal(journal_path(path))[0] == Header(RUN, CALLS, ",")


@pytest.mark.parametrize("command", [CHECK, STATUS])
@pytest.mark.parametrize("fresh", [False, True])
def test_check_and_status_never_replace_a_damaged_journal(
    tmp_path: Path, command: Command, fresh: bool
) -> None:
    """It may be a run's journal: check and status (which always start afresh) are refused, even fresh."""
    path = tmp_path / "r.csv"
    run_once(path, CONFIG, [row(ROMASHKA, Status.ENABLED)])
    _damage_header(path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ReportError, match=f"first line is damaged.*r.{command.value}.csv") as error:
        ReportFile(path, command, CALLS, fresh=fresh, journaled=command is STATUS).__enter__()
    one_line(error)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_empty_journal_is_no_journal(tmp_path: Path) -> None:
    """An empty journal has nothing to lose: a run goes on (and writes a whole one)."""
    path = tmp_path / "r.csv"
    journal_path(path).write_bytes(b"")
    run_once(path, [ROMASHKA], [row(ROMASHKA, Status.ENABLED)])
    assert journal_rows(path)[101].status is Status.ENABLED


# --- 17: a full disk is exit 3, and a report never written is not named ------------------------------


def test_files_that_cannot_be_written_stop_the_job_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal that cannot be created (a full disk) is exit 3, not 2 (bad input), and says nothing was
    sent and what to do; so are a journal line and a render that cannot be written."""
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        with monkeypatch.context() as patched:
            patched.setattr(os, "fsync", _no_space)
            with pytest.raises(
                ReportError, match=r"cannot write the journal.*nothing was sent; free some disk"
            ):
                report.begin(CONFIG, PENDING)
        assert not journal_path(path).exists()
        report.begin(CONFIG, PENDING)
        errors = []
        for write, act in [("write", report.record), ("fsync", lambda _: report.render())]:
            with monkeypatch.context() as patched:
                patched.setattr(os, write, _no_space)
                with pytest.raises(ReportError) as error:
                    act(row(SPACES, Status.ENABLED))
            errors.append(error.value)
    assert [e.exit_code for e in errors] == [ExitCode.STOPPED] * 2


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [(errno.ENOSPC, ExitCode.STOPPED), (errno.EDQUOT, ExitCode.STOPPED), (errno.EACCES, ExitCode.USAGE)],
)
def test_a_lock_that_cannot_be_created_is_exit_3_only_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, exit_code: ExitCode
) -> None:
    """The lock file on a full disk: the job stopped (3); in a folder the user cannot write: bad input (2)."""

    def refused(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(ReportError, match="cannot write the report here") as error:
        ReportFile(tmp_path / "r.csv", RUN, CALLS).__enter__()
    one_line(error)
    assert error.value.exit_code is exit_code


def test_written_says_whether_the_report_shows_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`written` is true only while the file on disk shows the rows as they stand."""
    path = tmp_path / "r.csv"
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        assert not report.written
        report.render()
        assert report.written
        report.amend(row(ROMASHKA, Status.DEFERRED, message="later"))
        assert not report.written
        with monkeypatch.context() as patched:
            patched.setattr(bulk_enable._render, "_write_csv", _no_space)
            with pytest.raises(ReportError):
                report.finish()
        assert not report.written
        report.finish()
        assert report.written and statuses(path)[101] == "deferred"


# --- 18: a background render that fails --------------------------------------------------------------


async def test_a_failed_background_render_is_tried_again_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report path briefly a folder: renders go on failing quietly (said once, however many fail),
    and the report appears as soon as it can, without waiting for the end of the run."""
    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.02)
    path = tmp_path / "r.csv"
    said: list[ReportError] = []
    with ReportFile(path, RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        path.mkdir()
        task = asyncio.create_task(report.keep_current(said.append))
        try:
            report.record(row(ROMASHKA, Status.ENABLED))
            await until(lambda: report.failed_renders >= 6, 20)
            assert len(said) == 1 and "r.csv: cannot write the report" in str(said[0])
            path.rmdir()
            await until(functools.partial(_shows, path, 101, "enabled"), 20)
            report.record(row(SPACES, Status.ENABLED))
            await until(functools.partial(_shows, path, 7, "enabled"), 20)
            assert report.failed_renders == 0 and len(said) == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Bug(Exception):
    """Not a ReportError: a bug."""


async def test_a_bug_in_a_background_render_is_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything but a ReportError from the background render ends the job with it, never silently."""
    called = threading.Event()

    def broken(*args: Any) -> None:
        called.set()
        raise Bug("a bug")

    monkeypatch.setattr(bulk_enable._report, "RENDER_EVERY", 0.01)
    monkeypatch.setattr(bulk_enable._report, "render", broken)
    with ReportFile(tmp_path / "r.csv", RUN, CALLS) as report:
        report.begin(CONFIG, PENDING)
        with pytest.raises(Bug, match="a bug"):
            async with _rendering(report, JobEvents()):
                await until(called.is_set, 20)


def test_a_failing_report_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    """What the person sees when renders keep failing: one warning with the reason and that it goes on."""
    with caplog.at_level(logging.INFO, logger="bulk_enable"):
        CliEvents(progress=False).report_failing(
            ReportError("r.csv: cannot write the report (Is a directory)")
        )
    (said,) = caplog.records
    assert said.levelno == logging.WARNING and "\n" not in said.getMessage()
    assert said.getMessage().startswith("r.csv: cannot write the report (Is a directory); trying again")
