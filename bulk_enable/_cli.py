"""The command line: parse and validate, hand off to the jobs, print the summary, return the exit code.

Only argparse and the light model modules load at start-up; each command imports what it needs,
so `bulk-enable --help` answers at once. Every mistake a user can make is one line on stderr and
exit 2, with a suggestion where one helps.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._errors import JobStopped, UsageError, UserError
from ._model import Command, ExitCode, Job, Row, Status, Window
from ._policy import DEFAULT_RPS, METRICA_ADDRESS_RPS, METRICA_MAX_IN_FLIGHT, Policy
from ._tokens import TOKEN_ENV

if TYPE_CHECKING:
    from ._config import Config
    from ._interrupt import Interrupt
    from ._jobs import JobEvents, Settings
    from ._model import Summary

log = logging.getLogger("bulk_enable")
T = TypeVar("T")
DEFAULTS = Policy()
DELIMITERS = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "tab": "\t", "\\t": "\t", "\t": "\t"}
REPORT_SUFFIXES = (".csv", ".tsv", ".xlsx")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bulk-enable` and `python -m bulk_enable`."""
    _standard_streams()
    with _interrupt_from_the_start():
        try:
            args = _parse(sys.argv[1:] if argv is None else argv)
        except _ArgError as e:
            print(e, file=sys.stderr)
            return ExitCode.USAGE
        except KeyboardInterrupt:
            _say("interrupted")
            return ExitCode.INTERRUPTED
        _setup_logging(args.verbose, args.quiet)
        return _handle(args)


def _handle(args: argparse.Namespace) -> int:
    """Run the command; every mistake the user can make (a `UserError`) becomes its lines and its
    exit code. Anything else is a bug: it crashes with a traceback."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as e:
        for line in e.lines:
            _say(line)
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        # `bulk-enable counters | head -1` has what it wanted: a quiet end. A job whose output went
        # away mid-run did not finish: never exit 0 for it (a scheduler reruns until 0).
        return ExitCode.OK if args.handler is cmd_counters else ExitCode.STOPPED


@contextlib.contextmanager
def _interrupt_from_the_start() -> Iterator[None]:
    """SIGTERM and SIGHUP end the process like Ctrl-C (exit 130, one line) from the very start; once a
    job runs, its own handlers take over (send nothing new, finish what is in flight). A signal the
    parent ignores (`nohup`, `cmd &` in a script) stays ignored."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave it as it is
            if signal.getsignal(signum) is not signal.SIG_IGN:
                before[signum] = signal.signal(signum, interrupted)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _say(text: str) -> None:
    for line in text.splitlines() or [""]:
        print(f"bulk-enable: {line}", file=sys.stderr)


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _standard_streams() -> None:
    """A stream closed before the start (`>&-`, `2>&-`) is None in Python: write those to nowhere
    rather than fail on the first print after the job is done. And stderr only carries diagnostics:
    one that cannot be written (a full disk, a reader gone) is dropped, never turned into a crash."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    if not isinstance(sys.stderr, _Diagnostics):
        sys.stderr = _Diagnostics(sys.stderr)


class _Diagnostics:
    """stderr, best effort: writes that fail are dropped (the exit code and the report say it all)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):  # ValueError: written after a close
            return int(self._stream.write(text))
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


# --- commands ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_check(args)
    from ._jobs import run_job

    settings = _settings(args, Command.RUN)
    return _execute(args, settings, run_job, Command.RUN)


def cmd_check(args: argparse.Namespace) -> int:
    from ._jobs import check_job

    return _execute(args, _settings(args, Command.CHECK), check_job, Command.CHECK)


def cmd_status(args: argparse.Namespace) -> int:
    from ._jobs import status_job

    return _execute(args, _settings(args, Command.STATUS), status_job, Command.STATUS)


