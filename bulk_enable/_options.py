"""Every command-line option, declared once.

The parser, each option's default and help, the `Policy` a job runs with and the sandbox `Profile`
overrides all come from `OPTIONS`; docs/cli.md is checked against the parser built from it. A pace
option takes its default from `Policy`, a sandbox option from `Profile`: neither is written twice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._model import DEFAULT_API_BASE, ENV_NAME, LOGIN_PATTERN, TOKEN_ENV, Window
from ._policy import DEFAULT_RPS, METRICA_ADDRESS_RPS, METRICA_MAX_IN_FLIGHT, Policy

DELIMITERS = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "tab": "\t", "\\t": "\t", "\t": "\t"}
PERMISSIONS = ("own", "edit", "view", "analyst", "view_access_filter", "analyst_access_filter")

# The commands, in the order `--help` lists them, with their one-line help.
COMMANDS: dict[str, str] = {
    "run": "enable the window on every counter in CONFIG",
    "check": "read-only plan: what `run` would do, in a few requests",
    "status": "read each counter's real window state (one read each); never writes",
    "counters": "print a ready-to-run YAML of the counters the token sees",
    "report": "render a report again from its journal: no request, no token",
    "sandbox": "run the local Metrica stand-in; it accepts the token `sandbox-token` (login `agency`) "
    "unless --token says otherwise",
    "demo": "the main job against an embedded sandbox, no account needed",
}
JOB = frozenset({"run", "check", "status"})
API = JOB | {"counters"}
PACED = frozenset({"run", "status"})


# --- value checks: one line naming the accepted range ---------------------------------------------------


def count(low: int, high: int) -> Callable[[str], int]:
    """A whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """A finite number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {text!r}")
        return value

    return parse


def time_of_day(text: str) -> dt.time:
    """`21:00` (UTC), `3:00`, or with an offset, `00:00+03:00` (Moscow midnight): a UTC time of day."""
    try:
        when = dt.time.fromisoformat(text if len(text.split(":", 1)[0]) == 2 else "0" + text)  # 3:00 too
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a time of day as HH:MM or HH:MM:SS (UTC), or with an offset like 00:00+03:00, "
            f"got {text!r}"
        ) from None
    if when.tzinfo is None:
        return when
    return dt.datetime.combine(dt.date(2000, 1, 1), when).astimezone(dt.UTC).time()


def delimiter(text: str) -> str:
    """A CSV separator by character or name; the value is a key of DELIMITERS."""
    if text.strip().lower() not in DELIMITERS and text not in DELIMITERS:
        raise argparse.ArgumentTypeError(
            f"choose , (comma), ';' (semicolon) or tab, got {text!r} (quote the ; in the shell: "
            "--csv-delimiter ';')"
        )
    return text if text in DELIMITERS else text.strip().lower()


def permissions(text: str) -> str:
    """`own,edit` (spaces allowed): each one a permission the listing can show."""
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    for part in wanted:
        if part not in PERMISSIONS:
            close = difflib.get_close_matches(part, PERMISSIONS, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise argparse.ArgumentTypeError(
                f"unknown permission {part!r}{hint}: give some of {', '.join(PERMISSIONS)}, e.g. own,edit"
            )
    if not wanted:
        raise argparse.ArgumentTypeError("give some of " + ", ".join(PERMISSIONS) + ", e.g. own,edit")
    return ",".join(wanted)


def login(text: str) -> str:
    """A Yandex login, as the API spells them."""
    if not LOGIN_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Yandex login (letters, digits, '.', '-', '_', '@')"
        )
    return text


def env_name(text: str) -> str:
    """The NAME of an environment variable (never the token it holds)."""
    if not ENV_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "give the NAME of an environment variable holding the token (e.g. METRICA_TOKEN_CLIENT_A), "
            "never the token itself"
        )
    return text


def token_and_login(text: str) -> tuple[str, str]:
    """`TOKEN=LOGIN`, for the sandbox's accepted tokens."""
    token, sep, who = text.partition("=")
    if not sep or not token or not who:
        raise argparse.ArgumentTypeError(f"takes TOKEN=LOGIN, got {text!r}")
    return token, who


