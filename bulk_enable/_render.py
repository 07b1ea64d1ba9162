"""The report file people open: CSV (the default) or an Excel workbook, always written atomically.

A render goes to a temporary file created exclusively beside the report (never through a planted
symlink), is flushed to disk, then renamed over the report: a reader sees the old report or the
new one, never half of one.

A workbook holds at most EXCEL_ROWS rows a sheet: more continue on the sheets `Report 2`, `Report 3`...
(each with the header), so a person opening it in Excel sees every counter, none silently dropped.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import os
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING
from xml.etree import ElementTree

from ._legend import COLUMN_LEGEND, STATUS_LEGEND
from ._model import COLUMNS, Row
from ._untrusted import FORMULA_START, cell_text

if TYPE_CHECKING:
    from ._workbook import Look

XLSX_MARKER = "bulk_enable report"  # the workbook's whole description: how a report is told from other files
EXCEL_ROWS = 1_048_576  # rows in one Excel sheet, the header included
_CORE = "docProps/core.xml"
_CORE_LIMIT = 65_536  # bytes: xlsxwriter writes about 1 KB there; a larger one is not ours
_DESCRIPTION = "{http://purl.org/dc/elements/1.1/}description"
_EXCEL_MAX_EXACT = 2**53  # larger IDs are written as text: a spreadsheet number would round them
_EXCEL_CELL_LIMIT = 32_767
_WIDTHS = {
    "counter_id": 12,
    "label": 40,
    "account": 14,
    "status": 30,
    "attempts": 9,
    "since": 11,
    "days": 6,
    "full_on": 11,
    "http_status": 11,
    "error_type": 24,
    "message": 70,
    "finished_at": 21,
    "checked_at": 21,
}
_NUMBERS = frozenset({"counter_id", "attempts", "http_status", "days"})
_DAYS = frozenset({"since", "full_on"})
_DATES = _DAYS | {"finished_at", "checked_at"}  # UTC, written as the spreadsheet's own dates
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_xlsx(path: Path) -> bool:
    return path.suffix.lower() == ".xlsx"


def render(
    path: Path, rows: Sequence[Row], columns: Sequence[str], delimiter: str = ",", look: Look | None = None
) -> None:
    """Write `rows` to `path` (xlsx by its suffix, else CSV) atomically; a workbook in `look`'s words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        if is_xlsx(path):
            os.close(fd)
            _write_xlsx(tmp, rows, columns, look)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        else:
            with os.fdopen(fd, "w", encoding="utf-8-sig", errors="replace", newline="") as f:
                _write_csv(f, rows, columns, delimiter)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_csv(f: IO[str], rows: Sequence[Row], columns: Sequence[str], delimiter: str) -> None:
    writer = csv.writer(f, delimiter=delimiter)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                "" if (v := row.cell(c)) is None else v if isinstance(v, int) else neutralise(v)
                for c in columns
            ]
        )


def neutralise(cell: str) -> str:
    """Make a CSV cell that a spreadsheet would run as a formula plain text (OWASP CSV injection), and
    escape what no cell may carry raw (a NUL, U+FFFF: the xlsx writer escapes them too).

    CSV has no way to say "text", so the guard is a visible leading apostrophe; the xlsx report
    needs none (its cells are typed).
    """
    cell = cell_text(cell)
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def _write_xlsx(path: str, rows: Sequence[Row], columns: Sequence[str], look: Look | None = None) -> None:
    import xlsxwriter  # only xlsx reports need it
    from xlsxwriter.exceptions import FileCreateError

    from ._workbook import Look, add_summary

    look = look or Look()

    workbook = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,  # rows stream to disk: 100,000 rows in a few MB
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    workbook.set_properties({"title": "Yandex Metrica counters", "comments": XLSX_MARKER})
    header = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "bottom": 1})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    moment = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    per_sheet = EXCEL_ROWS - 1
    for first in range(0, max(1, len(rows)), per_sheet):
        last = min(len(rows), first + per_sheet)
        number = first // per_sheet + 1
        sheet = workbook.add_worksheet(look.sheet("Report") + ("" if number == 1 else f" {number}"))
        for col, name in enumerate(columns):
            sheet.set_column(col, col, _WIDTHS.get(name, 14))
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, max(1, last - first), len(columns) - 1)
        for col, name in enumerate(columns):
            sheet.write_string(0, col, look.header(name), header)
        for r in range(1, last - first + 1):
            row = rows[first + r - 1]
            for col, name in enumerate(columns):
                value = row.cell(name)
                if value is None or value == "":
                    continue
                if name == "status":
                    sheet.write_string(r, col, look.status(str(value)))
                elif name in _NUMBERS and isinstance(value, int) and abs(value) < _EXCEL_MAX_EXACT:
                    sheet.write_number(r, col, value)
                elif name in _DATES and (when := _when(str(value))) is not None:
                    sheet.write_datetime(r, col, when, day if name in _DAYS else moment)
                else:
                    sheet.write_string(r, col, str(value)[:_EXCEL_CELL_LIMIT])
    _legend(workbook, header, columns, look)
    summary = add_summary(workbook, rows, header, look)
    if look.lang:  # a workbook to hand a client opens on its Summary
        summary.activate()
    try:
        workbook.close()
    except FileCreateError as e:  # xlsxwriter wraps the OSError of writing the file
        raise e.args[0] if e.args and isinstance(e.args[0], OSError) else OSError(str(e)) from None


