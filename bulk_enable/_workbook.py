"""Workbooks to hand a client: the Summary sheet, Russian words on request, times in a chosen zone,
and `report --by-account`, one workbook per account with only its rows.

The Summary sheet counts each account's counters by status (a `status` report adds the day its last
growing window is full), totals them, and charts the totals as a native Excel column chart. The job's
own workbook gets it too, with a row per account. A `Look` says the words and the zone; the default
is the job workbook's own (column codes, statuses in Russian with the code, UTC).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import UsageError
from ._legend import status_words
from ._model import COLUMNS, Row, Status
from ._report import ReportError, rows_of

LANGS = ("en", "ru")
_SHEETS = {"Report": "Отчёт", "Statuses": "Статусы", "Columns": "Столбцы", "Summary": "Сводка"}
_HEADERS = {
    "counter_id": "Счётчик",
    "label": "Подпись",
    "account": "Аккаунт",
    "status": "Статус",
    "column": "Столбец",  # the Columns sheet's own header
    "attempts": "Запросов",
    "since": "Окно с",
    "days": "Дней окна",
    "full_on": "Полное окно с",
    "http_status": "HTTP-статус",
    "error_type": "Тип ошибки",
    "message": "Сообщение",
    "finished_at": "Обработан",
    "checked_at": "Проверен",
}
_WORDS = {  # (English, Russian)
    "account": ("Account", "Аккаунт"),
    "total": ("Total", "Всего"),
    "all": ("All accounts", "Все аккаунты"),
    "full_on": ("Last window full on", "Последнее окно полное с"),
    "times": ("Times are in", "Время указано в поясе"),
    "chart": ("Counters by status", "Счётчики по статусам"),
}
_NAME = re.compile(r"[^\w.@-]+")


@dataclass(frozen=True, slots=True)
class Look:
    """The words and the time zone of a workbook; "" is the job workbook's own (codes, UTC)."""

    lang: str = ""
    zone: str = "UTC"
    tz: dt.tzinfo = field(default=dt.UTC, compare=False)

    def sheet(self, name: str) -> str:
        return _SHEETS.get(name, name) if self.lang == "ru" else name

    def header(self, column: str) -> str:
        return _HEADERS.get(column, column) if self.lang == "ru" else column

    def named(self, column: str) -> str:
        """A column as the Columns sheet names it: its header, with the report's code beside a
        Russian one (the CSV and the job's workbook use the codes)."""
        shown = self.header(column)
        return f"{shown} ({column})" if shown != column else column

    def status(self, code: str) -> str:
        return status_words(code, self.lang or None)

    def word(self, key: str) -> str:
        english, russian = _WORDS[key]
        return russian if self.lang == "ru" else english

    def local(self, row: Row) -> Row:
        """The row with its time (UTC in the journal) said in this zone, as the workbook shows it."""
        if self.zone == "UTC" or not row.at:
            return row
        try:
            when = dt.datetime.fromisoformat(row.at.replace("Z", "+00:00"))
        except ValueError:
            return row
        if when.tzinfo is None:
            return row
        return dataclasses.replace(row, at=when.astimezone(self.tz).isoformat())


def look(lang: str | None, zone: str | None) -> Look:
    """The look `--lang` and `--tz` ask for; an unknown zone or language is one line, exit 2."""
    import zoneinfo

    chosen = lang or "en"
    if chosen not in LANGS:
        raise UsageError(f"--lang {chosen!r}: choose en or ru")
    name = zone or "UTC"
    try:
        tz: dt.tzinfo = dt.UTC if name.upper() == "UTC" else zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--tz {name!r} is not a time zone name: give an IANA name such as Europe/Moscow or Asia/Almaty"
        ) from None
    return Look(chosen, "UTC" if tz is dt.UTC else name, tz)


# --- the Summary sheet ---------------------------------------------------------------------------------


def add_summary(workbook: Any, rows: Sequence[Row], header: Any, look: Look = Look()) -> Any:
    """The Summary sheet: a row per account (counts per status, the total; for a status report the day
    its last growing window is full), a row of totals, and a column chart of the totals."""
    name = look.sheet("Summary")
    sheet = workbook.add_worksheet(name)
    counts: dict[str, collections.Counter[Status]] = {}
    last_full: dict[str, str] = {}
    for row in rows:
        counts.setdefault(row.account, collections.Counter())[row.status] += 1
        if row.status is Status.GROWING and row.full_on > last_full.get(row.account, ""):
            last_full[row.account] = row.full_on
    shown = [s for s in Status if any(s in c for c in counts.values())]
    growing = bool(last_full)
    titles = [look.word("account"), *(look.status(s) for s in shown), look.word("total")]
    titles += [look.word("full_on")] if growing else []
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    bold = workbook.add_format({"bold": True, "top": 1})
    sheet.set_column(0, 0, 24)
    sheet.set_column(1, len(titles), 16)
    for col, title in enumerate(titles):
        sheet.write_string(0, col, title, header)
    accounts = list(counts)
    total: collections.Counter[Status] = sum(counts.values(), collections.Counter())
    lines = [(account, counts[account], last_full.get(account, "")) for account in accounts]
    lines.append((look.word("all"), total, max(last_full.values(), default="")))
    for r, (account, tally, full_on) in enumerate(lines, start=1):
        style = bold if r == len(lines) else None
        sheet.write_string(r, 0, account, style)
        for col, status in enumerate(shown, start=1):
            sheet.write_number(r, col, tally[status], style)
        sheet.write_number(r, len(shown) + 1, sum(tally.values()), style)
        if growing and full_on:
            sheet.write_datetime(r, len(shown) + 2, dt.datetime.fromisoformat(full_on), day)
    below = len(lines) + 2
    sheet.write_string(below, 0, f"{look.word('times')} {look.zone}")
    if shown:
        chart = workbook.add_chart({"type": "column"})
        totals = len(lines)
        chart.add_series(
            {
                "name": look.word("chart"),
                "categories": [name, 0, 1, 0, len(shown)],
                "values": [name, totals, 1, totals, len(shown)],
                "data_labels": {"value": True},
            }
        )
        chart.set_title({"name": look.word("chart")})
        chart.set_legend({"none": True})
        sheet.insert_chart(below + 2, 0, chart, {"x_scale": 1.4, "y_scale": 1.2})
    return sheet


# --- one workbook per account ----------------------------------------------------------------------------


def write_by_account(report: Path, folder: Path, chosen: Look) -> list[tuple[Path, int]]:
    """The report's journal as one workbook per account in `folder`, each ready to send: only that
    account's rows, the Summary sheet first to open; no request, no token. (path, rows) of each."""
    from ._render import looks_like_report, render

    header, rows = rows_of(report)
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"--by-account {folder}: that is a file: give a folder")
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.account, []).append(chosen.local(row))
    written: list[tuple[Path, int]] = []
    taken: set[str] = set()
    for account, mine in groups.items():
        path = folder / f"{_file_name(account, taken)}.xlsx"
        if path.exists() and not looks_like_report(path):
            raise ReportError(
                f"--by-account: {path} exists and is not a bulk-enable report: give another folder"
            )
        try:
            render(path, mine, COLUMNS[header.command], look=chosen)
        except OSError as e:
            raise ReportError(f"--by-account: cannot write {path} ({e.strerror or e})") from None
        written.append((path, len(mine)))
    return written


def _file_name(account: str, taken: set[str]) -> str:
    """A file name from an account name: safe on every system, unique in the folder (case-blind)."""
    stem = _NAME.sub("_", account).strip("._")[:80] or "account"
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate.lower())
    return candidate