# --- the table -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One option (or positional argument) of some commands; `{default}` in `help` is filled in."""

    flags: tuple[str, ...]  # ("--rps",), or ("config",) for a positional argument
    commands: frozenset[str]
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    default: Any = None
    flag: bool = False  # on when given (store_true)
    repeat: bool = False  # may be given again (append)
    choices: tuple[Any, ...] | None = None
    dest: str | None = None
    policy: str | None = None  # the Policy field it sets: its default is that field's
    profile: str | None = None  # the sandbox Profile field it sets: shown as that field's default

    @property
    def name(self) -> str:
        """The attribute on the parsed namespace."""
        if self.dest is not None:
            return self.dest
        return self.flags[0].lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def absent(self) -> Any:
        """What a command without this option reads for it."""
        return False if self.flag else None

    def effective_default(self) -> Any:
        if self.policy is not None:
            return getattr(Policy(), self.policy)
        if self.profile is not None:
            return _profile_default(self.profile)
        return self.default

    def add_to(self, parser: argparse.ArgumentParser) -> argparse.Action:
        """Declare it on `parser`. A sandbox option defaults to None, so a --profile file's value stands.
        The help keeps its `{default}` until it is shown (see `HelpFormatter`): a sandbox default needs
        the sandbox module, which only `sandbox --help` should load."""
        kwargs: dict[str, Any] = {"help": self.help}
        if self.flag:
            kwargs.update(action="store_true", default=False)
        else:
            kwargs.update(type=self.type, metavar=self.metavar, choices=self.choices)
            if self.repeat:
                kwargs["action"] = "append"
            if not self.positional:
                kwargs["default"] = None if self.profile is not None else self.effective_default()
        if self.dest is not None and not self.positional:
            kwargs["dest"] = self.dest
        action = parser.add_argument(*self.flags, **kwargs)
        action.shown_default = self.effective_default  # type: ignore[attr-defined]
        return action


class HelpFormatter(argparse.HelpFormatter):
    """Fills in an option's `{default}` when its help is shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = getattr(action, "shown_default", None)
        if text is not None and default is not None and "{default}" in text:
            return text.replace("{default}", shown(default()))
        return text


def shown(value: Any) -> str:
    """A default as the help text says it."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _profile_default(name: str) -> Any:
    from ._sandbox_profile import Profile  # loads yaml: only for `--help` of `sandbox`

    return getattr(Profile(), name)


def _report_help(suffix: str, resumes: bool) -> str:
    more = "; a rerun with the same path resumes" if resumes else ""
    return f"the report, .csv or .xlsx (default reports/<config name>{suffix}.csv){more}"


_DELIMITER_HELP = (
    "the CSV report's separator: , (comma) or ';' (semicolon: Excel with a Russian locale) or tab; "
    "default: what the report already uses, else the CSV config's, else a comma"
)

