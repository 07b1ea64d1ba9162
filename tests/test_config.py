"""The job-file loader: YAML (three forms), .txt and .csv read right; bad input refused by file and line."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulk_enable import _config
from bulk_enable._config import MAX_BYTES, MAX_ERRORS, Config, ConfigError, load_config
from bulk_enable._config_tables import MAX_LINE
from bulk_enable._model import MAX_ID, RUN_COLUMNS, Counter, Row, Status
from bulk_enable._render import render

from .conftest import REPO, SandboxFactory, cli, write_config

Shape = list[tuple[str, str | None, str | None, list[tuple[int, str]]]]  # (name, token_env, ulogin, counters)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, name: str, text: str) -> Config:
    """`text` saved as `name` (the extension picks the format), then loaded."""
    return load_config(_write(tmp_path, name, text))


def yaml_events_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the YAML events the loader reads from now on: [count], kept current."""
    import yaml

    read = [0]
    parse = yaml.parse

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in parse(*args, **kwargs):
            read[0] += 1
            yield event

    monkeypatch.setattr(yaml, "parse", counted)
    return read


def refused(path: Path) -> list[str]:
    """The ConfigError lines for the file at `path` (which must be refused)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def refuse(tmp_path: Path, name: str, text: str) -> tuple[Path, list[str]]:
    """`text` saved as `name`, which must be refused: its path and the ConfigError lines."""
    path = _write(tmp_path, name, text)
    return path, refused(path)


def shape(config: Config) -> Shape:
    """Each account as (name, token_env, ulogin, [(id, label)])."""
    return [(a.name, a.token_env, a.ulogin, [(c.id, c.label) for c in a.counters]) for a in config.accounts]


def ids(config: Config) -> list[int]:
    """The IDs that will run, in order."""
    return [c.id for c in config.counters]


# --- what loads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 123\n- 456\n", [("default", None, None, [(123, ""), (456, "")])]),
        ("[123, 456]\n", [("default", None, None, [(123, ""), (456, "")])]),
        (
            'counters:\n  - 123\n  - {id: 456, label: "Клиент, сайт"}\n  - id: 789\n    label: x\n',
            [("default", None, None, [(123, ""), (456, "Клиент, сайт"), (789, "x")])],
        ),
        (
            "ulogin: client-login\ncounters:\n  - 123\n",
            [("default", None, "client-login", [(123, "")])],
        ),
        ("ulogin: ~\ncounters: [123]\n", [("default", None, None, [(123, "")])]),
        (
            "accounts:\n"
            "  - {name: a, token_env: TOKEN_A, counters: [1, {id: 2, label: two}]}\n"
            "  - name: b\n    token_env: TOKEN_B\n    ulogin: client.b@yandex.ru\n    counters:\n      - 3\n",
            [
                ("a", "TOKEN_A", None, [(1, ""), (2, "two")]),
                ("b", "TOKEN_B", "client.b@yandex.ru", [(3, "")]),
            ],
        ),
        ("\ufeff- 123456789\n", [("default", None, None, [(123456789, "")])]),
        ("# my counters\n- 1  # the shop\n\n- 2\n", [("default", None, None, [(1, ""), (2, "")])]),
    ],
)
def test_yaml_forms_load(tmp_path: Path, text: str, expected: Shape) -> None:
    """A bare list, `counters:` (IDs or {id, label}, optional ulogin) and `accounts:` all load as written."""
    assert shape(load(tmp_path, "job.yaml", text)) == expected


def test_accounts_put_each_counter_under_its_account(tmp_path: Path) -> None:
    """Counter.account names the account whose list the counter is in."""
    config = load(
        tmp_path,
        "job.yaml",
        "accounts:\n  - {name: a, token_env: TA, counters: [1, 2]}\n"
        "  - {name: b, token_env: TB, counters: [3]}\n",
    )
    assert [(c.id, c.account) for c in config.counters] == [(1, "a"), (2, "a"), (3, "b")]


@pytest.mark.parametrize("login", ["client-login", "Client1", "a.b_c-d@yandex.ru", "x"])
@pytest.mark.parametrize("where", ["top", "account"])
def test_good_ulogin_is_kept(tmp_path: Path, login: str, where: str) -> None:
    """A Yandex login (letters, digits, '.', '-', '_', '@') is kept, at the top or inside an account."""
    text = (
        f"ulogin: {login}\ncounters: [1]\n"
        if where == "top"
        else f"accounts:\n  - {{name: a, token_env: T, ulogin: {login}, counters: [1]}}\n"
    )
    assert load(tmp_path, "job.yaml", text).accounts[0].ulogin == login


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("'bad login'", "'bad login'"),
        ("a/b", "'a/b'"),
        ("'-client'", "'-client'"),
        ("клиент", "'клиент'"),
        ("'a;rm -rf'", "'a;rm -rf'"),
        ("''", "ulogin text"),
        ("[a]", "a list"),
        ("12345", "'12345' (a number)"),
    ],
)
@pytest.mark.parametrize("where", ["top", "account"])
def test_bad_ulogin_is_refused(tmp_path: Path, value: str, shown: str, where: str) -> None:
    """A ulogin that is not a Yandex login is refused on its line, naming the value."""
    text, line = (
        (f"ulogin: {value}\ncounters: [1]\n", 1)
        if where == "top"
        else (f"accounts:\n  - {{name: a, token_env: T, ulogin: {value}, counters: [1]}}\n", 2)
    )
    path, lines = refuse(tmp_path, "job.yaml", text)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line {line}: ") and shown in lines[0]


def test_top_level_ulogin_with_accounts_is_refused(tmp_path: Path) -> None:
    """With `accounts:`, a top-level ulogin is ambiguous: refused with where to put it."""
    path, lines = refuse(
        tmp_path, "job.yaml", "ulogin: x\naccounts:\n  - {name: a, token_env: T, counters: [1]}\n"
    )
    assert lines == [f"{path}: line 1: with `accounts:`, give `ulogin:` inside each account"]


@pytest.mark.parametrize("name", ["job.txt", "JOB.TXT"])
def test_txt_one_id_a_line_skipping_blanks_and_comments(tmp_path: Path, name: str) -> None:
    """A .txt (any case) is one ID a line; blank lines, comment lines and trailing comments are ignored."""
    text = "# counters for the shop\n123\n\n   \n456   # the blog\n  789  \r\n# end\n"
    assert ids(load(tmp_path, name, text)) == [123, 456, 789]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Счётчик\tПодпись\n1\tПлюс\n2\tМинус\n", [(1, "Плюс"), (2, "Минус")]),  # Excel's "Unicode text"
        ("counter_id\n1\n2\n", [(1, ""), (2, "")]),  # a report's column saved with its header
        ("Номер счётчика\n1\n", [(1, "")]),
        ("1\n2\n", [(1, ""), (2, "")]),
        ("# from the CRM\texport\n1\t\n2   # the blog\n", [(1, ""), (2, "")]),  # a comment, a stray tab
        ("12345\t# shop\n23456\t# blog\n", [(12345, ""), (23456, "")]),
        ("#\tcomment\n12345\n", [(12345, "")]),
        ("# from the CRM\n\nСчётчик\tПодпись\n1\tПлюс\n", [(1, "Плюс")]),  # a note above the table
    ],
)
def test_a_txt_that_is_a_table_reads_as_one(
    tmp_path: Path, text: str, expected: list[tuple[int, str]]
) -> None:
    """A .txt with tabs or an ID column's header is a table (Excel's "Unicode text" is UTF-16 .txt);
    a tab in a comment or after an ID does not make one."""
    for encoding in ("utf-8", "utf-16"):
        path = tmp_path / f"{encoding}.txt"
        path.write_bytes(text.encode(encoding))
        assert [(c.id, c.label) for c in load_config(path).counters] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("counter_id,label\n1,a\n2,b\n", [(1, "a"), (2, "b")]),
        ("id;label\n1;a, with comma\n", [(1, "a, with comma")]),
        ("counter_id\tlabel\n1\t padded \n", [(1, " padded ")]),
        ("label,counter_id,extra\nx,1,y\n", [(1, "x")]),
        ('"counter_id","label"\n"1","quoted ""label"""\n', [(1, 'quoted "label"')]),
        ("ID\n1\n2\n", [(1, ""), (2, "")]),
        ("Counter IDs\n1\n2\n", [(1, ""), (2, "")]),
        ("1\n2\n", [(1, ""), (2, "")]),
        ("1\n\n2\n", [(1, ""), (2, "")]),
        ("\ufeffcounter_id,label\n1,a\n", [(1, "a")]),
        ("counter_id,label\n1\n", [(1, "")]),
        ('counter_id,label\r\n1,"a, ""b"""\r\n2,c\r\n', [(1, 'a, "b"'), (2, "c")]),
        ('counter_id;label\n1;Shop "A\n2;b\n', [(1, 'Shop "A'), (2, "b")]),
    ],
)
@pytest.mark.parametrize("name", ["job.csv", "JOB.CSV"])
def test_csv_forms_load(tmp_path: Path, name: str, text: str, expected: list[tuple[int, str]]) -> None:
    """A .csv: a counter_id/id column (and label), `,` `;` or tab, or one column with or without a header."""
    assert [(c.id, c.label) for c in load(tmp_path, name, text).counters] == expected


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_a_report_of_this_tool_reads_back(tmp_path: Path, delimiter: str) -> None:
    """A report written by the tool (any delimiter, guarded formula-like labels) loads with its labels."""
    labels = [
        "=SUM(1)",
        "+7 shop",
        "-5 blog",
        "@home",
        "\tindented",
        "plain; with, delimiters",
        "a\nb",
        " pad ",
    ]
    counters = [Counter(i, label, "default") for i, label in enumerate(labels, start=101)]
    report = tmp_path / "earlier.csv"
    rows = [Row.of(c, Status.FAILED, message='HTTP 500: "oops"; retry later') for c in counters]
    render(report, rows, RUN_COLUMNS, delimiter)
    assert report.read_text(encoding="utf-8-sig").split(delimiter, 1)[0] == "counter_id"
    assert "'=SUM(1)" in report.read_text(encoding="utf-8-sig")  # the guard is there to be removed
    assert load_config(report).counters == counters