def cmd_counters(args: argparse.Namespace) -> int:
    from ._interrupt import Interrupt
    from ._jobs import counters_yaml, list_counters
    from ._messages import AGAIN, fix_for, plural, stop_reason, terminal
    from ._metrica import check_api_base

    api_base = check_api_base(args.api_base)
    from ._tokens import default_token

    token = default_token(args.token_file)
    interrupt = Interrupt()
    policy = _policy(args)
    found, stop = _run_async(list_counters(api_base, token, args.ulogin, policy, interrupt), interrupt)
    if stop is not None:
        raise JobStopped(
            f"{terminal(stop_reason(stop))}; next: {fix_for(stop.cause).replace(AGAIN, 'try again')}"
        )
    text, n = counters_yaml(found, args.permission, args.ulogin)
    lost = _write_stdout(text)
    if lost is not None and not isinstance(lost, BrokenPipeError):  # `| head`: the reader has its part
        raise JobStopped(f"cannot write the listing to stdout ({lost.strerror or lost})")  # not done
    log.info("%s listed", plural(n, "counter"))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from ._report import render_again, render_copy

    if args.copy is None:
        if args.csv_delimiter is not None:
            raise UsageError(
                "--csv-delimiter goes with --as (a copy); the report keeps its own separator, which "
                "reruns use too"
            )
        rows = render_again(args.report)
        _outlook(args, rows, f"report: {args.report} ({len(rows)} counters, rendered from its journal)")
        return ExitCode.OK
    if args.copy.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--as {args.copy}: give the copy a .csv or .xlsx name")
    delimiter = DELIMITERS[args.csv_delimiter] if args.csv_delimiter is not None else None
    rows = render_copy(args.report, args.copy, "\t" if args.copy.suffix.lower() == ".tsv" else delimiter)
    _tell(f"report: {args.copy} ({len(rows)} counters, from the journal of {args.report}, which reruns use)")
    return ExitCode.OK


def _outlook(args: argparse.Namespace, rows: list[Row], head: str) -> None:
    """After `report`: per account, done, failed (by cause) and left, with the days left at the job's
    pace; or, with --json, the same as one object on stdout (the words on stderr, unless -q)."""
    import json

    from ._messages import json_outlook, outlook_lines
    from ._outlook import outlook
    from ._report import journal_header, journal_path

    header = journal_header(journal_path(args.report))
    command = header.command if header is not None else Command.RUN
    accounts = outlook(rows, command)
    lines = [head, *outlook_lines(accounts)]
    if not args.json:
        _tell("\n".join(lines))
        return
    if not args.quiet:
        for line in lines:
            print(line, file=sys.stderr)
    _tell(json.dumps(json_outlook(args.report, command, accounts), ensure_ascii=False))


def _tell(line: str) -> None:
    """A line on stdout that only confirms what is done on disk: losing it loses nothing."""
    lost = _write_stdout(line + "\n")
    if lost is not None and not isinstance(lost, BrokenPipeError):
        _say(f"cannot write to stdout ({lost.strerror or lost}); done all the same: {line.splitlines()[0]}")


