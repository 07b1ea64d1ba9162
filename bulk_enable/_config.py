"""Load and validate a job's counters: YAML (three forms), a .txt of IDs, or a .csv with an ID column.

Everything a user can get wrong is refused here, before any request is sent: up to ten problems at
once, each on one line with the file, the line and the offending value, and a hint where the
mistake is a common one (quotes, tabs, commas, leading zeros, a missing `- `).

A job is at most MAX_COUNTERS counters in a file of at most MAX_BYTES; a .txt or .csv is read line
by line (lines of at most MAX_LINE characters), so a file that is not a job is refused in bounded
memory: at the first line too long, at the eleventh problem, or at the counter past the limit.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._errors import UsageError, UserError
from ._model import COLUMNS, ENV_NAME, LOGIN_PATTERN, MAX_ID, Counter
from ._tokens import looks_like_token
from ._untrusted import FORMULA_START, SURROGATE

log = logging.getLogger("bulk_enable")

DEFAULT_ACCOUNT = "default"
MAX_ERRORS = 10
MAX_COUNTERS = 1_000_000  # in one job: one sheet of a workbook holds them all (1,048,575 rows)
MAX_BYTES = 256 * 2**20  # a job file's size: 1,000,000 counters with labels fit well within it
MAX_LINE = 65_536  # characters of one line of a .txt or .csv: an ID and its label need far fewer

_INT_TAG = "tag:yaml.org,2002:int"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
)
_DIGITS = re.compile(r"[0-9]+")
_MANY_IDS = re.compile(r"\s*[0-9]+(\s*[,;\s]\s*[0-9]+)+\s*[,;]?\s*")
_ID_COLUMNS = ("counter_id", "id", "counter", "counterid", "tag_id", "счетчик", "счётчик")
# Header cells are compared folded (lower case, ё as е, no spaces, _ or -), so `Номер счётчика` matches.
_ID_HEADERS = frozenset(
    {"counterid", "id", "counter", "tagid", "tag", "счетчик", "номерсчетчика", "idсчетчика", "idтега", "тег"}
)
_ULOGIN_HEADERS = frozenset({"ulogin", "client", "clientlogin", "логин", "логинклиента"})  # folded
_LABEL_HEADERS = ("label", "name", "site", "подпись", "название", "имя", "клиент", "сайт", "описание")
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:[\s\u00a0\u202f\u2009][0-9]{3})+")
_CSV_HEADER = re.compile(r"\s*['\"]?(?:" + "|".join(_ID_COLUMNS) + r")['\"]?\s*(?:[,;\t]|$)", re.IGNORECASE)
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
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class ConfigError(UserError):
    """A job file that cannot be run; each line of the message names the file and the line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Account:
    """A Metrica login: its token's environment variable, its client login, its counters in order."""

    name: str
    token_env: str | None  # None (and no token_file): the run's default token
    counters: tuple[Counter, ...]
    ulogin: str | None = None  # act for this client login (agency access): sent as ?ulogin=
    every: bool = False  # `counters: all`: its editable counters, listed at the start of each job
    exclude: frozenset[int] = frozenset()  # with `counters: all`: IDs left out
    token_file: Path | None = None  # a file holding the token (relative: to the config's folder)


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Counter IDs listed more than once: how many repeats, and the first few as examples."""

    count: int = 0
    examples: tuple[tuple[int, int, int], ...] = ()  # (counter ID, first line, repeated on line)


@dataclass(frozen=True, slots=True)
class Config:
    """A validated job: every account with its counters; every counter ID appears once."""

    path: Path
    accounts: tuple[Account, ...]
    duplicates: Duplicates = field(default_factory=Duplicates)
    csv_delimiter: str | None = None  # a .csv config's separator: its report can use the same one

    @property
    def counters(self) -> list[Counter]:
        """All counters in input order."""
        return [c for a in self.accounts for c in a.counters]


def is_login(text: str) -> bool:
    """A Yandex login as `ulogin` takes it: letters, digits, '.', '-', '_', '@'."""
    return bool(LOGIN_PATTERN.fullmatch(text))


def load_config(path: Path) -> Config:
    """Read and validate the job file at `path` (its extension says the format)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls", ".ods"):
        raise ConfigError(
            [
                f"{path}: a spreadsheet is not read directly: in Excel use File > Save As > "
                '"CSV UTF-8 (разделители - запятые)" and give the .csv'
            ]
        )
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise ConfigError([_too_big(path, f"{math.ceil(size / 2**20):,} MB is")])
            if suffix in (".txt", ".csv"):
                return _load_table(f, path)
            raw = f.read(MAX_BYTES + 1)  # YAML is read whole (a pipe has no size to check first)
        if len(raw) > MAX_BYTES:
            raise ConfigError([_too_big(path, "it is")])
        # Excel's "Unicode text" is UTF-16 with a BOM; everything else should be UTF-8.
        text = raw.decode("utf-16") if raw[:2] in _UTF16_BOMS else raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError([_not_utf8(path, e)]) from None
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a file of counter IDs"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None
    return parse_config(text, path)


