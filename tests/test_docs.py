"""The docs keep up with the code, in both languages, and never link outside the repository."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from bulk_enable import Profile
from bulk_enable._options import shown  # a default as --help says it: the docs say it alike
from bulk_enable._parser import build_parser as _build_parser
from bulk_enable._parser import subparsers as _subparsers

from .conftest import REPO

READMES = ["README.md", "README.ru.md"]
CLI_PAGES = ["docs/cli.md", "docs/ru/cli.md"]
SANDBOX_PAGES = ["docs/sandbox.md", "docs/ru/sandbox.md"]
PAGES = sorted([*READMES, "CHANGELOG.md", *(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))])
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
CELL = re.compile(r"(?<!\\)\|")  # a table's cell border; `calls\|conversions` stays one cell


def long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        name: action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for name in action.option_strings
        if name.startswith("--")
    }


def commands() -> dict[str, dict[str, argparse.Action]]:
    """Each command's own long options (the global ones, which every command takes, left out)."""
    parser = _build_parser()
    top = long_options(parser)
    return {
        command: {name: action for name, action in long_options(sub).items() if name not in top}
        for command, sub in _subparsers(parser).items()
    }


def sections(page: str) -> dict[str, str]:
    """A page's `## ` sections by heading (the text before the first one under "")."""
    text = (REPO / page).read_text(encoding="utf-8")
    parts = re.split(r"^## (.*)$", FENCE.sub("", text), flags=re.MULTILINE)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2], strict=True))}


def command_section(page: str, command: str) -> str:
    found = [text for heading, text in sections(page).items() if f"`bulk-enable {command}`" in heading]
    assert len(found) == 1, f"{page}: expected one section headed `bulk-enable {command}`"
    return found[0]


def option_rows(section: str) -> dict[str, list[str]]:
    """Table rows by each long option named in the first cell: the row's cells."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in CELL.split(line.strip())[1:-1]]
        if cells:
            for name in re.findall(r"`(--[a-z0-9][a-z0-9-]*)", cells[0]):
                rows[name] = cells
    return rows


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", CLI_PAGES)
@pytest.mark.parametrize("command", sorted(commands()))
def test_every_option_is_in_its_commands_section(page: str, command: str) -> None:
    """Each command has its section in docs/cli.md (and docs/ru/cli.md), each of its options a row there."""
    rows = option_rows(command_section(page, command))
    missing = [name for name in commands()[command] if name not in rows]
    assert not missing, f"{page}, `bulk-enable {command}`: no row for {', '.join(missing)}"


@pytest.mark.parametrize("page", CLI_PAGES)
def test_global_options_come_before_the_commands(page: str) -> None:
    """The options every command takes are in docs/cli.md before the first command's section."""
    before = (REPO / page).read_text(encoding="utf-8").split("## `bulk-enable ", 1)[0]
    missing = [name for name in long_options(_build_parser()) if f"`{name}`" not in before]
    assert not missing, f"{page}: no global option {', '.join(missing)} before the commands"


@pytest.mark.parametrize("page", CLI_PAGES)
@pytest.mark.parametrize("command", sorted(commands()))
def test_each_default_in_the_docs_is_the_parsers(page: str, command: str) -> None:
    """Where the parser has a default, the option's row in docs/cli.md shows that value."""
    rows = option_rows(command_section(page, command))
    for name, action in commands()[command].items():
        if action.default is None or isinstance(action.default, bool) or name not in rows:
            continue
        value = re.escape(shown(action.default))
        assert re.search(rf"(?<![\w.]){value}(?![\w.])", rows[name][1]), f"{page}, {command} {name}"


@pytest.mark.parametrize("page", SANDBOX_PAGES)
def test_every_sandbox_setting_is_documented(page: str) -> None:
    """Each field of the sandbox's profile has its row in docs/sandbox.md (English and Russian)."""
    text = (REPO / page).read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(Profile) if f"| `{f.name}` |" not in text]
    assert not missing, f"{page} has no row for: {', '.join(missing)}"


@pytest.mark.parametrize("readme", READMES)
def test_the_readme_is_short_and_starts_with_the_two_commands(readme: str) -> None:
    """Each README is under 200 lines, and its first code block is `make demo`, then `make test`."""
    text = (REPO / readme).read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    first = FENCE.search(text)
    assert first is not None
    lines = [line.split("#", 1)[0].strip() for line in first.group(1).splitlines() if line.strip()]
    assert lines[:2] == ["make demo", "make test"]


def test_the_russian_recipes_are_the_tested_ones() -> None:
    """docs/ru/unattended.md carries the very config, unit and cron line that tests/test_job.py runs
    from docs/unattended.md: a fix to one that misses the other fails here."""
    english, russian = (
        (REPO / page).read_text(encoding="utf-8") for page in ("docs/unattended.md", "docs/ru/unattended.md")
    )
    assert FENCE.findall(russian) == FENCE.findall(english) != []


def test_the_tests_the_promises_name_exist() -> None:
    """Every test docs/development.md names is defined, in the file it names when it names one."""
    text = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    every = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "tests").glob("test_*.py")))
    named = re.findall(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`", text)
    assert len(named) > 10
    for path, name in named:
        source = (REPO / path).read_text(encoding="utf-8") if path else every
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{path or 'tests/'}: {name}"
    for path in re.findall(r"`(tests/[\w/]+\.py)`", text):
        assert (REPO / path).is_file(), path


@pytest.mark.parametrize("page", PAGES)
def test_links_stay_inside_the_repository(page: str) -> None:
    """Relative links point at files in the repository, anchors at their headings; none leaves it."""
    text = (REPO / page).read_text(encoding="utf-8")
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path = (REPO / page).parent / target if target else REPO / page
        assert path.resolve().is_relative_to(REPO), target
        assert path.exists(), target
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", FENCE.sub("", path.read_text(encoding="utf-8")), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{page}: {target}#{anchor}"
    assert "../shared" not in text