def _write_stdout(text: str) -> OSError | None:
    """Write `text` to stdout; a reader gone or a full disk is returned, not raised, and stdout
    then goes to /dev/null (so the interpreter's last flush cannot fail either)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        _quiet_stdout()
        return e
    return None


def cmd_sandbox(args: argparse.Namespace) -> int:
    import asyncio

    from ._sandbox import serve_forever

    profile = _profile(args)
    try:
        asyncio.run(serve_forever(profile, args.host, args.port, _sandbox_ready))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise UsageError(
            f"sandbox: cannot listen on {args.host}:{args.port} ({e.strerror}): try --port 0"
        ) from None
    return ExitCode.OK


def _sandbox_ready(url: str, tokens: dict[str, str]) -> None:
    print(url, flush=True)  # the first line of stdout: scripts read the URL from it
    token = next(iter(tokens), "sandbox-token")
    log.warning(
        "sandbox: serving the Metrica API at %s (stats at %s/_sandbox/stats); Ctrl-C stops it", url, url
    )
    log.warning(
        "sandbox: tokens it accepts: %s", ", ".join(f"{t} (login {who})" for t, who in tokens.items())
    )
    log.warning(
        "sandbox: try: %s=%s bulk-enable counters --api-base %s > sandbox.yaml && %s=%s bulk-enable run "
        "sandbox.yaml --api-base %s",
        TOKEN_ENV,
        token,
        url,
        TOKEN_ENV,
        token,
        url,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from ._config import load_config
    from ._demo import demo_config_path, run_demo
    from ._report import default_report_path

    config_path = args.config or demo_config_path()
    config = load_config(config_path)
    # Your own file gets its own report (reports/NAME.demo.csv), not rows mixed into the demo's.
    named = Path("demo.yaml") if args.config is None else args.config.with_suffix(".demo.yaml")
    report = args.report or default_report_path(named, Job(), Command.RUN)
    delimiter = _report_delimiter(args.csv_delimiter, report, config.csv_delimiter)
    interrupt, events = _interrupt_and_events(args)
    summary, sandbox_line = _run_async(
        run_demo(config, report, args.fresh, events, interrupt, delimiter), interrupt, events
    )
    staged = (
        ["(the demo's failures are staged: its agency cannot change 5 of the counters, so it exits 1)"]
        if summary.count(Status.FAILED) and args.config is None
        else []
    )
    _finish(args, summary, config_path, sandbox_line, *staged)
    from ._messages import exit_code

    return exit_code(summary)


# --- from arguments to settings ----------------------------------------------------------------------


def _settings(args: argparse.Namespace, command: Command) -> Settings:
    """Validate everything before anything is sent."""
    from ._config import load_config
    from ._job_files import preferences, report_for
    from ._jobs import Settings
    from ._metrica import check_api_base, mistyped_host
    from ._report import check_target, journal_header, journal_path
    from ._tokens import tokens

    api_base = check_api_base(args.api_base)
    near = mistyped_host(api_base)
    if near:
        log.warning("--api-base %s: did you mean https://%s? (going on as given)", api_base, near)
    config = load_config(args.config)
    job = Job(Window(args.window), not args.disable)
    report, usual = report_for(config, job, command, args.report, args.fresh)
    if report.resolve() == args.config.resolve():
        raise UsageError(
            f"--report {report} is the counters file itself: give the report its own name, e.g. {usual}"
        )
    fresh = args.fresh
    check_target(report, command, fresh)
    if report.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(
            f"--report {report}: give the report a .csv or .xlsx name (Excel opens both; .xlsx keeps "
            "Cyrillic and long numbers as they are)"
        )
    _warn_about(args, config)
    if command is Command.RUN and not fresh:
        header = journal_header(journal_path(report))
        if header is None and usual.resolve() != report.resolve():
            _warn_of_results_elsewhere(usual, report, config, job)
        if header is not None and header.command is Command.RUN and header.job != job:
            from ._messages import job_words

            log.warning(
                "%s was made to %s, this run will %s: earlier results are not reused",
                report,
                job_words(header.job),
                job_words(job),
            )
    interrupt, events = _interrupt_and_events(args)
    delimiter = _report_delimiter(
        args.csv_delimiter, report, config.csv_delimiter, preferences(args.config).delimiter
    )
    return Settings(
        config=config,
        tokens=tokens(config, args.token_file),
        report=report,
        api_base=api_base,
        job=job,
        policy=_policy(args),
        delimiter=delimiter,
        fresh=fresh,
        preflight=args.preflight,
        retry_failed=args.retry_failed,
        events=events,
        interrupt=interrupt,
    )


def _warn_of_results_elsewhere(usual: Path, report: Path, config: Config, job: Job) -> None:
    """A run into a new report while the config's usual one has these counters done: say that all
    of them go out again, and how to get those results in another file instead."""
    from ._report import journal_header, journal_path, read_journal

    earlier = journal_header(journal_path(usual))
    if earlier is None or earlier.command is not Command.RUN or earlier.job != job:
        return
    _, rows = read_journal(journal_path(usual))
    done = sum(
        1 for c in config.counters if (r := rows.get(c.id)) is not None and r.status in job.done_statuses
    )
    if done:
        log.warning(
            "%s already has %d of these counters done; %s starts from nothing and sends them again "
            "(for those results in another file: bulk-enable report %s --as %s)",
            usual,
            done,
            report,
            usual,
            report,
        )


def _report_delimiter(
    given: str | None, report: Path, config_delimiter: str | None = None, preferred: str | None = None
) -> str:
    """The CSV report's separator: the option's; else the one last given to a command of this config
    (`preferred`); else the one this report already has (a rerun keeps it); else `;` for a `;` CSV
    config (Excel with a Russian locale); else a comma."""
    from ._config import sniff_delimiter
    from ._report import journal_header, journal_path

    if given is not None:
        return DELIMITERS[given]
    if report.suffix.lower() == ".tsv":
        return "\t"
    if preferred is not None:
        return preferred
    header = journal_header(journal_path(report))
    if header is not None:
        return header.delimiter
    if report.suffix.lower() == ".csv" and report.is_file():
        with contextlib.suppress(OSError), open(report, encoding="utf-8-sig", errors="replace") as f:
            return sniff_delimiter(f.readline())
    return ";" if config_delimiter == ";" else ","  # (a tab belongs in a .tsv, not a .csv report)


def _policy(args: argparse.Namespace) -> Policy:
    """The policy from the options a command has; the rest keep Policy's defaults."""
    names = {
        "concurrency": "concurrency",
        "rps": "rps",
        "max_attempts": "max_attempts",
        "max_requests": "max_requests",
        "max_denied": "max_denied",
        "timeout": "timeout",
        "backoff": "backoff_initial",
        "until_done": "until_done",
        "quota_reset": "quota_reset",
    }
    given = vars(args)
    return Policy(**{field: given[option] for option, field in names.items() if option in given})


