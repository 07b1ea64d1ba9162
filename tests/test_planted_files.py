"""Files a job keeps beside its config (locks, preferences) and the config it is given cannot be
turned against it: junk, a FIFO or a device planted there is refused or ignored in one line, never a
traceback or a hang; a discovered config cannot be made to carry a key through a comment."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bulk_enable._config import ConfigError, load_config
from bulk_enable._errors import UserError
from bulk_enable._job_files import JobLock, Preferences, lock_path, preferences
from bulk_enable._model import Command, Job
from bulk_enable._portfolio import FoundAccount, Portfolio, portfolio_yaml
from bulk_enable._report import ReportError, ReportFile
from bulk_enable._report import lock_path as report_lock_path
from bulk_enable._tokens import TokenSource

from .conftest import write_config


def finishes(work: Callable[[], object], seconds: float = 20.0) -> object:
    """`work()`'s result, or a failure if it is still running after `seconds` (a hang, not slowness)."""
    box: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as e:  # handed to the caller, as if called directly
            errors.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "it hung"
    if errors:
        raise errors[0]
    return box[0]


def prefs_file(config: Path) -> Path:
    folder = config.parent / "reports"
    folder.mkdir(exist_ok=True)
    return folder / f"{config.name}.prefs.json"


@pytest.mark.parametrize(
    "plant",
    [
        lambda p: p.write_text("[" * 4000, encoding="utf-8"),  # nested deep: a RecursionError
        lambda p: p.write_bytes(b"\xff\xfe junk"),
        lambda p: os.mkfifo(p),  # opening it for reading would wait for a writer forever
        lambda p: p.mkdir(),
    ],
    ids=["nested", "binary", "fifo", "folder"],
)
def test_junk_preferences_are_ignored_never_a_crash_or_a_hang(
    tmp_path: Path, plant: Callable[[Path], None]
) -> None:
    """A prefs file that is not ours reads as no preferences at all."""
    config = write_config(tmp_path / "job.yaml", [1])
    plant(prefs_file(config))
    assert finishes(lambda: preferences(config)) == Preferences()


@pytest.mark.parametrize("kind", ["fifo", "job"])
def test_a_fifo_planted_at_a_lock_is_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    """A FIFO where the job's lock or the report's lock goes: refused, never a traceback."""
    config = write_config(tmp_path / "job.yaml", [1])
    report = tmp_path / "reports" / "job.csv"
    report.parent.mkdir()
    if kind == "job":
        os.mkfifo(lock_path(config, Command.RUN, Job()))
        with pytest.raises(UserError, match="cannot lock the job") as refused:
            finishes(lambda: JobLock(config, Command.RUN, Job(), report).__enter__())
    else:
        os.mkfifo(report_lock_path(report))
        with pytest.raises(ReportError, match="cannot write the report here") as refused:
            finishes(lambda: ReportFile(report, Command.RUN, Job()).__enter__())
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)


def test_a_token_file_path_cannot_add_an_account_through_a_comment(tmp_path: Path) -> None:
    """A token file whose name holds line breaks stays inside its comment: the YAML has the accounts
    discovery found, and no other."""
    evil = tmp_path / "t\n  - name: evil\n    token_env: EVIL\n    counters: [777]\n#x"
    first = FoundAccount("agency", TokenSource("a" * 40, file=evil), "client-c", [])
    first.note = f"also reached with the token in {evil}: its counters are under other"
    text = portfolio_yaml(Portfolio([first], "own,edit"), 1)
    assert yaml.safe_load(text) == {"accounts": None}
    assert "\n  - name: evil" not in text


@pytest.mark.parametrize("name", ["\\e[31mred", "a\u202eb", "two\\nlines", "bell\\a"])
def test_an_account_name_with_control_characters_is_refused(tmp_path: Path, name: str) -> None:
    """An account's name reaches the terminal, logs and file names: control codes are a config error."""
    path = tmp_path / "job.yaml"
    path.write_text(f'accounts:\n  - name: "{name}"\n    token_env: T\n    counters: [1]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="has control characters") as refused:
        load_config(path)
    assert "\x1b" not in str(refused.value) and "\u202e" not in str(refused.value)