@pytest.mark.parametrize(
    "text",
    [
        "counter_id;label;account;status;attempts\n5;'=SUM(1);default;enabled;1\n",
        "counter_id,label,account,status,attempts\n5,'=SUM(1),default,enabled,1\n",
    ],
)
def test_a_handwritten_report_drops_the_guard_apostrophe(tmp_path: Path, text: str) -> None:
    """The apostrophe the tool puts before `=SUM(1)` is removed on reading; other columns are ignored."""
    assert [(c.id, c.label, c.account) for c in load(tmp_path, "r.csv", text).counters] == [
        (5, "=SUM(1)", "default")
    ]


# --- what is refused, and how it is said ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line", "shown"),
    [
        ("job.yaml", "- 1\n- 0\n", 2, "'0' (a number)"),
        ("job.yaml", "- 1\n- -5\n", 2, "'-5' (a number)"),
        ("job.yaml", "- 45.6\n", 1, "'45.6' (a decimal number)"),
        ("job.yaml", "- 1\n- 12.0\n", 2, "'12.0' (a decimal number)"),
        ("job.yaml", "- 1e5\n", 1, "'1e5' (text)"),
        ("job.yaml", "- .inf\n", 1, "'.inf' (a decimal number)"),
        ("job.yaml", "- 1\n- yes\n", 2, "'yes' (a yes/no value)"),
        ("job.yaml", "- no\n", 1, "'no' (a yes/no value)"),
        ("job.yaml", "- 2024-01-01\n", 1, "'2024-01-01' (a date)"),
        ("job.yaml", "- 1\n-\n", 2, "an empty value"),
        ("job.yaml", "- 1\n- ~\n", 2, "'~' (an empty value)"),
        ("job.yaml", "- 0x1F\n", 1, "'0x1F' (a number)"),
        ("job.yaml", "- 1_000\n", 1, "'1_000' (a number)"),
        ("job.yaml", "- abc\n", 1, "'abc' (text)"),
        ("job.yaml", "- [1, 2]\n", 1, "a list"),
        ("job.yaml", f"- {2**63}\n", 1, f"'{2**63}' (a number)"),
        ("job.yaml", "counters:\n  - {id: abc}\n", 2, "'abc' (text)"),
        ("job.yaml", "counters:\n  - {label: x}\n", 2, "missing key `id`"),
        ("job.yaml", "counters:\n  - {id: 5, lable: x}\n", 2, "unknown key `lable`: did you mean `label`?"),
        ("job.yaml", "countres:\n  - 5\n", 1, "unknown key `countres`: did you mean `counters`?"),
        ("job.yaml", "counters: []\n", 1, "no counters listed"),
        ("job.yaml", "counters: 5\n", 1, "'5' (a number)"),
        ("job.yaml", "counters:\n", 1, "an empty value"),
        ("job.yaml", "42\n", 1, "'42' (a number)"),
        ("job.yaml", "counters:\n  - {id: 5, label: [a]}\n", 2, "label must be text, got a list"),
        ("job.yaml", "counters: [1]\naccounts: []\n", 1, "not both"),
        ("job.yaml", "accounts: []\n", 1, "non-empty list"),
        ("job.yaml", "accounts:\n  - 5\n", 2, "an account must be a mapping, got '5'"),
        ("job.yaml", "accounts:\n  - {name: a, counters: [1]}\n", 2, "token_env (an environment variable"),
        (
            "job.yaml",
            "accounts:\n  - {name: a, token_env: T, token_file: t, counters: [1]}\n",
            2,
            "(both given)",
        ),
        ("job.yaml", "accounts:\n  - {name: '', token_env: T, counters: [1]}\n", 2, "account name is empty"),
        (
            "job.yaml",
            "accounts:\n  - {name: a, token_env: A, counters: [1]}\n"
            "  - {name: a, token_env: B, counters: [2]}\n",
            3,
            "account `a` given twice",
        ),
        ("job.yaml", "counters:\n  - {id: 1, id: 2}\n", 2, "key `id` given twice"),
        ("job.yaml", "- *x\n", 1, "undefined alias 'x'"),
        ("job.yaml", "- 1\n---\n- 2\n", 2, "single document"),
        ("job.yaml", "- 1\n- [2\n", 3, "not valid YAML"),
        ("job.yaml", "- 1\n- 2\n  x: 3\n", 3, "not valid YAML"),
        ("job.yaml", "- 1\n- 2\x01\n", 2, "character 0x0001"),
        ("job.txt", "1\nabc\n", 2, "'abc'"),
        ("job.txt", "1\n\n# c\n1.5\n", 4, "'1.5'"),
        ("job.txt", "-5\n", 1, "'-5'"),
        ("job.txt", "0\n", 1, "'0'"),
        ("job.csv", "counter_id,label\n1,a\nabc,b\n", 3, "'abc'"),
        ("job.csv", "counter_id,label\n1,a\n,b\n", 3, "the counter ID cell is empty"),
        ("job.csv", 'counter_id,label\n1,"two\nlines"\n2,c\n', 2, "does not end on this line"),
        ("job.csv", 'counter_id,label\n1,"a"b\n', 2, "text after a closing quote"),
        ("job.csv", "12.5\n123\n", 1, "'12.5'"),
        (
            "job.csv",
            "a,b\n1,2\n",
            1,
            "no counter ID column (columns: 'a', 'b'): name it counter_id, id, Счётчик",
        ),
        ("job.csv", "counter_id,label\n1," + "x" * 200_000 + "\n", 2, "longer than 65,536 characters"),
        ("job.yaml", "- !!str 123\n", 1, "got !!str 123: remove the tag, write 123"),
        ("job.csv", "id,counter_id\n1,2\n", 1, "two counter ID columns, 'id' and 'counter_id'"),
    ],
)
def test_bad_input_names_file_line_and_value(
    tmp_path: Path, name: str, text: str, line: int, shown: str
) -> None:
    """Each bad input is one ConfigError line `<path>: line N: ` (1-based) naming the offending value."""
    path, lines = refuse(tmp_path, name, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: line {line}: "), lines
    assert shown in lines[0]


@pytest.mark.parametrize(
    ("name", "header", "row"),
    [
        ("job.yaml", "", "- x{}\n"),
        ("job.txt", "", "x{}\n"),
        ("job.csv", "", "x{}\n"),
        ("job.csv", "id\n", "x{}\n"),
    ],
)
@pytest.mark.parametrize("bad", [1, 4, MAX_ERRORS, MAX_ERRORS + 1, 25])
def test_up_to_ten_problems_at_once(tmp_path: Path, name: str, header: str, row: str, bad: int) -> None:
    """Up to ten problems are listed, each on its line; the eleventh stops the reading, said in one line."""
    path, lines = refuse(tmp_path, name, header + "".join(row.format(i) for i in range(bad)))
    shown = min(bad, MAX_ERRORS)
    skip = header.count("\n")
    for i, line in enumerate(lines[:shown]):
        assert line.startswith(f"{path}: line {i + 1 + skip}: ") and f"'x{i}'" in line, line
    if bad > MAX_ERRORS:
        stop = MAX_ERRORS + 1 + skip
        assert lines[shown:] == [f"... and more: reading stopped at line {stop} (fix these first)"]
    else:
        assert len(lines) == bad


# --- hostile tables: a quote left open, other line breaks, sizes -------------------------------------------

OPEN_QUOTE = (
    "a quoted cell starts here and does not end on this line (the lines after it would be read into it)"
)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251", "utf-16"])
@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (['11,Shop "A', '12,"Shop B', "13,c", "14,d", "15,e"], 3),  # issue 20: open to the end of the file
        (['11,"Магазин А', "12,b", '13,c"', "14,d"], 2),  # closed two lines on: 12 and 13 swallowed
        (['11,"a', 'b"', "12,c"], 2),  # a label over two lines (Alt+Enter in Excel)
    ],
)
def test_a_quote_left_open_is_refused_on_its_line(
    tmp_path: Path, delimiter: str, encoding: str, rows: list[str], line: int
) -> None:
    """A quote that does not close on its line never swallows the lines after it: refused on its line."""
    path = tmp_path / "job.csv"
    text = "\n".join(["counter_id,label", *rows]).replace(",", delimiter) + "\n"
    path.write_bytes(text.encode(encoding))
    lines = refused(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line {line}: {OPEN_QUOTE}: close the quote"), (
        lines
    )