def _warn_about(args: argparse.Namespace, config: Config) -> None:
    from ._messages import plural

    given = vars(args)
    if given.get("concurrency", 0) > METRICA_MAX_IN_FLIGHT:
        log.warning(
            "--concurrency %d is above Metrica's %d parallel requests per login: expect quota answers "
            "(the run lowers it again by itself)",
            args.concurrency,
            METRICA_MAX_IN_FLIGHT,
        )
    if given.get("rps", 0) > METRICA_ADDRESS_RPS:
        log.warning(
            "--rps %g is above Metrica's %d requests a second per address: expect quota answers "
            "(the run slows down by itself)",
            args.rps,
            METRICA_ADDRESS_RPS,
        )
    if args.report is not None and args.report.suffix.lower() == ".xlsx" and args.csv_delimiter is not None:
        log.warning("--csv-delimiter applies to CSV reports; %s is a workbook", args.report)
    dup = config.duplicates
    if dup.count:
        cid, first, line = dup.examples[0]
        if dup.count == 1:
            log.warning(
                "%s: line %d: counter %d is listed again (first on line %d): it runs once",
                config.path,
                line,
                cid,
                first,
            )
        else:
            where = ", under the first account that lists it" if len(config.accounts) > 1 else ""
            log.warning(
                "%s: %s of counters listed before (e.g. %d on lines %d and %d): each counter runs once%s",
                config.path,
                plural(dup.count, "repeat"),
                cid,
                first,
                line,
                where,
            )