def _not_utf8(path: Path, e: UnicodeDecodeError) -> str:
    return (
        f"{path}: not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8 (in Notepad: "
        "File > Save As, Encoding: UTF-8)"
    )


def _too_many() -> str:
    most = f"{MAX_COUNTERS:,}"
    return f"more than {most} counters: one job runs at most {most}: split the list into several jobs"


def _too_big(path: Path, what: str) -> str:
    return (
        f"{path}: {what} more than a job file can be ({MAX_BYTES // 2**20} MB, {MAX_COUNTERS:,} counters): "
        "split it into several jobs"
    )


def _load_table(f: io.BufferedReader, path: Path) -> Config:
    """A .txt or .csv read line by line: UTF-8, or UTF-16 with its BOM (Excel's "Unicode text");
    not UTF-8, it is read again as Windows-1251 (Excel's plain CSV in a Russian locale)."""
    suffix = path.suffix.lower()
    encoding = "utf-16" if f.peek(2)[:2] in _UTF16_BOMS else "utf-8-sig"
    try:
        return _parse_table(f, path, suffix, encoding)
    except UnicodeDecodeError as e:
        if encoding == "utf-16":
            raise ConfigError(
                [f"{path}: not UTF-16 text ({e.reason}): save it again as CSV UTF-8, or as Unicode text"]
            ) from None
        if not f.seekable():  # a pipe: what was read cannot be read again
            raise ConfigError([_not_utf8(path, e)]) from None
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
    ids = _Ids(path)
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


# --- plain lists -----------------------------------------------------------------------------------


class _Ids:
    """Collects counters and problems, and spots IDs listed twice (by ID, whatever the line).

    The eleventh problem, or the counter past MAX_COUNTERS, stops the reading (ConfigError).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.first: dict[int, int] = {}  # ID -> line of its first appearance
        self.repeats = 0
        self.examples: list[tuple[int, int, int]] = []

    def problem(self, line: int | None, what: str) -> None:
        if len(self.errors) == MAX_ERRORS:
            where = f" at line {line}" if line is not None else ""
            raise ConfigError([*self.errors, f"... and more: reading stopped{where} (fix these first)"])
        where = f"line {line}: " if line is not None else ""
        self.errors.append(f"{self.path}: {where}{what}")

    def stop(self, line: int, what: str) -> NoReturn:
        """A problem that ends the reading: said after those found before it."""
        raise ConfigError([*self.errors, f"{self.path}: line {line}: {what}"])

    def add(self, counter_id: int, line: int) -> bool:
        """True for the ID's first appearance; a repeat (by ID, whatever the line) is counted, not run."""
        first = self.first.get(counter_id)
        if first is None:
            self.first[counter_id] = line
            if len(self.first) > MAX_COUNTERS:
                self.stop(line, _too_many())
            return True
        self.repeats += 1
        if len(self.examples) < 3:
            self.examples.append((counter_id, first, line))
        return False

    def result(self, accounts: list[Account], csv_delimiter: str | None = None) -> Config:
        if self.errors:
            raise ConfigError(self.errors)
        if not any(a.counters or a.every for a in accounts):
            raise ConfigError([f"{self.path}: the file is empty: expected a list of counter IDs"])
        duplicates = Duplicates(self.repeats, tuple(self.examples))
        return Config(self.path, tuple(accounts), duplicates, csv_delimiter)