def test_a_report_label_that_holds_rows_is_refused(tmp_path: Path) -> None:
    """A report of this tool may have a label over lines, but not one with what reads as rows in it."""
    empty = "," * (len(RUN_COLUMNS) - 4)
    rows = [
        f'11,"Shop B,default,enabled,1{empty}',
        f"12,c,default,enabled,1{empty}",
        f'13,d",default,enabled,1{empty}',
    ]
    path, lines = refuse(tmp_path, "r.csv", "\n".join([",".join(RUN_COLUMNS), *rows]) + "\n")
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line 2: {OPEN_QUOTE}"), lines


BREAKS = {
    "\x0b": "a vertical tab (\\x0b)",
    "\x0c": "a form feed (\\x0c)",
    "\x1c": "a file separator (\\x1c)",
    "\x1d": "a group separator (\\x1d)",
    "\x1e": "a record separator (\\x1e)",
    "\x85": "a next-line character (U+0085)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
    "\r": "a carriage return (\\r) without a newline",
}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize(("char", "said"), BREAKS.items())
@pytest.mark.parametrize(
    ("name", "text", "flawed", "bad"),
    [
        ("job.txt", "11{}12\r\n13\nx\n", [1], 3),
        ("job.csv", "counter_id,label\n11{}12,a\n13,b{}c\r\nx,d\n", [2, 3], 4),
    ],
)
def test_only_a_newline_ends_a_line(
    tmp_path: Path, encoding: str, char: str, said: str, name: str, text: str, flawed: list[int], bad: int
) -> None:
    """`11<char>12` is one line with a mistake on it, never IDs 11 and 12; lines keep an editor's numbers."""
    path = tmp_path / name
    path.write_bytes(text.replace("{}", char).encode(encoding))
    lines = refused(path)
    where = "" if char == "\r" else ", where other programs may see a line break"
    breaks = [f"{path}: line {n}: {said} in the line{where}" for n in flawed]
    assert [line.split(": remove it")[0] for line in lines[:-1]] == breaks
    assert lines[-1] == f"{path}: line {bad}: counter ID must be a positive whole number, got 'x'"