def _profile(args: argparse.Namespace) -> Any:
    from ._sandbox import Profile

    profile = Profile.from_yaml(args.profile) if args.profile else Profile()
    names = (
        "latency",
        "jitter",
        "fault_rate",
        "seed",
        "quota_status",
        "daily_limit",
        "ip_rps",
        "parallel_limit",
        "slow_seconds",
        "counters",
        "page_cap",
        "bad_token_status",
    )
    overrides: dict[str, object] = {name: getattr(args, name) for name in names}
    if args.offline_options:
        overrides["offline_options"] = True
    if args.token:
        pairs = [t.partition("=") for t in args.token]
        if any(not sep or not login for _, sep, login in pairs):
            raise UsageError("--token takes TOKEN=LOGIN")
        overrides["tokens"] = {token: login for token, _, login in pairs}
    if args.dead_token:
        overrides["dead_tokens"] = args.dead_token
    return profile.updated(overrides)


# --- running a job -------------------------------------------------------------------------------------


def _interrupt_and_events(args: argparse.Namespace) -> tuple[Interrupt, JobEvents]:
    from ._interrupt import Interrupt
    from ._progress import CliEvents

    progress = not args.quiet and sys.stderr.isatty()
    return Interrupt(), CliEvents(progress)


def _execute(
    args: argparse.Namespace,
    settings: Settings,
    job: Callable[[Settings], Coroutine[Any, Any, Summary]],
    command: Command,
) -> int:
    from ._job_files import JobLock, remember
    from ._messages import exit_code

    with JobLock(args.config, command, settings.job, settings.report):
        remember(args.config, args.csv_delimiter and DELIMITERS[args.csv_delimiter], args.report)
        summary = _run_async(job(settings), settings.interrupt, settings.events)
    code = exit_code(summary)
    _finish(args, summary, args.config)
    return code


def _run_async(work: Coroutine[Any, Any, T], interrupt: Interrupt, events: JobEvents | None = None) -> T:
    """Run `work` with Ctrl-C, SIGTERM and SIGHUP wired to `interrupt` (and the progress shown)."""
    import asyncio

    from ._progress import showing, signals

    async def wired() -> T:
        with signals(interrupt):
            async with showing(events):
                return await work

    return asyncio.run(wired())


def _finish(args: argparse.Namespace, summary: Summary, config: Path, *more: str) -> None:
    """The summary (and `more` lines) on stdout, or the JSON with the words on stderr. A stdout that
    cannot take it (closed, full) costs one line on stderr, never the exit code: the job is done and
    the report has every row."""
    import json

    from ._messages import json_summary, summary_lines

    lines = [*summary_lines(summary, config, args.max_requests), *more]
    if args.json:
        if not args.quiet:  # -q --json: only the JSON (for schedulers that log both streams)
            for line in lines:
                print(line, file=sys.stderr)
        lines = [json.dumps(json_summary(summary, config), ensure_ascii=False)]
    lost = _write_stdout("".join(line + "\n" for line in lines))
    if lost is not None and not isinstance(lost, BrokenPipeError):
        _say(f"cannot write the summary to stdout ({lost.strerror or lost}); the report is {summary.report}")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bulk-enable: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


# --- the parser ----------------------------------------------------------------------------------------