@functools.lru_cache(maxsize=4096)
def _when(text: str) -> dt.datetime | None:
    """A report's date (`2026-11-29`) or UTC time (`2026-11-29T09:00:00Z`) as a naive datetime."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None
    return when if when.year >= 1900 else None  # a spreadsheet has no date before 1900: text, then


def _legend(workbook: object, header: object, columns: Sequence[str], look: Look) -> None:
    """Two sheets that explain the report in English and Russian: its statuses, then its columns."""
    zone, statuses = look.zone, look.sheet("Statuses")

    def here(text: str) -> str:  # the legend says UTC and the sheet's English name
        return text.replace("UTC", zone).replace("Statuses", statuses)

    shown = [(look.named(c), here(e), here(r)) for c, e, r in COLUMN_LEGEND if c in columns]
    named = [
        (look.status(code), english, russian) for code, english, russian in STATUS_LEGEND
    ]  # as cells read
    for title, first, entries in (("Statuses", "status", named), ("Columns", "column", shown)):
        sheet = workbook.add_worksheet(look.sheet(title))  # type: ignore[attr-defined]
        sheet.set_column(0, 0, min(48, max(18, *(len(code) + 2 for code, _, _ in entries))))
        sheet.set_column(1, 2, 70)
        russian_first = look.lang == "ru"  # a client's workbook in Russian reads Russian first
        names = (
            (look.header(first), "значение", "meaning") if russian_first else (first, "meaning", "значение")
        )
        for col, name in enumerate(names):
            sheet.write_string(0, col, name, header)
        for r, (code, english, russian) in enumerate(entries, start=1):
            sheet.write_string(r, 0, code)
            sheet.write_string(r, 1, russian if russian_first else english)
            sheet.write_string(r, 2, english if russian_first else russian)


def looks_like_report(path: Path) -> bool:
    """True when `path` is (or could only be) a report this tool wrote: safe to write over."""
    try:
        if path.stat().st_size == 0:
            return True
        if is_xlsx(path):
            return _described_as_ours(path)
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            first = f.readline().rstrip("\r\n")
    except OSError:
        return False
    return any(first == sep.join(columns) for columns in COLUMNS.values() for sep in (",", ";", "\t"))


def _described_as_ours(path: Path) -> bool:
    """True when the workbook's description is exactly XLSX_MARKER: a description that only contains
    it ("not a bulk_enable report") belongs to someone else."""
    try:
        with zipfile.ZipFile(path) as z:
            if z.getinfo(_CORE).file_size > _CORE_LIMIT:
                return False
            with z.open(_CORE) as f:
                data = f.read(_CORE_LIMIT + 1)
        if len(data) > _CORE_LIMIT or b"<!" in data:  # no DTD, so no entity to expand
            return False
        description = ElementTree.fromstring(data).find(_DESCRIPTION)
    except (
        OSError,
        KeyError,
        ValueError,
        RuntimeError,
        EOFError,
        zlib.error,
        zipfile.BadZipFile,
        ElementTree.ParseError,
    ):
        return False
    return description is not None and description.text == XLSX_MARKER