@pytest.mark.parametrize("rows", [2, MAX_LINE // 4])
def test_an_old_mac_file_is_told_to_be_saved_again(tmp_path: Path, rows: int) -> None:
    """Lines ended by a carriage return alone (an old Mac CSV) are one line here: refused on line 1
    with what to do, however long that line is."""
    text = "counter_id,label\r" + "".join(f"{i},a\r" for i in range(1, rows))
    path, lines = refuse(tmp_path, "job.csv", text)
    assert lines == [
        f"{path}: line 1: a carriage return (\\r) without a newline in the line: remove it (a file whose "
        "lines all end so, an old Mac format, must be saved again: as CSV UTF-8 in Excel)"
    ]


@pytest.mark.parametrize("name", ["job.txt", "job.csv", "job.yaml", "job"])
def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path, name: str) -> None:
    """A file over MAX_BYTES (sparse here: nothing on disk) is refused by its size before it is read."""
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    assert refused(path) == [
        f"{path}: 257 MB is more than a job file can be (256 MB, 1,000,000 counters): "
        "split it into several jobs"
    ]


def test_a_pipe_is_read_no_further_than_the_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe has no size to check first: its reading stops past MAX_BYTES (made small here)."""
    monkeypatch.setattr(_config, "MAX_BYTES", 10_000)
    path = tmp_path / "job.txt"
    os.mkfifo(path)

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(path, "wb") as f:
            for i in range(1, 100_000):
                f.write(b"%d\n" % i)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        lines = refused(path)
    finally:
        writer.join()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: it is more than a job file can be"), lines


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("job.txt", f"1\n# {'x' * (MAX_LINE - 2)}\r\n2\n", [1, 2]),
        ("job.csv", f"counter_id,label\n1,{'x' * (MAX_LINE - 2)}\r\n2,b\n", [1, 2]),
        ("job.txt", f"1\n#{'x' * MAX_LINE}\n2\n", 2),
        ("job.csv", f"counter_id,label\n1,a\n2,{'x' * (MAX_LINE - 1)}\n3,c\n", 3),
        ("job.txt", "\0" * (3 * MAX_LINE), 1),
    ],
)
def test_a_line_over_the_limit_stops_the_reading(
    tmp_path: Path, name: str, text: str, expected: list[int] | int
) -> None:
    """A line of MAX_LINE characters (and its CRLF) is read; a longer one stops the reading, naming it."""
    if isinstance(expected, list):
        assert ids(load(tmp_path, name, text)) == expected
        return
    path, lines = refuse(tmp_path, name, text)
    assert lines == [
        f"{path}: line {expected}: longer than 65,536 characters: a counter ID and its label need far fewer: "
        "is it the right file?"
    ]


def test_a_device_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A job file that is an endless device (/dev/zero) is refused at its first line, not read whole."""
    path = tmp_path / "job.txt"
    path.symlink_to("/dev/zero")
    assert refused(path) == [
        f"{path}: line 1: longer than 65,536 characters: a counter ID and its label need far fewer: "
        "is it the right file?"
    ]


@pytest.mark.parametrize(("name", "header"), [("job.txt", ""), ("job.csv", "counter_id\n")])
def test_reading_stops_at_the_eleventh_problem(tmp_path: Path, name: str, header: str) -> None:
    """Past ten problems nothing more is read: a line too long after them is never reached."""
    _, lines = refuse(tmp_path, name, header + "x\n" * (MAX_ERRORS + 1) + "1" * (MAX_LINE + 1) + "\n")
    assert len(lines) == MAX_ERRORS + 1
    line = MAX_ERRORS + 1 + header.count("\n")
    assert lines[-1] == f"... and more: reading stopped at line {line} (fix these first)"


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("job.txt", "1\n2\n2\n3\n4\n", 5),
        ("job.csv", "counter_id\n1\n2\n3\n3\n4\n", 6),
        ("job.yaml", "- 1\n- 2\n- 3\n- 4\n", 4),
        ("job.yaml", "counters:\n  - {id: 1, label: a}\n  - 2\n  - 3\n  - 4\n", 5),
        (
            "job.yaml",
            "accounts:\n  - {name: a, token_env: A, counters: [1, 2]}\n"
            "  - {name: b, token_env: B, counters: [3, 4]}\n",
            3,
        ),
    ],
)
def test_more_counters_than_a_job_runs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, line: int
) -> None:
    """Past MAX_COUNTERS (3 here) the reading stops, naming the line (a repeat is not one more)."""
    monkeypatch.setattr(_config, "MAX_COUNTERS", 3)
    path, lines = refuse(tmp_path, name, text)
    assert lines == [
        f"{path}: line {line}: more than 3 counters: one job runs at most 3: split the list into several jobs"
    ]