class _ArgError(Exception):
    """A command line argparse cannot read; the message is one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (and a suggestion) instead of usage and a traceback-like dump."""

    def error(self, message: str) -> NoReturn:
        raise _ArgError(_one_line_error(self, message))


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


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _build_parser()
    _refuse_options_before_the_command(parser, argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparsers(parser).get(args.command, parser)
        unknown = extras[0]
        known = [o for action in sub._actions for o in action.option_strings]
        hint = _did_you_mean(unknown.split("=", 1)[0], known) if unknown.startswith("-") else ""
        what = "option" if unknown.startswith("-") else "argument"
        raise _ArgError(f"{sub.prog}: unknown {what} {unknown!r}{hint} (see {sub.prog} --help)")
    return args


def _refuse_options_before_the_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`bulk-enable --report x.csv run a.yaml`: say where the option goes, not "unknown command x.csv"."""
    commands = _subparsers(parser)
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
            raise _ArgError(f"bulk-enable: unknown option {name!r}{hint} (see bulk-enable --help)")
        if takers:
            example = (
                f"bulk-enable {takers[0]} {'CONFIG ' if takers[0] in ('run', 'check', 'status') else ''}"
            )
            raise _ArgError(f"bulk-enable: {name} goes after the command, e.g. {example}{name} ...")
        return


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


class _Version(argparse.Action):
    """--version, read from the installed package's metadata only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from . import __version__

        print(f"bulk-enable {__version__}")
        parser.exit()


def _build_parser() -> argparse.ArgumentParser:
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
    for add in (
        _run_parser,
        _check_parser,
        _status_parser,
        _counters_parser,
        _report_parser,
        _sandbox_parser,
        _demo_parser,
    ):
        add(sub)
    return parser


def _verbosity(p: argparse.ArgumentParser, top: bool = False) -> None:
    """-v/-q before or after the command: the top parser holds the defaults, commands only override."""
    keep = {} if top else {"default": argparse.SUPPRESS}
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


def _command(
    sub: Any, name: str, help: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
    # What a handler reads but this command has no option for: each default declared once, here.
    p.set_defaults(
        handler=handler,
        disable=False,
        fresh=False,
        preflight=False,
        retry_failed=False,
        json=False,
        max_requests=None,
    )
    _verbosity(p)
    return p


def _run_parser(sub: Any) -> None:
    p = _command(sub, "run", "enable the window on every counter in CONFIG", cmd_run)
    _job_options(p, Command.RUN)
    _pace_options(p, writes=True)
    p.add_argument(
        "--fresh",
        action="store_true",
        help="ignore the old report and send every counter (also replaces a file that is not a report)",
    )
    p.add_argument(
        "--preflight",
        action="store_true",
        help="read the plan first (a few requests), write only where needed",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the counters that failed for good in earlier runs (access_denied, not_found...), "
        "once fixed: reruns skip them otherwise",
    )
    p.add_argument("--dry-run", action="store_true", help="only make the plan: the same as `check`")


def _check_parser(sub: Any) -> None:
    p = _command(sub, "check", "read-only plan: what `run` would do, in a few requests", cmd_check)
    _job_options(p, Command.CHECK)
    _request_options(p)


def _status_parser(sub: Any) -> None:
    p = _command(
        sub, "status", "read each counter's real window state (one read each); never writes", cmd_status
    )
    _job_options(p, Command.STATUS)
    _pace_options(p, writes=False)


def _counters_parser(sub: Any) -> None:
    p = _command(sub, "counters", "print a ready-to-run YAML of the counters the token sees", cmd_counters)
    _api_options(p)
    _request_options(p)
    p.add_argument(
        "--permission",
        type=_permissions,
        metavar="LIST",
        help="keep counters with these permissions, e.g. edit or own,edit (only own and edit can be changed)",
    )
    p.add_argument("--ulogin", type=_login, metavar="LOGIN", help="list a client's counters (agency access)")


def _report_parser(sub: Any) -> None:
    p = _command(sub, "report", "render a report again from its journal: no request, no token", cmd_report)
    p.add_argument(
        "report", type=Path, metavar="REPORT", help="the report's path (its .journal is beside it)"
    )
    p.add_argument(
        "--as",
        dest="copy",
        type=Path,
        metavar="PATH",
        help="write it to another file instead, e.g. a workbook of a CSV run: --as reports/job.xlsx",
    )
    _delimiter_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="the outlook as one JSON object on stdout: per account done, failed, left, per_day, days_left",
    )


def _sandbox_parser(sub: Any) -> None:
    p = _command(
        sub,
        "sandbox",
        "run the local Metrica stand-in; it accepts the token `sandbox-token` (login `agency`) unless "
        "--token says otherwise",
        cmd_sandbox,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_count(0, 65535), default=0, help="0: a free port (printed first on stdout)"
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="YAML",
        help="a YAML file of sandbox settings (the options' names, with _)",
    )
    p.add_argument(
        "--token",
        action="append",
        metavar="TOKEN=LOGIN",
        help="a token it accepts (repeatable; default sandbox-token=agency)",
    )
    p.add_argument(
        "--dead-token", action="append", metavar="TOKEN", help="a token it refuses (invalid_token)"
    )
    p.add_argument("--counters", metavar="RANGES", help="the counters that exist, e.g. 1-300,12345678")
    p.add_argument(
        "--latency", type=_number(0, 60), metavar="SECONDS", help="added to every answer (default 0)"
    )
    p.add_argument(
        "--jitter", type=_number(0, 60), metavar="SECONDS", help="+- random on the latency (default 0)"
    )
    p.add_argument(
        "--fault-rate",
        type=_number(0, 1),
        metavar="SHARE",
        help="0..1 of requests get a transient fault",
    )
    p.add_argument(
        "--slow-seconds",
        type=_number(0, 600),
        metavar="SECONDS",
        help="how long a `slow` fault takes (default 5)",
    )
    p.add_argument(
        "--seed", type=int, help="for the fault decisions: the same seed, the same faults (default 0)"
    )
    p.add_argument(
        "--quota-status",
        type=int,
        choices=(420, 429),
        help="status of quota answers (default 429; docs: either)",
    )
    p.add_argument(
        "--bad-token-status",
        type=int,
        choices=(401, 403),
        help="status for a bad token (default 403; docs: either)",
    )
    p.add_argument(
        "--daily-limit",
        type=_count(0, 10**9),
        metavar="N",
        help="requests per login a day, reads and writes each (default 5000; 0: off)",
    )
    p.add_argument(
        "--ip-rps",
        type=_count(0, 10**6),
        metavar="N",
        help="requests per address a second (default 30; 0: off)",
    )
    p.add_argument(
        "--parallel-limit", type=_count(1, 1000), metavar="N", help="requests in flight per login (default 3)"
    )
    p.add_argument(
        "--page-cap", type=_count(1, 10**6), metavar="N", help="most counters per listing page (default 1000)"
    )
    p.add_argument(
        "--offline-options", action="store_true", help="add the undocumented offline_options to listings"
    )


def _demo_parser(sub: Any) -> None:
    p = _command(sub, "demo", "the main job against an embedded sandbox, no account needed", cmd_demo)
    p.add_argument("--config", type=Path, help="another job file (default: the packaged demo, 300 counters)")
    p.add_argument("--report", type=Path, metavar="PATH", help="default reports/demo.csv")
    p.add_argument("--fresh", action="store_true", help="start the demo over")
    _delimiter_option(p)


def _job_options(p: argparse.ArgumentParser, command: Command) -> None:
    p.add_argument(
        "config", type=Path, metavar="CONFIG", help="the counters: YAML, .txt (one ID a line) or .csv"
    )
    suffix = {Command.RUN: "", Command.CHECK: ".plan", Command.STATUS: ".status"}[command]
    p.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help=f"the report, .csv or .xlsx (default reports/<config name>{suffix}.csv)"
        + ("; a rerun with the same path resumes" if command is Command.RUN else ""),
    )
    _delimiter_option(p)
    p.add_argument(
        "--window",
        choices=[w.value for w in Window],
        default=Window.CALLS.value,
        help="which extended window (default calls)",
    )
    if command is not Command.STATUS:
        p.add_argument("--disable", action="store_true", help="switch the window off (DELETE)")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object on stdout at the end: command, config, counts, requests, elapsed_s, report, "
        "exit_code, stops, report_error, deferred_until",
    )
    _api_options(p)


