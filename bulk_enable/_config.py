"""Load and validate a job's counters: YAML (three forms), a .txt of IDs, or a .csv with an ID column.

Everything a user can get wrong is refused here, before any request is sent: up to ten problems at
once, each on one line with the file, the line and the offending value, and a hint where the
mistake is a common one (quotes, tabs, commas, leading zeros, a missing `- `).
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._errors import UserError
from ._model import Counter
from ._tokens import looks_like_token

log = logging.getLogger("bulk_enable")

DEFAULT_TOKEN_ENV = "YANDEX_METRICA_TOKEN"
DEFAULT_ACCOUNT = "default"
MAX_ID = 2**63 - 1
MAX_ERRORS = 10

_INT_TAG = "tag:yaml.org,2002:int"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
)
_DIGITS = re.compile(r"[0-9]+")
_MANY_IDS = re.compile(r"\s*[0-9]+(\s*[,;\s]\s*[0-9]+)+\s*[,;]?\s*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ID_COLUMNS = ("counter_id", "id", "counter", "counterid", "tag_id", "счетчик", "счётчик")
# Header cells are compared folded (lower case, ё as е, no spaces, _ or -), so `Номер счётчика` matches.
_ID_HEADERS = frozenset(
    {"counterid", "id", "counter", "tagid", "tag", "счетчик", "номерсчетчика", "idсчетчика", "idтега", "тег"}
)
_LABEL_HEADERS = ("label", "name", "site", "подпись", "название", "имя", "клиент", "сайт", "описание")
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:[\s\u00a0\u202f\u2009][0-9]{3})+")
_CSV_HEADER = re.compile(r"\s*['\"]?(?:" + "|".join(_ID_COLUMNS) + r")['\"]?\s*(?:[,;\t]|$)", re.IGNORECASE)


class ConfigError(UserError):
    """A job file that cannot be run; each line of the message names the file and the line."""

    def __init__(self, lines: list[str]) -> None:
        shown = lines[:MAX_ERRORS]
        if len(lines) > MAX_ERRORS:
            more = len(lines) - MAX_ERRORS
            shown.append(f"... and {more} more {'problem' if more == 1 else 'problems'} like these")
        super().__init__("\n".join(shown))


@dataclass(frozen=True, slots=True)
class Account:
    """A Metrica login: its token's environment variable, its client login, its counters in order."""

    name: str
    token_env: str | None  # None (and no token_file): the run's default token
    counters: tuple[Counter, ...]
    ulogin: str | None = None  # act for this client login (agency access): sent as ?ulogin=
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
        raw = path.read_bytes()
        # Excel's "Unicode text" is UTF-16 with a BOM; everything else should be UTF-8.
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if suffix not in (".csv", ".txt"):
            raise ConfigError(
                [
                    f"{path}: not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8 (in Notepad: "
                    "File > Save As, Encoding: UTF-8)"
                ]
            ) from None
        # Excel's plain "CSV (разделители - запятые)" is Windows-1251 in a Russian locale.
        text = raw.decode("cp1251", "replace")
        log.warning(
            "%s is not UTF-8: read as Windows-1251 (%s); labels may need a look",
            path,
            "Excel's plain CSV" if suffix == ".csv" else "Windows' ANSI text",
        )
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a file of counter IDs"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None
    if suffix == ".txt":
        # Excel's "Unicode text" is a .txt table with tabs; a column saved with its header is one too.
        return parse_csv(text, path) if _is_a_table(text) else parse_lines(text, path)
    if suffix == ".csv":
        return parse_csv(text, path)
    return parse_config(text, path)


# --- plain lists -----------------------------------------------------------------------------------


class _Ids:
    """Collects counters and problems, and spots IDs listed twice (by ID, whatever the line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.first: dict[int, int] = {}  # ID -> line of its first appearance
        self.taken: set[int] = set()
        self.repeats = 0
        self.examples: list[tuple[int, int, int]] = []

    def problem(self, line: int | None, what: str) -> None:
        where = f"line {line}: " if line is not None else ""
        self.errors.append(f"{self.path}: {where}{what}")

    def add(self, counter_id: int, line: int) -> bool:
        """True for the ID's first appearance; a repeat (by ID, whatever the line) is counted, not run."""
        first = self.first.setdefault(counter_id, line)
        if first == line and counter_id not in self.taken:
            self.taken.add(counter_id)
            return True
        self.repeats += 1
        if len(self.examples) < 3:
            self.examples.append((counter_id, first, line))
        return False

    def result(self, accounts: list[Account], csv_delimiter: str | None = None) -> Config:
        if self.errors:
            raise ConfigError(self.errors)
        if not any(a.counters for a in accounts):
            raise ConfigError([f"{self.path}: the file is empty: expected a list of counter IDs"])
        duplicates = Duplicates(self.repeats, tuple(self.examples))
        return Config(self.path, tuple(accounts), duplicates, csv_delimiter)


def parse_lines(text: str, path: Path) -> Config:
    """A .txt file: one counter ID per line; blank lines and `#` comments are ignored."""
    ids = _Ids(path)
    counters: list[Counter] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        value = raw.split("#", 1)[0].strip()
        if not value:
            continue
        counter_id = _id_from_text(value, number, ids)
        if counter_id is not None and ids.add(counter_id, number):
            counters.append(Counter(counter_id, "", DEFAULT_ACCOUNT))
    return ids.result([Account(DEFAULT_ACCOUNT, None, tuple(counters))])