def test_accounts_are_not_counted_as_counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_COUNTERS counters (3 here) under as many accounts load: an account is not a counter."""
    monkeypatch.setattr(_config, "MAX_COUNTERS", 3)
    text = "accounts:\n" + "".join(
        f"  - {{name: a{i}, token_env: T{i}, counters: [{i}]}}\n" for i in (1, 2, 3)
    )
    assert ids(load(tmp_path, "job.yaml", text)) == [1, 2, 3]


MUST = "counter ID must be a positive whole number, got"


@pytest.mark.parametrize(
    ("text", "tagged"),
    [
        ("- !!str 123\n", [(1, "!!str 123")]),
        ("- 1\n- !!float 124\n", [(2, "!!float 124")]),
        ("- !!int 125\n", [(1, "!!int 125")]),
        ("- ! 126\n", [(1, "! 126")]),
        ('- !!str "127"\n', [(1, "!!str 127")]),
        ("counters:\n  - {id: !!str 128, label: x}\n", [(2, "!!str 128")]),
        ("- &a !!str 129\n- *a\n", [(1, "!!str 129"), (2, "!!str 129")]),
    ],
)
def test_a_tagged_id_is_refused(tmp_path: Path, text: str, tagged: list[tuple[int, str]]) -> None:
    """`!!str 123`, `!!float 124` or any other tag on an ID is refused as `"123"` is, on its line."""
    path, lines = refuse(tmp_path, "job.yaml", text)
    number = tagged[0][1].rsplit(" ", 1)[-1]
    assert lines == [f"{path}: line {n}: {MUST} {t}: remove the tag, write {number}" for n, t in tagged]


def test_a_tagged_id_that_is_wrong_anyway_says_what_is_wrong(tmp_path: Path) -> None:
    """A tagged ID with a leading zero gets the leading-zero hint first, not "write 0130"."""
    path, lines = refuse(tmp_path, "job.yaml", "- !!str 0130\n")
    assert lines == [
        f"{path}: line 1: {MUST} '0130' (text): drop the leading zero, write 130 "
        "(YAML reads a number with a leading zero as octal)"
    ]


@pytest.mark.parametrize(
    ("name", "text", "both"),
    [
        ("job.csv", "id,counter_id\n1,2\n", "'id' and 'counter_id'"),
        ("job.csv", "counter_id;label;ID\n1;a;2\n", "'counter_id' and 'ID'"),
        ("job.txt", "Счётчик\tid\n1\t2\n", "'Счётчик' and 'id'"),
    ],
)
def test_two_id_columns_are_refused(tmp_path: Path, name: str, text: str, both: str) -> None:
    """A header with two ID columns is ambiguous: refused naming both, never one taken silently."""
    path, lines = refuse(tmp_path, name, text)
    assert lines == [f"{path}: line 1: two counter ID columns, {both}: keep one, or rename the other"]


# --- hints for the usual mistakes ---------------------------------------------------------------------


TAB_HINT = "YAML is indented with spaces, never tabs"
LEADING_ZERO = "drop the leading zero, write 12345"
TOO_LONG = "25 digits is too long for a counter ID (at most 19"


@pytest.mark.parametrize(
    ("name", "text", "hint", "not_said"),
    [
        ("job.yaml", "- '12345'\n", "remove the quotes, write 12345", None),
        ("job.yaml", '- "12345"\n', "remove the quotes, write 12345", None),
        ("job.yaml", "counters:\n  - {id: '12345'}\n", "remove the quotes, write 12345", None),
        ("job.txt", "'12345'\n", "remove the quotes, write 12345", None),
        ("job.yaml", "counters:\n\t- 1\n", TAB_HINT, "cannot start any token"),
        ("job.yaml", "\t- 1\n", TAB_HINT, "cannot start any token"),
        ("job.yaml", "- 1\n\t- 2\n", TAB_HINT, "cannot start any token"),
        ("job.yaml", "counters:\n  - 1\n  -\t2\n", TAB_HINT, "cannot start any token"),
        ("job.yaml", "accounts:\n\t- name: a\n", TAB_HINT, "cannot start any token"),
        ("job.yaml", "12345\n67890\n", "need `- ` in front", None),
        ("job.yaml", "12345\n67890\n", "give the file a .txt extension", None),
        ("job.yaml", "12345, 67890\n", "put each on its own line", None),
        ("job.yaml", "- 12345, 67890\n", "put each on its own line", None),
        ("job.yaml", "- 12345 67890\n", "put each on its own line", None),
        ("job.txt", "12345, 67890\n", "put each on its own line", None),
        ("job.txt", "12345;67890\n", "put each on its own line", None),
        ("job.csv", "counter_id\n12345,67890\n", "put each on its own line", None),
        ("job.yaml", "counter_id,label\n1,a\n", "give the file a .csv extension", None),
        ("job.yaml", "counter_id;label;account;status\n1;a;default;enabled\n", ".csv extension", None),
        ("job.yaml", "counter_id\tlabel\n1\ta\n", "give the file a .csv extension", None),
        ("job.yaml", "id\n1\n2\n", "give the file a .csv extension", None),
        ("job.yaml", "- 012345\n", LEADING_ZERO, "too long"),
        ("job.yaml", "counters:\n  - {id: 012345}\n", LEADING_ZERO, "too long"),
        ("job.txt", "012345\n", LEADING_ZERO, "too long"),
        ("job.csv", "counter_id\n012345\n", LEADING_ZERO, "too long"),
        ("job.yaml", "- 1234567890123456789012345\n", TOO_LONG, "leading zero"),
        ("job.txt", "1234567890123456789012345\n", TOO_LONG, "leading zero"),
        ("job.csv", "counter_id\n1234567890123456789012345\n", TOO_LONG, "leading zero"),
        ("job.yaml", f"- {2**63}\n", f"above the largest possible counter ID, {MAX_ID}", "too long"),
    ],
)
def test_common_mistakes_get_a_hint(
    tmp_path: Path, name: str, text: str, hint: str, not_said: str | None
) -> None:
    """Quotes, tabs, no `- `, commas, CSV as YAML, leading zeros and overlong IDs each say how to fix it."""
    path, lines = refuse(tmp_path, name, text)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line "), lines
    assert hint in lines[0]
    if not_said is not None:
        assert not_said not in lines[0]


# --- the range of an ID ---------------------------------------------------------------------------------


FORMATS = [("job.yaml", "- {}\n"), ("job.txt", "{}\n"), ("job.csv", "counter_id\n{}\n")]


@pytest.mark.parametrize(("name", "template"), FORMATS)
@pytest.mark.parametrize("value", [1, 12345678, MAX_ID])
def test_ids_up_to_2_63_minus_1_load(tmp_path: Path, name: str, template: str, value: int) -> None:
    """1 to 2**63-1 are counter IDs in every format."""
    assert ids(load(tmp_path, name, template.format(value))) == [value]


@pytest.mark.parametrize(("name", "template"), FORMATS)
@pytest.mark.parametrize(
    "value", ["0", str(2**63), "-1", "1.5", "12345.0", "yes", "no", "2024-01-01", "1e3", "x"]
)
def test_ids_out_of_range_are_refused(tmp_path: Path, name: str, template: str, value: str) -> None:
    """0, 2**63, negatives, decimals, yes/no, dates and words are refused on their line, in every format."""
    path, lines = refuse(tmp_path, name, template.format(value))
    line = 2 if name.endswith(".csv") else 1
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line {line}: ") and repr(value) in lines[0]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("job.yaml", "- 1\n- ''\n", 2),
        ("job.yaml", "- 1\n- \n", 2),
        ("job.csv", "counter_id,label\n1,a\n ,b\n", 3),
    ],
)
def test_empty_id_is_refused(tmp_path: Path, name: str, text: str, line: int) -> None:
    """An empty ID value is refused on its line."""
    path, lines = refuse(tmp_path, name, text)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line {line}: ")


# --- YAML tags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("- 1\n- !!python/object:os.system 5\n", 2, "python/object:os.system"),
        ("- !!python/object/apply:os.system ['ls']\n", 1, "python/object/apply:os.system"),
        ("- 1\n- !!binary aGVsbG8=\n", 2, "tag:yaml.org,2002:binary"),
        ("- !foo 5\n", 1, "'!foo'"),
        ("- !!set {5: null}\n", 1, "tag:yaml.org,2002:set"),
        ("- !<tag:example.com,2000:x> 5\n", 1, "tag:example.com,2000:x"),
        ("counters: !foo [1]\n", 1, "'!foo'"),
        ("counters:\n  - {id: 1, label: !!python/name:os.system x}\n", 2, "python/name:os.system"),
        ("!foo\n- 1\n", 1, "'!foo'"),
    ],
)
def test_unknown_yaml_tags_are_refused(tmp_path: Path, text: str, line: int, tag: str) -> None:
    """A tag other than YAML's plain types is refused on its line, never ignored or obeyed."""
    path, lines = refuse(tmp_path, "job.yaml", text)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line {line}: ") and tag in lines[0]
    assert "not allowed" in lines[0]


