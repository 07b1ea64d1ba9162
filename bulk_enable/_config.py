"""Load and validate a job's counters: YAML (three forms), a .txt of IDs, or a .csv with an ID column.

Everything a user can get wrong is refused here, before any request is sent: up to ten problems at
once, each on one line with the file, the line and the offending value, and a hint where the
mistake is a common one (quotes, tabs, commas, leading zeros, a missing `- `). This module holds
what a job is (`Config`, `Account`) and what every form shares (the limits, `Ids`, an ID's checks);
`_config_tables` reads .txt and .csv line by line, `_config_yaml` reads YAML with a line per node.

A job is at most MAX_COUNTERS counters in a file of at most MAX_BYTES; a .txt or .csv is read line
by line (lines of at most MAX_LINE characters), so a file that is not a job is refused in bounded
memory: at the first line too long, at the eleventh problem, or at the counter past the limit. The
readers look the limits up here when they run, so a test can lower them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ._errors import UsageError, UserError
from ._model import LOGIN_PATTERN, MAX_ID, Counter
from ._untrusted import SURROGATE

log = logging.getLogger("bulk_enable")


DEFAULT_ACCOUNT = "default"


MAX_ERRORS = 10


MAX_COUNTERS = 1_000_000  # in one job: one sheet of a workbook holds them all (1,048,575 rows)


MAX_BYTES = 256 * 2**20  # a job file's size: 1,000,000 counters with labels fit well within it


DIGITS = re.compile(r"[0-9]+")


MANY_IDS = re.compile(r"\s*[0-9]+(\s*[,;\s]\s*[0-9]+)+\s*[,;]?\s*")


_ID_COLUMNS = ("counter_id", "id", "counter", "counterid", "tag_id", "счетчик", "счётчик")


_THOUSANDS = re.compile(r"[0-9]{1,3}(?:[\s\u00a0\u202f\u2009][0-9]{3})+")


CSV_HEADER = re.compile(r"\s*['\"]?(?:" + "|".join(_ID_COLUMNS) + r")['\"]?\s*(?:[,;\t]|$)", re.IGNORECASE)


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


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
                raise ConfigError([too_big(path, f"{math.ceil(size / 2**20):,} MB is")])
            if suffix in (".txt", ".csv"):
                from ._config_tables import load_table

                return load_table(f, path)
            raw = f.read(MAX_BYTES + 1)  # YAML is read whole (a pipe has no size to check first)
        if len(raw) > MAX_BYTES:
            raise ConfigError([too_big(path, "it is")])
        # Excel's "Unicode text" is UTF-16 with a BOM; everything else should be UTF-8.
        text = raw.decode("utf-16") if raw[:2] in UTF16_BOMS else raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError([not_utf8(path, e)]) from None
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a file of counter IDs"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None
    from ._config_yaml import parse_config

    return parse_config(text, path)


def not_utf8(path: Path, e: UnicodeDecodeError) -> str:
    return (
        f"{path}: not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8 (in Notepad: "
        "File > Save As, Encoding: UTF-8)"
    )


def too_many() -> str:
    most = f"{MAX_COUNTERS:,}"
    return f"more than {most} counters: one job runs at most {most}: split the list into several jobs"


def too_big(path: Path, what: str) -> str:
    return (
        f"{path}: {what} more than a job file can be ({MAX_BYTES // 2**20} MB, {MAX_COUNTERS:,} counters): "
        "split it into several jobs"
    )


class Ids:
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
                self.stop(line, too_many())
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


def no_surrogates(text: str) -> str:
    """A YAML escape can make lone surrogates (unprintable, unwritable): U+FFFD; an escaped pair joins up."""
    if not SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def id_from_text(value: str, line: int, ids: Ids, shown: str = "") -> int | None:
    """An ID from text; a problem (with a hint for the usual mistakes) otherwise."""
    shown = shown or repr(value if len(value) <= 40 else value[:37] + "...")
    what = f"counter ID must be a positive whole number, got {shown}"
    if DIGITS.fullmatch(value):
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
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and DIGITS.fullmatch(inner):
        ids.problem(line, f"{what}: remove the quotes, write {inner}")
    elif _THOUSANDS.fullmatch(value.strip()):
        joined = re.sub(r"\D", "", value)
        ids.problem(line, f"{what}: a number with thousands separators? write {joined} (no spaces)")
    elif MANY_IDS.fullmatch(value):
        ids.problem(line, f"{what}: that is several IDs on one line; put each on its own line")
    else:
        ids.problem(line, what)
    return None