def _delimiter_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--csv-delimiter",
        type=_delimiter,
        metavar="CHAR",
        help="the CSV report's separator: , (comma) or ';' (semicolon: Excel with a Russian locale) or "
        "tab; default: what the report already uses, else the CSV config's, else a comma",
    )


def _api_options(p: argparse.ArgumentParser) -> None:
    from_env = f"${TOKEN_ENV}"
    p.add_argument(
        "--api-base",
        default="https://api-metrika.yandex.net",
        metavar="URL",
        help="the API root only (default https://api-metrika.yandex.net); plain http only to loopback",
    )
    p.add_argument(
        "--token-file", type=Path, metavar="PATH", help=f"read the token from PATH instead of {from_env}"
    )


def _request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-attempts",
        type=_count(1, 100),
        default=DEFAULTS.max_attempts,
        metavar="N",
        help=f"tries of one request before it fails (one counter, or one listing page); quota answers do "
        f"not count (default {DEFAULTS.max_attempts})",
    )
    p.add_argument(
        "--timeout",
        type=_number(0.1, 600),
        default=DEFAULTS.timeout,
        metavar="SECONDS",
        help=f"per request (default {DEFAULTS.timeout:g})",
    )
    p.add_argument(
        "--backoff",
        type=_number(0, 30),
        default=DEFAULTS.backoff_initial,
        metavar="SECONDS",
        help=f"first retry wait, doubling with jitter up to {DEFAULTS.backoff_max:g} s "
        f"(default {DEFAULTS.backoff_initial:g})",
    )


