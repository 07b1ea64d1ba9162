"""A job as a .txt of IDs or a .csv table: read line by line, split only at `\n` and `\r\n`, with a
strict CSV reader whose quotes must close on their line (see `_config` for the limits)."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from . import _config
from ._config import (
    CSV_HEADER,
    DEFAULT_ACCOUNT,
    UTF16_BOMS,
    Account,
    Config,
    ConfigError,
    Ids,
    id_from_text,
    is_login,
    no_surrogates,
    not_utf8,
    too_big,
)
from ._model import COLUMNS, Counter
from ._untrusted import FORMULA_START

log = logging.getLogger("bulk_enable")

MAX_LINE = 65_536  # characters of one line of a .txt or .csv: an ID and its label need far fewer


# Header cells are compared folded (lower case, ё as е, no spaces, _ or -), so `Номер счётчика` matches.
_ID_HEADERS = frozenset(
    {"counterid", "id", "counter", "tagid", "tag", "счетчик", "номерсчетчика", "idсчетчика", "idтега", "тег"}
)


_ULOGIN_HEADERS = frozenset({"ulogin", "client", "clientlogin", "логин", "логинклиента"})  # folded


_LABEL_HEADERS = ("label", "name", "site", "подпись", "название", "имя", "клиент", "сайт", "описание")


# What str.splitlines() (and some editors) also take for a line break: within a line, a mistake.
_LINE_BREAKS = re.compile("\r(?!\n)|[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


_OLD_MAC = (
    "a carriage return (\\r) without a newline in the line: remove it (a file whose lines all end so, "
    "an old Mac format, must be saved again: as CSV UTF-8 in Excel)"
)


_BREAK_NAMES = {
    "\x0b": "a vertical tab (\\x0b)",
    "\x0c": "a form feed (\\x0c)",
    "\x1c": "a file separator (\\x1c)",
    "\x1d": "a group separator (\\x1d)",
    "\x1e": "a record separator (\\x1e)",
    "\x85": "a next-line character (U+0085)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
}


_REPORT_HEADERS = frozenset(COLUMNS.values())  # a report of this tool: its label cells may span lines


_ROW_START = re.compile(r"\s*[0-9]+\s*[,;\t]")  # a line that reads as a row of its own: `123,...`


_LABEL = 1  # the label's column in a report of this tool


def load_table(f: io.BufferedReader, path: Path) -> Config:
    """A .txt or .csv read line by line: UTF-8, or UTF-16 with its BOM (Excel's "Unicode text");
    not UTF-8, it is read again as Windows-1251 (Excel's plain CSV in a Russian locale)."""
    suffix = path.suffix.lower()
    encoding = "utf-16" if f.peek(2)[:2] in UTF16_BOMS else "utf-8-sig"
    try:
        return _parse_table(f, path, suffix, encoding)
    except UnicodeDecodeError as e:
        if encoding == "utf-16":
            raise ConfigError(
                [f"{path}: not UTF-16 text ({e.reason}): save it again as CSV UTF-8, or as Unicode text"]
            ) from None
        if not f.seekable():  # a pipe: what was read cannot be read again
            raise ConfigError([not_utf8(path, e)]) from None
    log.warning(
        "%s is not UTF-8: read as Windows-1251 (%s); labels may need a look",
        path,
        "Excel's plain CSV" if suffix == ".csv" else "Windows' ANSI text",
    )
    f.seek(0)
    return _parse_table(f, path, suffix, "cp1251")


def _parse_table(f: io.BufferedReader, path: Path, suffix: str, encoding: str) -> Config:
    stream = io.TextIOWrapper(
        f, encoding, errors="replace" if encoding == "cp1251" else "strict", newline="\n"
    )
    try:
        return _parse_stream(stream, path, suffix)
    finally:
        stream.detach()  # the file is the caller's to read again or close


def _parse_stream(stream: TextIO, path: Path, suffix: str) -> Config:
    ids = Ids(path)
    lines = _Lines(stream, ids)
    if suffix == ".csv":
        return _parse_csv(lines, lines.flawed, ids)
    # Excel's "Unicode text" is a .txt table with tabs; a column saved with its header is one too.
    # Its first line that says something tells (blank lines and comments say nothing of the shape).
    skipped, first = 0, ""
    for line in lines:
        if line.split("#", 1)[0].strip():
            first = line
            break
        skipped += 1
    parse = _parse_csv if _is_a_table(first.split("#", 1)[0]) else _parse_lines
    return parse(itertools.chain([first] if first else [], lines), lines.flawed, ids, skipped + 1)


class _Lines:
    """The lines of a .txt or .csv as an editor numbers them: split on "\\n" only, each with its ending.

    Reading stops (ConfigError) at a line of more than MAX_LINE characters or past _config.MAX_BYTES in all
    (a pipe or a device has no size to check first). A character that other programs take for a line
    break (str.splitlines: a vertical tab, U+2028, ...) is a problem on its line, which is then
    `flawed`: nothing more is said of it.
    """

    def __init__(self, stream: TextIO, ids: Ids) -> None:
        self.readline, self.ids = stream.readline, ids
        self.number = 0  # the last line read
        self.flawed: set[int] = set()  # at most _config.MAX_ERRORS: each is a problem said
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline(MAX_LINE + 2)  # room for the line's "\r\n"
        if not line:
            raise StopIteration
        self.number += 1
        self.read += len(line)
        if len(line) > MAX_LINE or self.read > _config.MAX_BYTES or _LINE_BREAKS.search(line):
            self._check(line)
        return line

    def _check(self, line: str) -> None:
        found = _LINE_BREAKS.search(line)
        old_mac = found is not None and found.group() == "\r"  # lines ended by "\r" alone are one line here
        ending = 2 if line.endswith("\r\n") else 1 if line.endswith("\n") else 0
        if len(line) - ending > MAX_LINE:
            self.ids.stop(
                self.number,
                _OLD_MAC
                if old_mac
                else f"longer than {MAX_LINE:,} characters: a counter ID and its label need far fewer: "
                "is it the right file?",
            )
        if self.read > _config.MAX_BYTES:
            raise ConfigError([*self.ids.errors, too_big(self.ids.path, "it is")])
        if found is not None:
            self.flawed.add(self.number)
            self.ids.problem(
                self.number,
                _OLD_MAC
                if old_mac
                else f"{_BREAK_NAMES[found.group()]} in the line, where other programs may see a line "
                "break: remove it (one line for each counter)",
            )


def _parse_lines(lines: Iterator[str], flawed: set[int], ids: Ids, start: int = 1) -> Config:
    """One ID a line; `start`: the number of the first of `lines`."""
    counters: list[Counter] = []
    for number, raw in enumerate(lines, start=start):
        value = raw.split("#", 1)[0].strip()
        if not value or number in flawed:
            continue
        counter_id = id_from_text(value, number, ids)
        if counter_id is not None and ids.add(counter_id, number):
            counters.append(Counter(counter_id, "", DEFAULT_ACCOUNT))
    return ids.result([Account(DEFAULT_ACCOUNT, None, tuple(counters))])


def _parse_csv(lines: Iterator[str], flawed: set[int], ids: Ids, start: int = 1) -> Config:
    """A table, its header first; `start`: the number of the first of `lines`."""
    path = ids.path
    first = next(lines, "")
    delimiter = sniff_delimiter(first.rstrip("\r\n"))
    rows = _csv_rows(itertools.chain([first], lines), flawed, ids, delimiter, start)
    header_row = next(rows, None)
    if ids.errors:  # the first row unreadable: the shape of the rest is unknown
        raise ConfigError(ids.errors)
    if header_row is None:
        raise ConfigError([f"{path}: the file is empty: expected a counter_id column"])
    header_line, cells = header_row
    header = [h.strip().strip("'").lower() for h in cells]
    folded = [_folded(h) for h in header]
    id_cols = [i for i, h in enumerate(folded) if h in _ID_HEADERS]
    if len(id_cols) > 1:
        both = " and ".join(repr(cells[i].strip()) for i in id_cols[:2])
        ids.stop(header_line, f"two counter ID columns, {both}: keep one, or rename the other")
    id_col = id_cols[0] if id_cols else None
    label_col = next((folded.index(n) for n in _LABEL_HEADERS if n in folded), None)
    ulogin_col = next((i for i, h in enumerate(folded) if h in _ULOGIN_HEADERS), None)
    if id_col is not None and label_col is None and ulogin_col is None and len(header) == 2:
        label_col = 1 - id_col  # the other column of two is the label, whatever its name
    if id_col is None:
        if len(header) > 1:
            shown = ", ".join(repr(h.strip()) for h in cells[:8])
            ids.stop(
                header_line,
                f"no counter ID column (columns: {shown}): name it counter_id, id, Счётчик or Номер счётчика",
            )
        # A first cell with a digit in it is an ID (checked like the others), not a header to skip.
        id_col = 0
        if header and any(ch.isdigit() for ch in header[0]):
            rows = itertools.chain([header_row], rows)
    by_login: dict[str | None, list[Counter]] = {None: []}  # a `ulogin` column splits the list by client
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        value = row[id_col].strip() if id_col < len(row) else ""
        if len(header) <= 1 and sum(1 for cell in row if cell.strip()) > 1:
            value = delimiter.join(row).strip()  # `1,2` in a one-column file: several IDs, not ID 1
        if not value:
            ids.problem(number, "the counter ID cell is empty")
            continue
        counter_id = id_from_text(value, number, ids)
        label = label_cell(row[label_col]) if label_col is not None and label_col < len(row) else ""
        if counter_id is not None and ids.add(counter_id, number):
            login = _ulogin_cell(row, ulogin_col, number, ids)
            by_login.setdefault(login, []).append(Counter(counter_id, label, login or DEFAULT_ACCOUNT))
    accounts = [Account(login or DEFAULT_ACCOUNT, None, tuple(cs), login) for login, cs in by_login.items()]
    return ids.result([a for a in accounts if a.counters] or accounts[:1], delimiter)


def _ulogin_cell(row: list[str], column: int | None, line: int, ids: Ids) -> str | None:
    """The client login of one CSV row (None: the token's own counters)."""
    cell = row[column].strip() if column is not None and column < len(row) else ""
    if cell and not is_login(cell):
        shown = repr(cell if len(cell) <= 40 else cell[:37] + "...")
        ids.problem(line, f"ulogin {shown} is not a Yandex login (letters, digits, '.', '-', '_', '@')")
    return cell or None


def _csv_rows(
    lines: Iterator[str], flawed: set[int], ids: Ids, delimiter: str, start: int
) -> Iterator[tuple[int, list[str]]]:
    """Each row of a strict CSV reading with the line it is on; what cannot be read is a problem.

    A row is on one line: a quoted cell that runs on is a quote left open (`11,"Shop` would swallow
    every line to the next quote). Only a report of this tool, which quotes what it writes, may have
    a label over lines, and not one with a line in it that reads as a row of its own.
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    offset = start - 1  # reader.line_num counts the lines it was given
    report = -1  # a report of this tool: its number of columns (0: not one; -1: no row read yet)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = offset + reader.line_num
            if not any(start <= n <= end for n in flawed):
                ids.problem(start, _unreadable(str(e), end > start or "end of data" in str(e)))
            start = end + 1
            continue
        line, end = start, offset + reader.line_num
        start = end + 1
        if report < 0:
            report = len(row) if tuple(row) in _REPORT_HEADERS else 0
        if any(line <= n <= end for n in flawed):
            continue
        if end > line and not (report and _a_label_over_lines(row, report)):
            ids.problem(line, _unreadable("", open_quote=True))
            continue
        yield line, row


def _a_label_over_lines(row: list[str], width: int) -> bool:
    """A report's row whose only cell over lines is its label, and no line of it reads as a row."""
    if len(row) != width or any("\n" in cell or "\r" in cell for i, cell in enumerate(row) if i != _LABEL):
        return False
    return not any(_ROW_START.match(part) for part in row[_LABEL].split("\n")[1:])


def _unreadable(error: str, open_quote: bool) -> str:
    """What a strict CSV reader's complaint means, and what to do."""
    if open_quote:
        return (
            "a quoted cell starts here and does not end on this line (the lines after it would be read "
            'into it): close the quote, write a quote inside a cell as two (""), keep a label on one line'
        )
    if "expected after" in error:
        return (
            "text after a closing quote: quote the whole cell and write each quote inside it as two, "
            'e.g. "Shop ""A"""'
        )
    return f"not readable as CSV ({error})"


def _folded(header: str) -> str:
    """A header cell as compared: lower case, ё as е, no quotes, spaces, `_` or `-`."""
    return re.sub(r"[\s_\-]", "", header.strip().strip("'\"").lower()).replace("ё", "е")


def _is_a_table(first: str) -> bool:
    """A .txt that is a table, not one ID a line, by its first line (its comment cut off): tab-separated
    (not IDs pasted from a row), or headed by an ID column's name."""
    first = first.rstrip("\r\n")
    tabbed = "\t" in first.strip() and not re.fullmatch(r"[\d\s]+", first)
    return tabbed or _folded(first) in _ID_HEADERS or bool(CSV_HEADER.match(first))


def sniff_delimiter(first_line: str) -> str:
    """`,`, `;` or a tab: whichever a CSV's first line uses most (a comma when it uses none)."""
    return max((",", ";", "\t"), key=first_line.count) if first_line else ","


def label_cell(cell: str) -> str:
    # A report written by this tool guards formula-like cells with a leading apostrophe.
    if cell.startswith("'") and cell[1:2] in FORMULA_START:
        cell = cell[1:]
    return no_surrogates(cell)
