"""The READMEs keep up with the command line, in both languages, and never link outside the repository."""

from __future__ import annotations

import argparse
import re

import pytest

from bulk_enable._cli import _build_parser, _subparsers

from .conftest import REPO

READMES = ["README.md", "README.ru.md"]


def commands_and_options() -> list[str]:
    parser = _build_parser()
    names: set[str] = set()
    for command, sub in _subparsers(parser).items():
        names.add(f"bulk-enable {command}")
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names.update(o for o in action.option_strings if o.startswith("--"))
    return sorted(names)


@pytest.mark.parametrize("readme", READMES)
def test_every_command_and_option_is_documented(readme: str) -> None:
    """Each command and each long option of the CLI appears in the README (English and Russian)."""
    text = (REPO / readme).read_text(encoding="utf-8")
    missing = [name for name in commands_and_options() if name not in text]
    assert not missing, f"{readme} does not mention: {', '.join(missing)}"


@pytest.mark.parametrize("readme", [*READMES, "docs/metrica-api.md", "docs/unattended.md"])
def test_links_stay_inside_the_repository(readme: str) -> None:
    """Relative links point at files that exist in the repository; none leaves it."""
    text = (REPO / readme).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path = (REPO / readme).parent / target
        assert path.resolve().is_relative_to(REPO), target
        assert path.exists(), target
    assert "../shared" not in text
