"""Every option is declared once: its default comes from Policy or the sandbox Profile, its help says
that default, and the Policy and Profile a command gets come from the same table."""

from __future__ import annotations

import contextlib
import io

import pytest

from bulk_enable import Policy, Profile
from bulk_enable._options import OPTIONS, options_of, policy_from, profile_overrides
from bulk_enable._parser import build_parser, parse, subparsers


@pytest.mark.parametrize("command", ["run", "check", "status"])
def test_no_option_changes_a_policy_default_unless_given(command: str) -> None:
    """A job with no option runs with exactly Policy()'s defaults."""
    args = parse([command, "x.yaml"])
    assert policy_from(vars(args), command) == Policy()


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["run", "x.yaml", "--rps", "7"], "rps", 7.0),
        (["run", "x.yaml", "--backoff", "0"], "backoff_initial", 0.0),
        (["run", "x.yaml", "--max-denied", "0"], "max_failures", 0),
        (["status", "x.yaml", "--max-failures", "4"], "max_failures", 4),
        (["status", "x.yaml", "--max-requests", "9"], "max_requests", 9),
        (["check", "x.yaml", "--timeout", "2.5"], "timeout", 2.5),
        (["run", "x.yaml", "--until-done"], "until_done", True),
    ],
)
def test_an_option_given_sets_its_policy_field(argv: list[str], field: str, value: object) -> None:
    """Each pace option lands in the Policy field the table names, and nowhere else."""
    policy = policy_from(vars(parse(argv)), argv[0])
    assert getattr(policy, field) == value
    assert {f: getattr(policy, f) for f in Policy.__dataclass_fields__ if f != field} == {
        f: getattr(Policy(), f) for f in Policy.__dataclass_fields__ if f != field
    }


def test_every_policy_option_names_a_real_field() -> None:
    """A typo in the table's Policy field would otherwise surface only when the option is used."""
    assert {o.policy for o in OPTIONS if o.policy} <= set(Policy.__dataclass_fields__)
    assert {o.profile for o in OPTIONS if o.profile} <= set(Profile.__dataclass_fields__)


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("run", "--max-attempts", Policy().max_attempts),
        ("run", "--max-failures", Policy().max_failures),
        ("sandbox", "--daily-limit", Profile().daily_limit),
        ("sandbox", "--page-cap", Profile().page_cap),
        ("sandbox", "--quota-status", Profile().quota_status),
    ],
)
def test_help_shows_the_default_from_where_it_is_declared(command: str, option: str, default: object) -> None:
    """`--help` says the default of Policy or Profile, not a literal written a second time."""
    sub = subparsers(build_parser())[command]
    text = sub.format_help()
    line = text[text.index(f"\n  {option}") + 1 :].split("\n  -", 1)[0]
    assert f"default {default}" in " ".join(line.split()), line


def test_sandbox_options_override_only_what_is_given() -> None:
    """Options not given stay None, so a --profile file's values stand; repeated tokens make a mapping."""
    args = parse(["sandbox", "--token", "a=alpha", "--token", "b=beta", "--daily-limit", "7"])
    assert profile_overrides(vars(args)) == {"tokens": {"a": "alpha", "b": "beta"}, "daily_limit": 7}
    assert profile_overrides(vars(parse(["sandbox"]))) == {}


def test_a_command_reads_a_neutral_value_for_options_it_does_not_take() -> None:
    """`check` has no --fresh or --max-requests: the handler reads False and None, not an AttributeError."""
    args = parse(["check", "x.yaml"])
    assert args.fresh is False and args.max_requests is None and args.until_done is False
    assert "--fresh" not in [f for o in options_of("check") for f in o.flags]


def test_sandbox_help_does_not_import_it_until_shown() -> None:
    """Building the parser for any command leaves the sandbox defaults unread (they need aiohttp)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parse(["sandbox", "--help"])
    assert f"default {Profile().ip_rps}" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["run", "x.yaml", "--window", "Conversions"], "window", "conversions"),
        (["report", "r.csv", "--lang", "RU"], "lang", "ru"),
    ],
)
def test_a_choice_is_taken_in_any_case(argv: list[str], field: str, value: str) -> None:
    """`--window Calls` and `--lang RU` are the choices themselves, as a spreadsheet or a habit types them."""
    assert getattr(parse(argv), field) == value