OPTIONS: tuple[Option, ...] = (
    # --- the job: run, check, status
    Option(
        ("config",),
        JOB,
        "the counters: YAML, .txt (one ID a line) or .csv",
        type=Path,
        metavar="CONFIG",
    ),
    Option(("--report",), frozenset({"run"}), _report_help("", True), type=Path, metavar="PATH"),
    Option(("--report",), frozenset({"check"}), _report_help(".plan", False), type=Path, metavar="PATH"),
    Option(("--report",), frozenset({"status"}), _report_help(".status", False), type=Path, metavar="PATH"),
    Option(("--csv-delimiter",), JOB | {"report", "demo"}, _DELIMITER_HELP, type=delimiter, metavar="CHAR"),
    Option(
        ("--window",),
        JOB,
        "which extended window (default {default})",
        type=str.lower,  # `Calls` from a spreadsheet or a habit is the window all the same
        choices=tuple(w.value for w in Window),
        default=Window.CALLS.value,
    ),
    Option(("--disable",), frozenset({"run", "check"}), "switch the window off (DELETE)", flag=True),
    Option(
        ("--json",),
        JOB,
        "one JSON object on stdout at the end (or at an error): command, config, counts, requests, "
        "elapsed_s, report, exit_code, error, stops, report_error, deferred_until",
        flag=True,
    ),
    # --- the API: run, check, status, counters
    Option(
        ("--api-base",),
        API,
        "the API root only (default {default}); plain http only to loopback",
        metavar="URL",
        default=DEFAULT_API_BASE,
    ),
    Option(
        ("--token-file",),
        JOB,
        f"read the token from PATH instead of ${TOKEN_ENV}",
        type=Path,
        metavar="PATH",
    ),
    Option(
        ("--token-file",),
        frozenset({"counters"}),
        f"read the token from PATH instead of ${TOKEN_ENV} (repeatable with --clients)",
        type=Path,
        metavar="PATH",
        repeat=True,
    ),
    Option(
        ("--token-env",),
        frozenset({"counters"}),
        "read a token from this environment variable (repeatable with --clients)",
        type=env_name,
        metavar="NAME",
        repeat=True,
    ),
    Option(
        ("--clients",),
        frozenset({"counters"}),
        "the whole portfolio: the token's own counters and those of every client login it represents, "
        "as one accounts: config (only GET requests)",
        flag=True,
    ),
    Option(
        ("--max-attempts",),
        API,
        "tries of one request before it fails (one counter, or one listing page); quota answers do not "
        "count (default {default})",
        type=count(1, 100),
        metavar="N",
        policy="max_attempts",
    ),
    Option(
        ("--timeout",),
        API,
        "per request (default {default})",
        type=number(0.1, 600),
        metavar="SECONDS",
        policy="timeout",
    ),
    Option(
        ("--backoff",),
        API,
        f"first retry wait, doubling with jitter up to {Policy().backoff_max:g} s (default {{default}})",
        type=number(0, 30),
        metavar="SECONDS",
        policy="backoff_initial",
    ),
    # --- the pace: run, status
    Option(
        ("--concurrency",),
        PACED,
        f"requests in flight per login (default and Metrica's cap: {METRICA_MAX_IN_FLIGHT})",
        type=count(1, 10),
        metavar="N",
        policy="concurrency",
    ),
    Option(
        ("--rps",),
        PACED,
        f"requests a second for the whole run (default {DEFAULT_RPS:g}; Metrica: {METRICA_ADDRESS_RPS} per "
        "address)",
        type=number(0.1, 10000),
        metavar="R",
        policy="rps",
    ),
    Option(
        ("--max-requests",),
        PACED,
        "per login, the most requests to spend (per day with --until-done)",
        type=count(1, 10**9),
        metavar="N",
        policy="max_requests",
    ),
    Option(
        ("--max-failures", "--max-denied"),  # its old name, from when only access_denied stopped a login
        PACED,
        "stop a login after N counters failed the same way with none succeeded "
        f"({Policy().method_failures} when the answers blame the method or --api-base; default "
        "{default}; 0: never)",
        type=count(0, 10**6),
        metavar="N",
        policy="max_failures",
    ),
    Option(
        ("--until-done",),
        PACED,
        "on the daily quota, wait for the reset and go on, until every counter is done (or read)",
        flag=True,
        policy="until_done",
    ),
    Option(
        ("--quota-reset",),
        PACED,
        "when the daily quota resets, UTC (default {default}); 00:00+03:00 is Moscow midnight",
        type=time_of_day,
        metavar="HH:MM",
        policy="quota_reset",
    ),
    Option(
        ("--fresh",),
        frozenset({"run"}),
        "ignore the old report and send every counter (also replaces a file that is not a report)",
        flag=True,
    ),
    Option(
        ("--preflight",),
        frozenset({"run"}),
        "read the plan first (a few requests), write only where needed",
        flag=True,
    ),
    Option(
        ("--retry-failed",),
        frozenset({"run"}),
        "send again the counters that failed for good in earlier runs (access_denied, not_found...), once "
        "fixed: reruns skip them otherwise",
        flag=True,
    ),
    Option(("--dry-run",), frozenset({"run"}), "only make the plan: the same as `check`", flag=True),
    # --- counters
    Option(
        ("--permission",),
        frozenset({"counters"}),
        "keep counters with these permissions, e.g. edit or own,edit (only own and edit can be changed)",
        type=permissions,
        metavar="LIST",
    ),
    Option(
        ("--ulogin",),
        frozenset({"counters"}),
        "list a client's counters (agency access)",
        type=login,
        metavar="LOGIN",
    ),
    Option(
        ("--ulogin",),
        JOB,
        "a plain list of a client's counters: act for this login (agency access)",
        type=login,
        metavar="LOGIN",
    ),
    # --- report
    Option(
        ("report",),
        frozenset({"report"}),
        "the report's path (its .journal is beside it)",
        type=Path,
        metavar="REPORT",
    ),
    Option(
        ("--as",),
        frozenset({"report"}),
        "write it to another file instead, e.g. a workbook of a CSV run: --as reports/job.xlsx",
        type=Path,
        metavar="PATH",
        dest="copy",
    ),
    Option(
        ("--json",),
        frozenset({"report"}),
        "the outlook as one JSON object on stdout: per account done, failed, left, per_day, days_left",
        flag=True,
    ),
    Option(
        ("--by-account",),
        frozenset({"report"}),
        "a workbook per account in FOLDER, ready to send: only its rows, a Summary sheet with a chart",
        type=Path,
        metavar="FOLDER",
    ),
    Option(
        ("--lang",),
        frozenset({"report"}),
        "with --by-account: the workbooks' words (default en)",
        type=str.lower,  # RU, Ru
        choices=("en", "ru"),
    ),
    Option(
        ("--tz",),
        frozenset({"report"}),
        "with --by-account: the times' zone, e.g. Europe/Moscow (default UTC)",
        metavar="ZONE",
    ),
    # --- sandbox
    Option(
        ("--host",),
        frozenset({"sandbox"}),
        "address to listen on (default {default}); another than loopback needs --expose",
        default="127.0.0.1",
    ),
    Option(
        ("--expose",),
        frozenset({"sandbox"}),
        "allow a --host that other machines reach: the sandbox has no authentication, and anyone there "
        "can revoke its tokens or reset its day",
        flag=True,
    ),
    Option(
        ("--port",),
        frozenset({"sandbox"}),
        "0: a free port (printed first on stdout)",
        type=count(0, 65535),
        default=0,
    ),
    Option(
        ("--profile",),
        frozenset({"sandbox"}),
        "a YAML file of sandbox settings (the options' names, with _)",
        type=Path,
        metavar="YAML",
    ),
    Option(
        ("--token",),
        frozenset({"sandbox"}),
        "a token it accepts (repeatable; default {default})",
        type=token_and_login,
        metavar="TOKEN=LOGIN",
        repeat=True,
        profile="tokens",
    ),
    Option(
        ("--dead-token",),
        frozenset({"sandbox"}),
        "a token it refuses (invalid_token; repeatable)",
        metavar="TOKEN",
        repeat=True,
        profile="dead_tokens",
    ),
    Option(
        ("--counters",),
        frozenset({"sandbox"}),
        "the counters that exist, e.g. 1-300,12345678",
        metavar="RANGES",
        profile="counters",
    ),
    Option(
        ("--latency",),
        frozenset({"sandbox"}),
        "added to every answer (default {default})",
        type=number(0, 60),
        metavar="SECONDS",
        profile="latency",
    ),
    Option(
        ("--jitter",),
        frozenset({"sandbox"}),
        "+- random on the latency (default {default})",
        type=number(0, 60),
        metavar="SECONDS",
        profile="jitter",
    ),
    Option(
        ("--fault-rate",),
        frozenset({"sandbox"}),
        "0..1 of requests get a transient fault (default {default})",
        type=number(0, 1),
        metavar="SHARE",
        profile="fault_rate",
    ),
    Option(
        ("--slow-seconds",),
        frozenset({"sandbox"}),
        "how long a `slow` fault takes (default {default})",
        type=number(0, 600),
        metavar="SECONDS",
        profile="slow_seconds",
    ),
    Option(
        ("--seed",),
        frozenset({"sandbox"}),
        "for the fault decisions: the same seed, the same faults (default {default})",
        type=int,
        profile="seed",
    ),
    Option(
        ("--quota-status",),
        frozenset({"sandbox"}),
        "status of quota answers (default {default}; docs: either)",
        type=int,
        choices=(420, 429),
        profile="quota_status",
    ),
    Option(
        ("--bad-token-status",),
        frozenset({"sandbox"}),
        "status for a bad token (default {default}; docs: either)",
        type=int,
        choices=(401, 403),
        profile="bad_token_status",
    ),
    Option(
        ("--daily-limit",),
        frozenset({"sandbox"}),
        "requests per login a day, reads and writes each (default {default}; 0: off)",
        type=count(0, 10**9),
        metavar="N",
        profile="daily_limit",
    ),
    Option(
        ("--ip-rps",),
        frozenset({"sandbox"}),
        "requests per address a second (default {default}; 0: off)",
        type=count(0, 10**6),
        metavar="N",
        profile="ip_rps",
    ),
    Option(
        ("--parallel-limit",),
        frozenset({"sandbox"}),
        "requests in flight per login (default {default})",
        type=count(1, 1000),
        metavar="N",
        profile="parallel_limit",
    ),
    Option(
        ("--page-cap",),
        frozenset({"sandbox"}),
        "most counters per listing page (default {default})",
        type=count(1, 10**6),
        metavar="N",
        profile="page_cap",
    ),
    Option(
        ("--method-failure",),
        frozenset({"sandbox"}),
        "answer every write and join-threshold read as a gone or broken method would: gone (JSON 404 "
        "not_found), http_405, html_501, html_200, empty_200 ({}) or invalid_parameter (400)",
        metavar="MODE",
        profile="method_failure",
    ),
    Option(
        ("--offline-options",),
        frozenset({"sandbox"}),
        "add the undocumented offline_options to listings",
        flag=True,
        profile="offline_options",
    ),
    # --- demo
    Option(
        ("--config",),
        frozenset({"demo"}),
        "another job file (default: the packaged demo, 300 counters)",
        type=Path,
    ),
    Option(("--report",), frozenset({"demo"}), "default reports/demo.csv", type=Path, metavar="PATH"),
    Option(("--fresh",), frozenset({"demo"}), "start the demo over", flag=True),
)


def options_of(command: str) -> list[Option]:
    """The options `command` takes, in the order its --help lists them."""
    return [o for o in OPTIONS if command in o.commands]


def absent_defaults(command: str) -> dict[str, Any]:
    """What a handler reads for the options `command` does not take."""
    have = {o.name for o in options_of(command)}
    return {o.name: o.absent for o in OPTIONS if o.name not in have and not o.positional}


def policy_from(given: Mapping[str, Any], command: str) -> Policy:
    """The Policy from the options `command` takes; the rest keep Policy's defaults."""
    fields = {o.policy: given[o.name] for o in options_of(command) if o.policy is not None}
    return Policy(**fields)


def profile_overrides(given: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox Profile fields the options set (None: not given, the profile file's value stands)."""
    overrides: dict[str, Any] = {}
    for option in options_of("sandbox"):
        value = given.get(option.name)
        if option.profile is None or value in (None, False):
            continue
        overrides[option.profile] = _collected(value)
    return overrides


def _collected(value: Any) -> Any:
    """Repeated `TOKEN=LOGIN` pairs become the mapping the profile holds; anything else as given."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return dict(value)
    return value
