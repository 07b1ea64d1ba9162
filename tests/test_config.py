"""The config loader: every bad input refused with file, line and value; good ones read right."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bulk_enable import ConfigError, load_config, parse_config

from .conftest import run_cli


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("- 123\n- '456'\n", 2, "'456' (text)"),
        ("- 123\n- 45.6\n", 2, "'45.6' (a decimal number)"),
        ("- 123\n- yes\n", 2, "'yes' (a yes/no value)"),
        ("- 0\n", 1, "'0' (a number)"),
        ("- -5\n", 1, "'-5' (a number)"),
        ("- 0x1F\n", 1, "'0x1F' (a number)"),
        ("- 0123\n", 1, "'0123' (a number)"),
        ("- 1_000\n", 1, "'1_000' (a number)"),
        ("- 123\n-\n", 2, "an empty value"),
        ("- [1, 2]\n", 1, "a list"),
        ("counters:\n  - {id: abc}\n", 2, "'abc' (text)"),
        ("counters:\n  - {label: x}\n", 2, "missing key `id`"),
        ("counters:\n  - {id: 5, lable: x}\n", 2, "unknown key 'lable'"),
        ("countres:\n  - 5\n", 1, "unknown key 'countres'"),
        ("counters: []\n", 1, "no counters listed"),
        ("counters: 5\n", 1, "'5' (a number)"),
        ("42\n", 1, "'42' (a number)"),
        ("- 1\n- 2\n  x: 3\n", 3, "not valid YAML"),
        ("counters:\n  - 1\n - 2\n", 3, "not valid YAML"),
        ("counters:\n  - {id: 5, label: [a]}\n", 2, "label must be text"),
        (
            "accounts:\n  - {name: a, token_env: 'my token', counters: [1]}\n",
            2,
            "not an environment",
        ),
        ("accounts:\n  - {name: a, counters: [1]}\n", 2, "missing key `token_env`"),
        (
            "accounts:\n  - {name: a, token_env: A, counters: [1]}\n"
            "  - {name: a, token_env: B, counters: [2]}\n",
            3,
            "account `a` given twice",
        ),
        ("accounts: []\n", 1, "non-empty list"),
        ("counters: [1]\naccounts: []\n", 1, "not both"),
    ],
)
def test_bad_input_is_refused_with_line_and_value(tmp_path: Path, text: str, line: int, shown: str) -> None:
    """Each kind of bad input names the file, the line and the offending value."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert f"line {line}" in message
    assert shown in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "why"), [("", "empty"), ("# only a comment\n", "empty"), ("~\n", "empty")])
def test_empty_file_is_refused(tmp_path: Path, text: str, why: str) -> None:
    """An empty file is not an empty job."""
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=why):
        load_config(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A missing file is named."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_all_three_forms_are_read(tmp_path: Path) -> None:
    """Bare list, `counters:` with labels, and `accounts:` give the same shape."""
    bare = parse_config("- 11\n- 12\n", tmp_path / "a.yaml")
    assert [(c.id, c.label, c.account) for c in bare.counters] == [
        (11, "", "default"),
        (12, "", "default"),
    ]
    labelled = parse_config('counters:\n  - 11\n  - {id: 12, label: "Клиент, сайт"}\n', tmp_path / "b.yaml")
    assert [(c.id, c.label) for c in labelled.counters] == [(11, ""), (12, "Клиент, сайт")]
    accounts = parse_config(
        "accounts:\n  - {name: a, token_env: TA, counters: [1, 2]}\n"
        "  - {name: b, token_env: TB, counters: [3]}\n",
        tmp_path / "c.yaml",
    )
    assert [(a.name, a.token_env, [c.id for c in a.counters]) for a in accounts.accounts] == [
        ("a", "TA", [1, 2]),
        ("b", "TB", [3]),
    ]
    assert [c.account for c in accounts.counters] == ["a", "a", "b"]


def test_duplicate_is_reported_once_and_run_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A repeated ID keeps its first place and is mentioned with both lines."""
    with caplog.at_level(logging.WARNING):
        config = parse_config("- 5\n- 6\n- 5\n", tmp_path / "d.yaml")
    assert [c.id for c in config.counters] == [5, 6]
    assert "line 3: counter 5 is listed again (first on line 1)" in caplog.text


def test_alias_repeating_an_id_runs_once(tmp_path: Path) -> None:
    """A YAML alias that repeats an ID is a duplicate too."""
    assert [c.id for c in parse_config("- &a 5\n- *a\n- 6\n", tmp_path / "a.yaml").counters] == [5, 6]


@pytest.mark.parametrize(
    ("text", "what"), [("- *x\n", "undefined alias"), ("- 1\n---\n- 2\n", "single document")]
)
def test_structural_yaml_errors(tmp_path: Path, text: str, what: str) -> None:
    """Undefined aliases and extra documents are refused with their line."""
    with pytest.raises(ConfigError, match=what):
        parse_config(text, tmp_path / "s.yaml")


def test_bom_and_large_ids_are_fine(tmp_path: Path) -> None:
    """A file saved by Excel (BOM) and 9-digit IDs load."""
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeff- 123456789\n".encode())
    assert [c.id for c in load_config(path).counters] == [123456789]


@pytest.mark.parametrize("text", ["- '123'\n", "- yes\n", "", "- 1\n- [2\n", "counters: {a: 1}\n"])
def test_cli_refuses_bad_config_with_exit_2_and_no_request(
    tmp_path: Path, sandbox_factory: object, text: str
) -> None:
    """Bad input: exit 2, one line on stderr, no traceback, nothing sent."""
    box = sandbox_factory()  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    done = run_cli("run", path, "--api-base", box.url, "--report", tmp_path / "r.csv")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and str(path) in done.stderr
    assert box.stats()["requests"] == 0
    assert not (tmp_path / "r.csv").exists()