# --- duplicates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected", "count", "examples"),
    [
        ("job.yaml", "[5, 5, 5, 6]\n", [5, 6], 2, ((5, 1, 1), (5, 1, 1))),
        ("job.yaml", "- &a 5\n- *a\n- 6\n", [5, 6], 1, ((5, 1, 2),)),
        ("job.yaml", "- 5\n- 6\n- 5\n- 5\n- 6\n- 7\n- 7\n", [5, 6, 7], 4, ((5, 1, 3), (5, 1, 4), (6, 2, 5))),
        ("job.yaml", "counters:\n  - 5\n  - {id: 5, label: later}\n", [5], 1, ((5, 2, 3),)),
        ("job.txt", "5\n5\n6\n", [5, 6], 1, ((5, 1, 2),)),
        ("job.csv", "counter_id,label\n5,a\n5,b\n", [5], 1, ((5, 2, 3),)),
    ],
)
def test_duplicates_run_once_and_are_counted(
    tmp_path: Path,
    name: str,
    text: str,
    expected: list[int],
    count: int,
    examples: tuple[tuple[int, int, int], ...],
) -> None:
    """A repeated ID (same line, alias, later line) runs once; repeats counted, (id, first, line) examples."""
    config = load(tmp_path, name, text)
    assert ids(config) == expected
    assert (config.duplicates.count, config.duplicates.examples) == (count, examples)


def test_first_listing_keeps_its_label(tmp_path: Path) -> None:
    """The first listing of a repeated ID is the one that runs, with its label."""
    config = load(tmp_path, "job.yaml", "counters:\n  - {id: 5, label: first}\n  - {id: 5, label: second}\n")
    assert [(c.id, c.label) for c in config.counters] == [(5, "first")]


@pytest.mark.parametrize(
    ("text", "expected", "repeats"),
    [
        (
            "accounts:\n  - {name: a, token_env: TA, counters: [1, 2]}\n"
            "  - {name: b, token_env: TB, counters: [2, 3]}\n",
            [(1, "a"), (2, "a"), (3, "b")],
            1,
        ),
        (
            "accounts:\n  - {name: b, token_env: TB, counters: [2, 3]}\n"
            "  - {name: a, token_env: TA, counters: [1, 2]}\n",
            [(2, "b"), (3, "b"), (1, "a")],
            1,
        ),
    ],
)
def test_an_id_under_two_accounts_runs_under_the_first(
    tmp_path: Path, text: str, expected: list[tuple[int, str]], repeats: int
) -> None:
    """An ID listed under two accounts runs once, under the first."""
    config = load(tmp_path, "job.yaml", text)
    assert [(c.id, c.account) for c in config.counters] == expected
    assert config.duplicates.count == repeats


