"""The argparse tree, built from the option table, with one-line errors and suggestions.

Every mistake on the command line is an `ArgError` (a `UsageError`, exit 2): one line naming the
option and what it accepts, a "did you mean" where one helps, never a usage dump.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import re
from typing import Any, NoReturn

from ._errors import UsageError
from ._options import COMMANDS, HelpFormatter, absent_defaults, options_of


class ArgError(UsageError):
    """A command line argparse cannot read; the message is one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (and a suggestion) instead of usage and a traceback-like dump."""

    def error(self, message: str) -> NoReturn:
        raise ArgError(_one_line_error(self, message))


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; `args.command` names the command."""
    parser = build_parser()
    _refuse_options_before_the_command(parser, argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = subparsers(parser).get(args.command, parser)
        unknown = extras[0]
        known = [o for action in sub._actions for o in action.option_strings]
        hint = _did_you_mean(unknown.split("=", 1)[0], known) if unknown.startswith("-") else ""
        what = "option" if unknown.startswith("-") else "argument"
        raise ArgError(f"{sub.prog}: unknown {what} {unknown!r}{hint} (see {sub.prog} --help)")
    return args


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The whole tree: the top parser and one subparser per command, options from the table.

    Built once per process: the tree depends on the option table only, and parsing never changes it.
    """
    parser = _Parser(
        prog="bulk-enable",
        allow_abbrev=False,
        description="Enable Yandex Metrica's extended call tracking window on many counters, within the "
        "API quotas. Reruns finish what is left.",
        epilog="Start with: bulk-enable demo   (no account needed). Each command's --help lists its options.",
    )
    parser.add_argument("--version", action=_Version)
    _verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, help in COMMANDS.items():
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help, description=help, allow_abbrev=False, formatter_class=HelpFormatter
        )
        p.set_defaults(**absent_defaults(name))
        _verbosity(p)
        for option in options_of(name):
            option.add_to(p)
    return parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> str:
    where = parser.prog
    choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        option, value, options = choice.groups()
        known = [o.strip(" '") for o in options.split(",")]
        hint = _did_you_mean(value, known)
        what = "command" if option in ("COMMAND", "command") else option
        return f"{where}: unknown {what} {value!r}{hint} (choose from {', '.join(known)})"
    required = re.match(r"the following arguments are required: (.*)", message)
    if required:
        return f"{where}: {required.group(1)} is missing (see {where} --help)"
    value = re.match(r"argument ([^:]+): (.*)", message)
    if value and "--csv-delimiter" in value.group(1) and "expected one argument" in value.group(2):
        return f"{where}: --csv-delimiter: give it a value; quote a semicolon: --csv-delimiter ';'"
    if value:
        return f"{where}: {value.group(1).split('/')[-1]}: {value.group(2)} (see {where} --help)"
    return f"{where}: {message} (see {where} --help)"


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""


def _refuse_options_before_the_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`bulk-enable --report x.csv run a.yaml`: say where the option goes, not "unknown command x.csv"."""
    commands = subparsers(parser)
    top = {o for action in parser._actions for o in action.option_strings}
    for arg in argv:
        if arg in commands:
            return
        name = arg.split("=", 1)[0]
        if not name.startswith("--") or name in top:
            continue
        takers = [c for c, sub in commands.items() if any(name in a.option_strings for a in sub._actions)]
        if not takers:
            hint = _did_you_mean(name, sorted(top))
            raise ArgError(f"bulk-enable: unknown option {name!r}{hint} (see bulk-enable --help)")
        config = "CONFIG " if takers[0] in ("run", "check", "status") else ""
        example = f"bulk-enable {takers[0]} {config}{name} ..."
        raise ArgError(f"bulk-enable: {name} goes after the command, e.g. {example}")


class _Version(argparse.Action):
    """--version, read from the installed package's metadata only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from . import __version__

        print(f"bulk-enable {__version__}")
        parser.exit()


def _verbosity(p: argparse.ArgumentParser, top: bool = False) -> None:
    """-v/-q before or after the command: the top parser holds the defaults, commands only override."""
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="more log lines on stderr (each retry)",
        **({"default": 0} if top else keep),
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar, warnings only",
        **({"default": False} if top else keep),
    )