class _Lines:
    """The lines of a .txt or .csv as an editor numbers them: split on "\\n" only, each with its ending.

    Reading stops (ConfigError) at a line of more than MAX_LINE characters or past MAX_BYTES in all
    (a pipe or a device has no size to check first). A character that other programs take for a line
    break (str.splitlines: a vertical tab, U+2028, ...) is a problem on its line, which is then
    `flawed`: nothing more is said of it.
    """

    def __init__(self, stream: TextIO, ids: _Ids) -> None:
        self.readline, self.ids = stream.readline, ids
        self.number = 0  # the last line read
        self.flawed: set[int] = set()  # at most MAX_ERRORS: each is a problem said
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline(MAX_LINE + 2)  # room for the line's "\r\n"
        if not line:
            raise StopIteration
        self.number += 1
        self.read += len(line)
        if len(line) > MAX_LINE or self.read > MAX_BYTES or _LINE_BREAKS.search(line):
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
        if self.read > MAX_BYTES:
            raise ConfigError([*self.ids.errors, _too_big(self.ids.path, "it is")])
        if found is not None:
            self.flawed.add(self.number)
            self.ids.problem(
                self.number,
                _OLD_MAC
                if old_mac
                else f"{_BREAK_NAMES[found.group()]} in the line, where other programs may see a line "
                "break: remove it (one line for each counter)",
            )


def parse_lines(text: str, path: Path) -> Config:
    """A .txt file: one counter ID per line; blank lines and `#` comments are ignored."""
    ids = _Ids(path)
    lines = _Lines(io.StringIO(text, newline="\n"), ids)
    return _parse_lines(lines, lines.flawed, ids)


def _parse_lines(lines: Iterator[str], flawed: set[int], ids: _Ids, start: int = 1) -> Config:
    """One ID a line; `start`: the number of the first of `lines`."""
    counters: list[Counter] = []
    for number, raw in enumerate(lines, start=start):
        value = raw.split("#", 1)[0].strip()
        if not value or number in flawed:
            continue
        counter_id = _id_from_text(value, number, ids)
        if counter_id is not None and ids.add(counter_id, number):
            counters.append(Counter(counter_id, "", DEFAULT_ACCOUNT))
    return ids.result([Account(DEFAULT_ACCOUNT, None, tuple(counters))])


def parse_csv(text: str, path: Path) -> Config:
    """A .csv file: a `counter_id` (or `id`) column, optionally `label`; or a single column of IDs.

    The delimiter is `,`, `;` or a tab, whichever the first line uses; an earlier report of this tool
    reads as it is. A cell is on one line: a quote left open is a problem on its line, never a cell
    that swallows the lines after it (only a report of this tool may have a label over lines).
    """
    ids = _Ids(path)
    lines = _Lines(io.StringIO(text, newline="\n"), ids)
    return _parse_csv(lines, lines.flawed, ids)


def _parse_csv(lines: Iterator[str], flawed: set[int], ids: _Ids, start: int = 1) -> Config:
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
        counter_id = _id_from_text(value, number, ids)
        label = _label_cell(row[label_col]) if label_col is not None and label_col < len(row) else ""
        if counter_id is not None and ids.add(counter_id, number):
            login = _ulogin_cell(row, ulogin_col, number, ids)
            by_login.setdefault(login, []).append(Counter(counter_id, label, login or DEFAULT_ACCOUNT))
    accounts = [Account(login or DEFAULT_ACCOUNT, None, tuple(cs), login) for login, cs in by_login.items()]
    return ids.result([a for a in accounts if a.counters] or accounts[:1], delimiter)