@pytest.mark.parametrize(
    "text",
    [
        "accounts:\n  - {name: a, token_env: TA, counters: &both [1, 2]}\n"
        "  - {name: b, token_env: TB, counters: *both}\n",
        "a: &a [1, 2]\ncounters: *a\n",
        "- &m {id: 1}\n- *m\n",
    ],
)
def test_an_alias_of_a_list_or_mapping_is_refused(tmp_path: Path, text: str) -> None:
    """An alias may repeat an ID, never a whole list or mapping (the way YAML bombs grow)."""
    with pytest.raises(ConfigError, match=r"repeats a whole list or mapping: write its counters out once"):
        load(tmp_path, "job.yaml", text)


@pytest.mark.slow
def test_a_yaml_bomb_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 accounts all aliasing one list of 100,000 IDs: refused at the first alias of the list, in
    one pass over the list, never expanding it (the 999 other aliases are not even read)."""
    ids = ", ".join(map(str, range(1, 100_001)))
    more = "".join(f"  - {{name: a{i}, token_env: T, counters: *big}}\n" for i in range(1, 1000))
    path = tmp_path / "bomb.yaml"
    path.write_text(
        f"accounts:\n  - {{name: a0, token_env: T, counters: &big [{ids}]}}\n{more}", encoding="utf-8"
    )
    read = yaml_events_read(monkeypatch)
    with pytest.raises(ConfigError, match="repeats a whole list"):
        load_config(path)
    assert 100_000 < read[0] <= 100_000 + 30  # the list once, its account, the next account's alias


ALIASES = 200_000


@pytest.mark.slow
def test_200000_aliases_load_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """200,000 aliases of one ID load in one pass, with well under 5 s of CPU, as one counter and
    199,999 counted repeats. (CPU time, not the wall clock: other processes on the machine cannot
    stretch it.)"""
    path = tmp_path / "aliases.yaml"
    path.write_text("- &a 5\n" + "- *a\n" * (ALIASES - 1), encoding="utf-8")
    read = yaml_events_read(monkeypatch)
    cpu = time.thread_time()
    config = load_config(path)
    assert time.thread_time() - cpu < 5
    assert read[0] == ALIASES + 6  # each event read once: the aliases, and the stream, document and list
    assert ids(config) == [5]
    assert config.duplicates.count == ALIASES - 1
    assert config.duplicates.examples == ((5, 1, 2), (5, 1, 3), (5, 1, 4))


def test_cli_says_repeats_in_one_warning_line(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """`check` on a file of many repeats says so in one warning line, not one line per repeat."""
    box = sandbox_factory(counters="1-10")
    path = tmp_path / "aliases.yaml"
    path.write_text("- &a 5\n" + "- *a\n" * 19_999 + "- 6\n- 6\n", encoding="utf-8")
    done = cli("check", path, "--report", tmp_path / "plan.csv", "--api-base", box.url, "--quiet")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "repeat" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith(f"bulk-enable: {path}: ") and "e.g. 5 on lines 1 and 2" in warnings[0]


def test_cli_names_a_single_repeat_by_its_lines(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """One repeat is named with both its lines, the repeat's line being where the alias is."""
    box = sandbox_factory(counters="1-10")
    path = _write(tmp_path, "job.yaml", "- &a 5\n- 6\n- *a\n")
    done = cli("check", path, "--report", tmp_path / "plan.csv", "--api-base", box.url, "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"bulk-enable: {path}: line 3: counter 5 is listed again (first on line 1)" in done.stderr


# --- token_env ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("y0-AgAAAAAbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "y0-AgAAAAAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
        ("'my token'", "my token"),
        ("A-B", "A-B"),
        ("1ABC", "1ABC"),
        ("'$TOKEN'", "$TOKEN"),
        ("''", "''"),
        ("123456789012345", "123456789012345"),
        ("[y0-AgAAAAsecret]", "y0-AgAAAAsecret"),
        ("{y0-AgAAAAsecret: 1}", "y0-AgAAAAsecret"),
    ],
)
def test_token_env_must_be_a_name_and_is_never_echoed(tmp_path: Path, value: str, secret: str) -> None:
    """A token_env that is not an environment variable name is refused without repeating it."""
    path, lines = refuse(
        tmp_path, "job.yaml", f"accounts:\n  - {{name: a, token_env: {value}, counters: [1]}}\n"
    )
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line 2: token_env must be the NAME")
    assert secret not in lines[0]


@pytest.mark.parametrize("value", ["METRICA_TOKEN_A", "_x", "t1", "Token_Client_B"])
def test_token_env_name_is_kept(tmp_path: Path, value: str) -> None:
    """A valid environment variable name is kept as the account's token_env."""
    config = load(tmp_path, "job.yaml", f"accounts:\n  - {{name: a, token_env: {value}, counters: [1]}}\n")
    assert config.accounts[0].token_env == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tokens/a.token", "{folder}/tokens/a.token"),
        ("/etc/bulk-enable/a.token", "/etc/bulk-enable/a.token"),
        ("~/a.token", "{home}/a.token"),
        ("a", "{folder}/a"),
    ],
)
def test_token_file_is_found_from_the_configs_folder(tmp_path: Path, value: str, expected: str) -> None:
    """A relative token_file is beside the config (a cron job's folder is not the config's), `~` is
    the home folder, and the account has no token_env."""
    config = load(tmp_path, "job.yaml", f"accounts:\n  - {{name: a, token_file: {value}, counters: [1]}}\n")
    account = config.accounts[0]
    assert account.token_env is None
    assert account.token_file == Path(expected.format(folder=tmp_path, home=Path.home()))