def _pace_options(p: argparse.ArgumentParser, writes: bool) -> None:
    _request_options(p)
    p.add_argument(
        "--concurrency",
        type=_count(1, 10),
        default=DEFAULTS.concurrency,
        metavar="N",
        help=f"requests in flight per login (default and Metrica's cap: {METRICA_MAX_IN_FLIGHT})",
    )
    p.add_argument(
        "--rps",
        type=_number(0.1, 10000),
        default=DEFAULTS.rps,
        metavar="R",
        help=f"requests a second for the whole run (default {DEFAULT_RPS:g}; "
        f"Metrica: {METRICA_ADDRESS_RPS} per address)",
    )
    p.add_argument(
        "--max-requests",
        type=_count(1, 10**9),
        metavar="N",
        help="per login, the most requests to spend (per day with --until-done)",
    )
    if writes:
        p.add_argument(
            "--max-denied",
            type=_count(0, 10**6),
            default=DEFAULTS.max_denied,
            metavar="N",
            help="stop a login after N writes refused with access_denied and none succeeded "
            f"(default {DEFAULTS.max_denied}; 0: never)",
        )
    p.add_argument(
        "--until-done",
        action="store_true",
        help="on the daily quota, wait for the reset and go on, until every counter is "
        + ("done" if writes else "read"),
    )
    p.add_argument(
        "--quota-reset",
        type=_time_of_day,
        default=DEFAULTS.quota_reset,
        metavar="HH:MM",
        help="when the daily quota resets, UTC (default 00:00); 00:00+03:00 is Moscow midnight",
    )


# --- value checks: one line naming the accepted range ---------------------------------------------------


def _count(low: int, high: int) -> Callable[[str], int]:
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


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {text!r}")
        return value

    return parse


def _time_of_day(text: str) -> Any:
    """`21:00` (UTC), `3:00`, or with an offset, `00:00+03:00` (Moscow midnight): a UTC time of day."""
    import datetime as dt

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


def _delimiter(text: str) -> str:
    if text.strip().lower() not in DELIMITERS and text not in DELIMITERS:
        raise argparse.ArgumentTypeError(
            f"choose , (comma), ';' (semicolon) or tab, got {text!r} (quote the ; in the shell: "
            "--csv-delimiter ';')"
        )
    return text if text in DELIMITERS else text.strip().lower()


PERMISSIONS = ("own", "edit", "view", "analyst", "view_access_filter", "analyst_access_filter")


def _permissions(text: str) -> str:
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


def _login(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Yandex login (letters, digits, '.', '-', '_', '@')"
        )
    return text