def _ulogin_cell(row: list[str], column: int | None, line: int, ids: _Ids) -> str | None:
    """The client login of one CSV row (None: the token's own counters)."""
    cell = row[column].strip() if column is not None and column < len(row) else ""
    if cell and not is_login(cell):
        shown = repr(cell if len(cell) <= 40 else cell[:37] + "...")
        ids.problem(line, f"ulogin {shown} is not a Yandex login (letters, digits, '.', '-', '_', '@')")
    return cell or None


def with_ulogin(config: Config, ulogin: str) -> Config:
    """A plain list (one account, no login of its own) acting for client login `ulogin`."""
    if len(config.accounts) != 1 or config.accounts[0].ulogin or config.accounts[0].token_env:
        raise UsageError(
            f"--ulogin is for a plain list of IDs: {config.path} names its client logins itself "
            "(`ulogin:`, a ulogin column or `accounts:`)"
        )
    account = config.accounts[0]
    counters = tuple(Counter(c.id, c.label, ulogin) for c in account.counters)
    only = Account(ulogin, None, counters, ulogin, account.every, account.exclude)
    return Config(config.path, (only,), config.duplicates, config.csv_delimiter)


def _csv_rows(
    lines: Iterator[str], flawed: set[int], ids: _Ids, delimiter: str, start: int
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
    return tabbed or _folded(first) in _ID_HEADERS or bool(_CSV_HEADER.match(first))


def sniff_delimiter(first_line: str) -> str:
    """`,`, `;` or a tab: whichever a CSV's first line uses most (a comma when it uses none)."""
    return max((",", ";", "\t"), key=first_line.count) if first_line else ","


def _label_cell(cell: str) -> str:
    # A report written by this tool guards formula-like cells with a leading apostrophe.
    if cell.startswith("'") and cell[1:2] in FORMULA_START:
        cell = cell[1:]
    return _no_surrogates(cell)


def _no_surrogates(text: str) -> str:
    """A YAML escape can make lone surrogates (unprintable, unwritable): U+FFFD; an escaped pair joins up."""
    if not SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _id_from_text(value: str, line: int, ids: _Ids, shown: str = "") -> int | None:
    """An ID from text; a problem (with a hint for the usual mistakes) otherwise."""
    shown = shown or repr(value if len(value) <= 40 else value[:37] + "...")
    what = f"counter ID must be a positive whole number, got {shown}"
    if _DIGITS.fullmatch(value):
        number = int(value)
        if number == 0:
            ids.problem(line, what)
        elif value.startswith("0"):
            octal = (
                " (YAML reads a number with a leading zero as octal)"
                if ids.path.suffix.lower()
                not in (
                    ".txt",
                    ".csv",
                )
                else ""
            )
            ids.problem(line, f"{what}: drop the leading zero, write {number}{octal}")
        elif len(value) > len(str(MAX_ID)):
            ids.problem(
                line,
                f"{what}: {len(value)} digits is too long for a counter ID (at most 19; real ones have "
                "8 or 9): is it pasted whole?",
            )
        elif number > MAX_ID:
            ids.problem(line, f"{what}: it is above the largest possible counter ID, {MAX_ID}")
        else:
            return number
        return None
    inner = value[1:-1].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and _DIGITS.fullmatch(inner):
        ids.problem(line, f"{what}: remove the quotes, write {inner}")
    elif _THOUSANDS.fullmatch(value.strip()):
        joined = re.sub(r"\D", "", value)
        ids.problem(line, f"{what}: a number with thousands separators? write {joined} (no spaces)")
    elif _MANY_IDS.fullmatch(value):
        ids.problem(line, f"{what}: that is several IDs on one line; put each on its own line")
    else:
        ids.problem(line, what)
    return None


# --- YAML ------------------------------------------------------------------------------------------


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML `text` (read from `path`, which only names it in messages)."""
    import yaml  # a YAML job needs it; the rest of the CLI starts faster without it

    first_line = text.lstrip("\n").split("\n", 1)[0]
    if _CSV_HEADER.match(first_line):
        raise ConfigError([f"{path}: line 1: this looks like CSV: give the file a .csv extension"])
    try:
        try:
            root = _compose(text)
        except yaml.MarkedYAMLError as e:
            if "Unicode character escape" not in str(e.problem):
                raise
            # libyaml refuses an escaped lone surrogate ("\\ud800"); PyYAML reads it (U+FFFD in a label).
            root = _compose(text, yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        problem = " ".join(str(e.problem or e.context or "unreadable").split())
        if mark is not None and _tab_at(text, mark.line, mark.column, problem):
            problem = "a tab character: YAML is indented with spaces, never tabs"
        raise ConfigError([f"{path}: {where}not valid YAML ({problem})"]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        code = ord(e.character) if isinstance(e.character, str) else int(e.character)  # libyaml: an int
        what = f"character {code:#06x}"
        raise ConfigError(
            [f"{path}: line {line}: not valid YAML ({what} is not allowed: remove it)"]
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML ({' '.join(str(e).split())})"]) from None
    except _Problem as e:
        raise ConfigError([f"{path}: line {e.line + 1}: {e.what}"]) from None
    return _Parser(path).config(root)


def _tab_at(text: str, line: int, column: int, problem: str) -> bool:
    """The YAML error is a tab: libyaml's message often does not say so, the line does."""
    if "tab" in problem or "\\t" in problem or "\t" in problem:
        return True
    lines = text.split("\n")
    here = lines[line] if 0 <= line < len(lines) else ""
    indent = re.match(r"[ \t-]*", here)
    return here[column : column + 1] == "\t" or (indent is not None and "\t" in indent.group())


class _Node:
    """A YAML node as validation needs it: the tag, the value, the line, whether it was quoted and
    the tag it was given, if any, as written (`!!str`).

    PyYAML's own nodes carry two Mark objects each; for 100,000 IDs its tree peaks at ~53 MB against
    the list's 9 MB. These, built from the parser's events, keep the peak near the list itself.
    """

    __slots__ = ("given_tag", "line", "quoted", "tag", "value")

    def __init__(
        self, tag: str, value: Any, line: int, quoted: bool = False, given_tag: str | None = None
    ) -> None:
        self.tag, self.value, self.line, self.quoted, self.given_tag = tag, value, line, quoted, given_tag


class _Scalar(_Node):
    value: str


class _Seq(_Node):
    value: list[_Node]


class _Map(_Node):
    value: list[tuple[_Node, _Node]]


def _compose(text: str, loader: Any = None) -> _Node | None:
    """Compose the first YAML document of `text` into light nodes; a second document is an error.

    An alias may repeat a scalar (an ID), never a list or a mapping: that is how YAML bombs grow.
    More than MAX_COUNTERS items in the lists of counters stop the reading, so memory stays bounded.
    """
    import yaml

    if loader is None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 100k IDs in ~1 s
    resolver = yaml.resolver.Resolver()
    anchors: dict[str, _Node] = {}
    stack: list[_Node] = []
    pending_key: list[_Node | None] = []  # per open mapping: its key waiting for a value
    root: _Node | None = None
    documents = 0
    accounts: _Node | None = None  # the list of accounts: its items are not counters
    items = 0  # in all other lists

    def attach(node: _Node, anchor: str | None) -> None:
        nonlocal root, accounts, items
        if anchor:
            anchors[anchor] = node
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, _Seq):
            parent.value.append(node)
            if parent is not accounts:
                items += 1
                if items > MAX_COUNTERS:
                    raise _Problem(node.line, _too_many())
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            key = pending_key[-1]
            assert key is not None
            parent.value.append((key, node))
            pending_key[-1] = None
            if parent is root and key.value == "accounts":
                accounts = node

    def checked_tag(event: Any) -> str | None:
        tag: str | None = event.tag
        if tag not in (None, "!") and tag not in _CORE_TAGS:
            raise _Problem(_line(event), f"the YAML tag {tag!r} is not allowed here: remove it")
        return tag

    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.ScalarEvent):
            tag = checked_tag(event)
            if tag in (None, "!"):
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            quoted = event.style in ("'", '"')
            given = None if event.tag is None else event.tag.replace("tag:yaml.org,2002:", "!!")
            attach(_Scalar(tag, event.value, _line(event), quoted, given), event.anchor)
        elif isinstance(event, yaml.SequenceStartEvent):
            checked_tag(event)
            node: _Node = _Seq("seq", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.MappingStartEvent):
            checked_tag(event)
            node = _Map("map", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            stack.pop()
            pending_key.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise _Problem(_line(event), f"not valid YAML (undefined alias {event.anchor!r})")
            target = anchors[event.anchor]
            if not isinstance(target, _Scalar):  # a list reused a thousand times is a YAML bomb
                raise _Problem(
                    _line(event),
                    f"the alias *{event.anchor} repeats a whole list or mapping: write its counters out once",
                )
            # on its own line: a repeated ID is reported where it repeats
            attach(_Scalar(target.tag, target.value, _line(event), target.quoted, target.given_tag), None)
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Problem(_line(event), "not valid YAML (expected a single document, found another)")
    return root


def _line(event: Any) -> int:
    return event.start_mark.line if event.start_mark is not None else 0


class _Problem(Exception):
    """A structural YAML error found while composing: (0-based line, what)."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line, self.what = line, what


class _Stop(Exception):
    """Structure too broken to read on: report what was found so far."""


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids = _Ids(path)

    def fail(self, node: _Node | None, what: str) -> None:
        self.ids.problem(node.line + 1 if node is not None else None, what)

    def fatal(self, node: _Node | None, what: str) -> _Stop:
        self.fail(node, what)
        return _Stop()

    def config(self, root: _Node | None) -> Config:
        try:
            accounts = self.top(root)
        except _Stop:
            accounts = []
        if self.ids.errors:
            raise ConfigError(self.ids.errors)
        return self.ids.result(accounts)

    def top(self, root: _Node | None) -> list[Account]:
        if root is None or (isinstance(root, _Scalar) and root.tag == _NULL_TAG):
            raise self.fatal(None, "the file is empty: expected a list of counter IDs")
        if isinstance(root, _Seq):
            return [self.account_counters(DEFAULT_ACCOUNT, None, None, root)]
        if isinstance(root, _Map):
            top = self.mapping(root, required=set(), allowed={"counters", "accounts", "ulogin", "exclude"})
            if "counters" in top and "accounts" in top:
                raise self.fatal(root, "use either `counters:` or `accounts:`, not both")
            if "counters" in top:
                ulogin = self.ulogin(top["ulogin"]) if "ulogin" in top else None
                return [
                    self.account_counters(DEFAULT_ACCOUNT, None, ulogin, top["counters"], top.get("exclude"))
                ]
            if "exclude" in top:
                raise self.fatal(top["exclude"], "with `accounts:`, give `exclude:` inside each account")
            if "accounts" in top:
                if "ulogin" in top:
                    raise self.fatal(top["ulogin"], "with `accounts:`, give `ulogin:` inside each account")
                return self.accounts(top["accounts"])
            raise self.fatal(root, "expected `counters:` or `accounts:` at the top")
        raise self.fatal(root, self.not_a_list(root))

    def not_a_list(self, node: _Node) -> str:
        """What a file that is not a list most likely is, and how to fix it."""
        text = str(node.value) if isinstance(node, _Scalar) else ""
        if isinstance(node, _Scalar) and node.tag == _STR_TAG:
            if re.fullmatch(r"[0-9\s]+", text):
                return (
                    "IDs one per line need `- ` in front (a YAML list), e.g. `- 12345`; or give the "
                    "file a .txt extension"
                )
            if _MANY_IDS.fullmatch(text):
                return "several IDs on one line: put each on its own line as `- 12345`"
        if isinstance(node, _Scalar) and node.tag == _STR_TAG and text.strip().isalpha():
            return f"expected a list of counter IDs, or `all` for every editable one, got {_shown(node)}"
        return f"expected a list of counter IDs, got {_shown(node)}"

    def mapping(self, node: _Map, required: set[str], allowed: set[str]) -> dict[str, _Node]:
        out: dict[str, _Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, _Scalar) else None
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                if not isinstance(key, str):
                    raise self.fatal(key_node, f"unknown key {_shown(key_node)} (expected {expected})")
                close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
                hint = f": did you mean `{close[0]}`?" if close else ""
                raise self.fatal(key_node, f"unknown key `{key}`{hint} (expected {expected})")
            if key in out:
                raise self.fatal(key_node, f"key `{key}` given twice")
            out[key] = value
        for key in sorted(required - out.keys()):
            raise self.fatal(node, f"missing key `{key}`")
        return out

    def accounts(self, node: _Node) -> list[Account]:
        if not isinstance(node, _Seq) or not node.value:
            raise self.fatal(
                node, "`accounts:` must be a non-empty list of {name, token_env or token_file, counters}"
            )
        accounts: list[Account] = []
        names: set[str] = set()
        for item in node.value:
            if not isinstance(item, _Map):
                raise self.fatal(item, f"an account must be a mapping, got {_shown(item)}")
            fields = self.mapping(
                item,
                required={"name", "counters"},
                allowed={"name", "token_env", "token_file", "counters", "ulogin", "exclude"},
            )
            name = _no_surrogates(self.text(fields["name"], "account name")).strip()
            if not name:
                raise self.fatal(fields["name"], "account name is empty")
            if name in names:
                raise self.fatal(fields["name"], f"account `{name}` given twice")
            names.add(name)
            if ("token_env" in fields) == ("token_file" in fields):
                given = "both" if "token_env" in fields else "neither"
                raise self.fatal(
                    item,
                    f"account `{name}`: give its token as token_env (an environment variable's NAME) or "
                    f"token_file (a file's path), one of them ({given} given)",
                )
            env = self.token_env(fields["token_env"]) if "token_env" in fields else None
            ulogin = self.ulogin(fields["ulogin"]) if "ulogin" in fields else None
            account = self.account_counters(name, env, ulogin, fields["counters"], fields.get("exclude"))
            if "token_file" in fields:
                account = replace(account, token_file=self.token_file(fields["token_file"]))
            accounts.append(account)
        return accounts

    def token_file(self, node: _Node) -> Path:
        text = str(node.value).strip() if isinstance(node, _Scalar) and node.tag == _STR_TAG else ""
        if not text or (looks_like_token(text) and "/" not in text and "." not in text):
            # Never echo it: people paste the token itself here too.
            raise self.fatal(
                node,
                "token_file must be the path of a file holding the token (e.g. tokens/client-a.token, "
                "beside the config), never the token itself",
            )
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.path.parent / path

    def token_env(self, node: _Node) -> str:
        env = str(node.value).strip() if isinstance(node, _Scalar) and node.tag == _STR_TAG else ""
        if not ENV_NAME.fullmatch(env):
            # Never echo it: people paste the token itself here.
            raise self.fatal(
                node,
                "token_env must be the NAME of an environment variable holding the token "
                "(e.g. METRICA_TOKEN_CLIENT_A), never the token itself",
            )
        return env

    def ulogin(self, node: _Node) -> str | None:
        if isinstance(node, _Scalar) and node.tag == _NULL_TAG:
            return None
        login = self.text(node, "ulogin").strip()
        if not LOGIN_PATTERN.fullmatch(login):
            raise self.fatal(
                node,
                f"ulogin {_shown(node)} is not a Yandex login (letters, digits, '.', '-', '_', '@')",
            )
        return login

    def account_counters(
        self,
        account: str,
        token_env: str | None,
        ulogin: str | None,
        node: _Node,
        exclude: _Node | None = None,
    ) -> Account:
        if isinstance(node, _Scalar) and node.tag == _STR_TAG and str(node.value).strip().lower() == "all":
            return Account(account, token_env, (), ulogin, every=True, exclude=self.excluded(exclude))
        if exclude is not None:
            raise self.fatal(
                exclude, "`exclude:` goes with `counters: all` (a list names its counters itself)"
            )
        if not isinstance(node, _Seq):
            raise self.fatal(node, self.not_a_list(node))
        if not node.value:
            raise self.fatal(node, f"no counters listed for account `{account}`")
        counters: list[Counter] = []
        items, node.value = node.value[::-1], []  # consumed as read: nodes and counters never peak together
        while items:
            counter = self.counter(items.pop(), account)
            if counter is not None:
                counters.append(counter)
        return Account(account, token_env, tuple(counters), ulogin)

    def excluded(self, node: _Node | None) -> frozenset[int]:
        """The IDs of `exclude:` (a list, or one ID), each checked like a counter ID."""
        if node is None or (isinstance(node, _Scalar) and node.tag == _NULL_TAG):
            return frozenset()
        items = node.value if isinstance(node, _Seq) else [node]
        return frozenset(cid for item in items if (cid := self.counter_id(item)) is not None)

    def counter(self, node: _Node, account: str) -> Counter | None:
        label = ""
        id_node = node
        if isinstance(node, _Map):
            try:
                fields = self.mapping(node, required={"id"}, allowed={"id", "label"})
            except _Stop:
                return None
            id_node = fields["id"]
            if "label" in fields:
                label = self.label(fields["label"])
        counter_id = self.counter_id(id_node)
        if counter_id is None or not self.ids.add(counter_id, id_node.line + 1):
            return None
        return Counter(counter_id, label, account)

    def counter_id(self, node: _Node) -> int | None:
        line = node.line + 1
        if not isinstance(node, _Scalar):
            self.fail(node, f"counter ID must be a positive whole number, got {_shown(node)}")
            return None
        value = str(node.value)
        if node.given_tag is not None and _DIGITS.fullmatch(value.strip()):
            # `!!str 123` is no more an ID than "123" is; a wrong number is said as such first
            number = _id_from_text(value.strip(), line, self.ids, _shown(node))
            if number is not None:
                what = f"counter ID must be a positive whole number, got {node.given_tag} {number}"
                self.fail(node, f"{what}: remove the tag, write {number}")
            return None
        if node.quoted and _DIGITS.fullmatch(value.strip()):
            value = repr(value)  # shown as typed, quotes and all, for the hint
        elif node.tag not in (_INT_TAG, _STR_TAG, "tag:yaml.org,2002:float"):
            value = "\0"  # a bool, a date, an empty value: no hint applies
        return _id_from_text(value, line, self.ids, _shown(node))

    def label(self, node: _Node) -> str:
        if isinstance(node, _Scalar) and node.tag == _NULL_TAG:
            return ""
        if isinstance(node, _Scalar):  # a number or a date as a label is fine: it is shown as typed
            return _no_surrogates(str(node.value))
        self.fail(node, f"label must be text, got {_shown(node)}")
        return ""

    def text(self, node: _Node, what: str) -> str:
        if isinstance(node, _Scalar) and node.tag == _STR_TAG:
            return str(node.value)
        raise self.fatal(node, f"{what} must be text, got {_shown(node)}")


def _shown(node: _Node) -> str:
    """How a bad value is named in a message: what the user typed, and what YAML made of it."""
    if isinstance(node, _Map):
        return "a mapping"
    if isinstance(node, _Seq):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    kind = {
        "str": "text",
        "int": "a number",
        "float": "a decimal number",
        "bool": "a yes/no value",
        "null": "an empty value",
        "timestamp": "a date",
    }.get(kind, kind)
    value = str(node.value)
    value = value if len(value) <= 40 else value[:37] + "..."
    return f"{value!r} ({kind})" if value else kind