@pytest.mark.parametrize("value", ["y0_AgAAAAAbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "''", "[a]"])
def test_a_token_pasted_as_token_file_is_refused_and_never_echoed(tmp_path: Path, value: str) -> None:
    """A token (or nothing, or a list) in place of token_file's path: one line, without the value."""
    path, lines = refuse(
        tmp_path, "job.yaml", f"accounts:\n  - {{name: a, token_file: {value}, counters: [1]}}\n"
    )
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line 2: token_file must be the path of a file")
    assert "AgAAAA" not in lines[0]


@pytest.mark.parametrize("name", ["example.yaml", "accounts.example.yaml"])
def test_the_example_configs_load(name: str) -> None:
    """The configs shipped as examples are valid; the accounts example shows each token source."""
    config = load_config(REPO / "configs" / name)
    assert config.counters
    sources = {("env" if a.token_env else "file" if a.token_file else "default") for a in config.accounts}
    assert sources == ({"env", "file"} if name.startswith("accounts") else {"default"})


# --- labels -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "label"),
    [
        ("job.yaml", "counters:\n  - {id: 1, label: '  padded  '}\n", "  padded  "),
        ("job.yaml", 'counters:\n  - {id: 1, label: " tab\\t"}\n', " tab\t"),
        ("job.yaml", 'counters:\n  - {id: 1, label: "\\ud800"}\n', "\ufffd"),
        ("job.yaml", 'counters:\n  - {id: 1, label: "a\\udfffb"}\n', "a\ufffdb"),
        ("job.yaml", 'counters:\n  - {id: 1, label: "\\ud83d\\ude00"}\n', "\U0001f600"),
        ("job.yaml", "counters:\n  - {id: 1, label: 123}\n", "123"),
        ("job.yaml", "counters:\n  - {id: 1, label: ~}\n", ""),
        ("job.csv", "counter_id,label\n1,  padded  \n", "  padded  "),
        ("job.csv", "counter_id;label\n1;'-minus\n", "-minus"),
        ("job.csv", "counter_id;label\n1;'plain\n", "'plain"),
    ],
)
def test_labels_are_kept_as_written(tmp_path: Path, name: str, text: str, label: str) -> None:
    """Labels keep their spaces; a lone surrogate becomes U+FFFD; only the tool's own guard is removed."""
    assert [c.label for c in load(tmp_path, name, text).counters] == [label]


def test_account_name_with_a_lone_surrogate_is_printable(tmp_path: Path) -> None:
    """An account name escaped to a lone surrogate becomes U+FFFD, so it can be printed and written."""
    config = load(tmp_path, "job.yaml", 'accounts:\n  - {name: "a\\ud800", token_env: T, counters: [1]}\n')
    assert config.accounts[0].name == "a\ufffd" == config.counters[0].account


# --- files that are not a job ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("job.yaml", b"", "the file is empty"),
        ("job.yaml", b"# only a comment\n", "the file is empty"),
        ("job.yaml", b"~\n", "the file is empty"),
        ("job.yaml", b"\n\n   \n", "the file is empty"),
        ("job.yaml", "\ufeff".encode(), "the file is empty"),
        ("job.txt", b"", "the file is empty"),
        ("job.txt", b"# only a comment\n\n", "the file is empty"),
        ("job.csv", b"", "the file is empty"),
        ("job.csv", b"counter_id,label\n", "the file is empty"),
        ("job.yaml", b"- 1\n- \xff\n", "not UTF-8 text (invalid start byte at byte 6): save it as UTF-8"),
    ],
)
def test_unusable_file_is_one_clear_line(tmp_path: Path, name: str, content: bytes, said: str) -> None:
    """Empty, comment-only, `~` and non-UTF-8 files are each refused in one line naming the file."""
    path = tmp_path / name
    path.write_bytes(content)
    lines = refused(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and said in lines[0], lines


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    """A missing file is refused by name."""
    assert refused(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_directory_is_one_clear_line(tmp_path: Path) -> None:
    """A directory given as the job file is refused by name."""
    (tmp_path / "jobs.yaml").mkdir()
    assert refused(tmp_path / "jobs.yaml") == [
        f"{tmp_path / 'jobs.yaml'}: is a directory, not a file of counter IDs"
    ]


# --- through the real CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.yaml", "- '123'\n"),
        ("bad.yaml", ""),
        ("bad.yaml", "counters:\n\t- 1\n"),
        ("bad.yaml", "- 1\n- !!python/object:os.system 5\n"),
        ("bad.yaml", "- 1\n- 2\x01\n"),
        ("bad.yaml", "accounts:\n  - {name: a, token_env: y0-AgAAAAsecret, counters: [1]}\n"),
        ("bad.yaml", "- x\n- 0\n- -1\n- 1.5\n"),
        ("bad.txt", "".join(f"x{i}\n" for i in range(15))),
        ("bad.csv", "counter_id,label\n1," + "x" * 200_000 + "\n"),
        ("bad.csv", 'counter_id,label\n11,Shop "A\n12,"Shop B\n13,c\n14,d\n15,e\n'),  # issue 20
        ("bad.csv", 'counter_id;label\n11;Магазин\n12;"Магазин Б\n13;c\n'),
        ("bad.txt", "11\x0b12\n"),
        ("bad.txt", "x\n" * 11 + "1" * 100_000 + "\n"),
        ("bad.yaml", "- !!str 123\n- !!float 124\n"),
        ("bad.csv", "id,counter_id\n1,2\n"),
        ("missing.yaml", None),
    ],
)
def test_cli_refuses_bad_config_before_sending_anything(
    tmp_path: Path, sandbox_factory: SandboxFactory, name: str, text: str | None
) -> None:
    """`run` on a bad config: exit 2, stderr lines all `bulk-enable: `, no traceback, request or report."""
    box = sandbox_factory(counters="1-10")
    path = tmp_path / name if text is None else _write(tmp_path, name, text)
    report = tmp_path / "r.csv"
    done = cli("run", path, "--report", report, "--api-base", box.url)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("bulk-enable: ") for line in lines), done.stderr
    assert str(path) in lines[0]
    assert "secret" not in done.stderr
    assert box.stats()["requests"] == 0
    assert not report.exists()


def test_cli_runs_a_good_config(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """The same CLI path with a good config does send requests (so the refusals above are the config's)."""
    box = sandbox_factory(counters="1-10")
    done = cli(
        "run",
        write_config(tmp_path / "ok.yaml", [1, 2]),
        "--report",
        tmp_path / "r.csv",
        "--api-base",
        box.url,
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert box.stats()["requests"] > 0 and (tmp_path / "r.csv").exists()