def parse_csv(text: str, path: Path) -> Config:
    """A .csv file: a `counter_id` (or `id`) column, optionally `label`; or a single column of IDs.

    The delimiter is `,`, `;` or a tab, whichever the first line uses; an earlier report of this tool
    reads as it is.
    """
    ids = _Ids(path)
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []  # (its first line, its cells): a quoted cell may span lines
    line = 1
    try:
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as e:
        raise ConfigError([f"{path}: line {line}: not readable as CSV ({e})"]) from None
    if not rows:
        raise ConfigError([f"{path}: the file is empty: expected a counter_id column"])
    header = [h.strip().strip("'").lower() for h in rows[0][1]]
    folded = [_folded(h) for h in header]
    id_col = next((i for i, h in enumerate(folded) if h in _ID_HEADERS), None)
    label_col = next((folded.index(n) for n in _LABEL_HEADERS if n in folded), None)
    if id_col is not None and label_col is None and len(header) == 2:
        label_col = 1 - id_col  # the other column of two is the label, whatever its name
    start = 1
    if id_col is None:
        if len(header) > 1:
            shown = ", ".join(repr(h.strip()) for h in rows[0][1][:8])
            raise ConfigError(
                [
                    f"{path}: line 1: no counter ID column (columns: {shown}): name it counter_id, id, "
                    "Счётчик or Номер счётчика"
                ]
            )
        # A first cell with a digit in it is an ID (checked like the others), not a header to skip.
        id_col, start = 0, (0 if header and any(ch.isdigit() for ch in header[0]) else 1)
    counters: list[Counter] = []
    for number, row in rows[start:]:
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
            counters.append(Counter(counter_id, label, DEFAULT_ACCOUNT))
    return ids.result([Account(DEFAULT_ACCOUNT, None, tuple(counters))], delimiter)


def _folded(header: str) -> str:
    """A header cell as compared: lower case, ё as е, no quotes, spaces, `_` or `-`."""
    return re.sub(r"[\s_\-]", "", header.strip().strip("'\"").lower()).replace("ё", "е")


def _is_a_table(text: str) -> bool:
    """A .txt that is a table, not one ID a line: tab-separated, or headed by an ID column's name."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())  # a comment says nothing of the shape
    first = next((line for line in lines if line.strip()), "")
    tabbed = "\t" in first.strip() and not re.fullmatch(r"[\d\s]+", first)  # not IDs pasted from a row
    return tabbed or _folded(first) in _ID_HEADERS or bool(_CSV_HEADER.match(first))


def sniff_delimiter(first_line: str) -> str:
    """`,`, `;` or a tab: whichever a CSV's first line uses most (a comma when it uses none)."""
    return max((",", ";", "\t"), key=first_line.count) if first_line else ","


def _label_cell(cell: str) -> str:
    # A report written by this tool guards formula-like cells with a leading apostrophe.
    if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r"):
        cell = cell[1:]
    return _no_surrogates(cell)


def _no_surrogates(text: str) -> str:
    """A YAML escape can make lone surrogates (unprintable, unwritable): U+FFFD; an escaped pair joins up."""
    if not _SURROGATE.search(text):
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
    """A YAML node as validation needs it: the tag, the value, the line and whether it was quoted.

    PyYAML's own nodes carry two Mark objects each; for 100,000 IDs its tree peaks at ~53 MB against
    the list's 9 MB. These, built from the parser's events, keep the peak near the list itself.
    """

    __slots__ = ("line", "quoted", "tag", "value")

    def __init__(self, tag: str, value: Any, line: int, quoted: bool = False) -> None:
        self.tag, self.value, self.line, self.quoted = tag, value, line, quoted


class _Scalar(_Node):
    value: str


class _Seq(_Node):
    value: list[_Node]


class _Map(_Node):
    value: list[tuple[_Node, _Node]]


def _compose(text: str, loader: Any = None) -> _Node | None:
    """Compose the first YAML document of `text` into light nodes; a second document is an error.

    An alias may repeat a scalar (an ID), never a list or a mapping: that is how YAML bombs grow.
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

    def attach(node: _Node, anchor: str | None) -> None:
        nonlocal root
        if anchor:
            anchors[anchor] = node
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, _Seq):
            parent.value.append(node)
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            key = pending_key[-1]
            assert key is not None
            parent.value.append((key, node))
            pending_key[-1] = None

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
            attach(_Scalar(tag, event.value, _line(event), quoted), event.anchor)
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
            attach(_Scalar(target.tag, target.value, _line(event), target.quoted), None)
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
            top = self.mapping(root, required=set(), allowed={"counters", "accounts", "ulogin"})
            if "counters" in top and "accounts" in top:
                raise self.fatal(root, "use either `counters:` or `accounts:`, not both")
            if "counters" in top:
                ulogin = self.ulogin(top["ulogin"]) if "ulogin" in top else None
                return [self.account_counters(DEFAULT_ACCOUNT, None, ulogin, top["counters"])]
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
                allowed={"name", "token_env", "token_file", "counters", "ulogin"},
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
            account = self.account_counters(name, env, ulogin, fields["counters"])
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
        if not _ENV_NAME.fullmatch(env):
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
        if not _LOGIN.fullmatch(login):
            raise self.fatal(
                node,
                f"ulogin {_shown(node)} is not a Yandex login (letters, digits, '.', '-', '_', '@')",
            )
        return login

    def account_counters(
        self, account: str, token_env: str | None, ulogin: str | None, node: _Node
    ) -> Account:
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
