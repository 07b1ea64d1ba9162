"""The command line: parse, hand off to the jobs, print the summary, return the exit code.

The pieces it stands on, one concept each: `_options` (every option, declared once), `_parser` (the
argparse tree and its one-line errors), `_tokens`, `_streams` (stdout and stderr, hardened) and
`_signals`. Only light modules load at start-up; each command imports what it needs, so
`bulk-enable --help` answers at once. A `UserError` becomes its lines and its exit code; anything
else is a bug and crashes with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import JobStopped, UsageError, UserError
from ._model import Command, ExitCode, Job, Row, Window
from ._options import DELIMITERS, policy_from
from ._parser import parse
from ._policy import METRICA_ADDRESS_RPS, METRICA_MAX_IN_FLIGHT
from ._signals import ended_like_ctrl_c
from ._streams import fail, quiet_stdout, say, standard_streams, tell, write_json, write_stdout

if TYPE_CHECKING:
    from ._config import Config
    from ._interrupt import Interrupt
    from ._jobs import JobEvents, Settings
    from ._model import Summary

log = logging.getLogger("bulk_enable")
T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bulk-enable` and `python -m bulk_enable` (see `_entry`), and of in-process tests."""
    argv = sys.argv[1:] if argv is None else argv
    standard_streams()
    command = None
    with ended_like_ctrl_c():
        try:
            args = parse(argv)
            command = args.command
            _setup_logging(args.verbose, args.quiet)
            return HANDLERS[command](args)
        except UserError as e:
            return fail(argv, e.exit_code, e.lines, command)
        except KeyboardInterrupt:
            return fail(argv, ExitCode.INTERRUPTED, ["interrupted"], command)
        except BrokenPipeError:
            quiet_stdout()
            # `bulk-enable counters | head -1` has what it wanted: a quiet end. A job whose output went
            # away mid-run did not finish: never exit 0 for it (a scheduler reruns until 0).
            return ExitCode.OK if command == "counters" else ExitCode.STOPPED


# --- commands ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_check(args)
    from ._jobs import run_job

    return _execute(args, _settings(args, Command.RUN), run_job, Command.RUN)


def cmd_check(args: argparse.Namespace) -> int:
    from ._jobs import check_job

    return _execute(args, _settings(args, Command.CHECK), check_job, Command.CHECK)


def cmd_status(args: argparse.Namespace) -> int:
    from ._jobs import status_job

    return _execute(args, _settings(args, Command.STATUS), status_job, Command.STATUS)


def cmd_counters(args: argparse.Namespace) -> int:
    from ._interrupt import Interrupt
    from ._messages import fix_for, plural, stop_reason, terminal
    from ._portfolio import counters_yaml, list_counters
    from ._tokens import token_sources

    api_base = _api_base(args.api_base)
    if args.clients:
        return _counters_of_clients(args, api_base)
    sources = token_sources(args.token_env, args.token_file)
    if len(sources) > 1:
        raise UsageError("several tokens go with --clients (one config for all of them)")
    token = sources[0].token
    interrupt = Interrupt()
    policy = policy_from(vars(args), args.command)
    found, stop = _run_async(list_counters(api_base, token, args.ulogin, policy, interrupt), interrupt)
    if stop is not None:
        fix = fix_for(stop.cause, answer=stop.answer, again="try again")
        raise JobStopped(f"{terminal(stop_reason(stop))}; next: {fix}")
    text, n = counters_yaml(found, args.permission, args.ulogin)
    lost = write_stdout(text)
    if lost is not None and not isinstance(lost, BrokenPipeError):  # `| head`: the reader has its part
        raise JobStopped(f"cannot write the listing to stdout ({lost.strerror or lost})")  # not done
    clients = "" if args.ulogin else "; the counters of client logins you represent: add --clients"
    log.info("%s listed%s", plural(n, "counter"), clients)
    return ExitCode.OK


def _counters_of_clients(args: argparse.Namespace, api_base: str) -> int:
    """`counters --clients`: one `accounts:` config of every login the tokens reach."""
    from ._interrupt import Interrupt
    from ._portfolio import discover, found_summary, portfolio_yaml, unique_sources
    from ._tokens import token_sources

    if args.ulogin:
        raise UsageError("--clients lists every client login the token represents: drop --ulogin")
    sources, dropped = unique_sources(token_sources(args.token_env, args.token_file))
    for line in dropped:
        log.warning("%s", line)
    interrupt = Interrupt()
    policy = policy_from(vars(args), args.command)
    portfolio = _run_async(discover(api_base, sources, args.permission, policy, interrupt), interrupt)
    lost = write_stdout(portfolio_yaml(portfolio, len(sources)))
    if lost is not None and not isinstance(lost, BrokenPipeError):
        raise JobStopped(f"cannot write the config to stdout ({lost.strerror or lost})")
    log.info("%s listed", found_summary(portfolio))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from ._report import DELIMITER_OF_SUFFIX, check_suffix, render_again, render_copy

    if args.by_account is not None:
        return _report_by_account(args)
    if args.lang is not None or args.tz is not None:
        raise UsageError("--lang and --tz go with --by-account FOLDER (workbooks to hand each client)")
    if args.copy is None:
        if args.csv_delimiter is not None:
            raise UsageError(
                "--csv-delimiter goes with --as (a copy); the report keeps its own separator, which "
                "reruns use too"
            )
        rows = render_again(args.report)
        _outlook(args, rows, f"report: {args.report} ({len(rows)} counters, rendered from its journal)")
        return ExitCode.OK
    check_suffix(args.copy, "--as", "the copy")
    given = DELIMITERS[args.csv_delimiter] if args.csv_delimiter is not None else None
    rows = render_copy(args.report, args.copy, DELIMITER_OF_SUFFIX.get(args.copy.suffix.lower(), given))
    tell(f"report: {args.copy} ({len(rows)} counters, from the journal of {args.report}, which reruns use)")
    return ExitCode.OK


def _outlook(args: argparse.Namespace, rows: list[Row], head: str) -> None:
    """After `report`: per account, done, failed (by cause) and left, with the days left at the job's
    pace; or, with --json, the same as one object on stdout (the words on stderr, unless -q)."""
    from ._messages import outlook_lines
    from ._outlook import json_outlook, outlook
    from ._report import journal_header, journal_path

    header = journal_header(journal_path(args.report))
    command = header.command if header is not None else Command.RUN
    accounts = outlook(rows, command)
    lines = [head, *outlook_lines(accounts)]
    if not args.json:
        tell("\n".join(lines))
        return
    if not args.quiet:
        for line in lines:
            print(line, file=sys.stderr)
    write_json(json_outlook(args.report, command, accounts))


def _report_by_account(args: argparse.Namespace) -> int:
    """`report REPORT --by-account FOLDER`: a workbook per account, in the words and zone asked."""
    from ._workbook import look, write_by_account

    if args.copy is not None or args.csv_delimiter is not None:
        raise UsageError("--by-account writes a workbook per account: drop --as and --csv-delimiter")
    written = write_by_account(args.report, args.by_account, look(args.lang, args.tz))
    for path, rows in written:
        tell(f"report: {path} ({rows} counters)")
    return ExitCode.OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ._sandbox_command import serve_sandbox

    return serve_sandbox(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from ._config import load_config
    from ._demo import demo_config_path, demo_notes, run_demo
    from ._messages import exit_code
    from ._next_steps import excel_tip
    from ._report import default_report_path, report_delimiter

    config_path = args.config or demo_config_path()
    config = load_config(config_path)
    # Your own file gets its own report (reports/NAME.demo.csv), not rows mixed into the demo's.
    named = Path("demo.yaml") if args.config is None else args.config.with_suffix(".demo.yaml")
    report = args.report or default_report_path(named, Job(), Command.RUN)
    delimiter = report_delimiter(_delimiter(args), report, config.csv_delimiter)
    tip = excel_tip(report, delimiter, _delimiter(args) is not None, kept=False)
    interrupt, events = _interrupt_and_events(args)
    summary, sandbox_line = _run_async(
        run_demo(config, report, args.fresh, events, interrupt, delimiter), interrupt, events
    )
    _finish(args, summary, config_path, sandbox_line, *demo_notes(summary, args.config is None), *tip)
    return exit_code(summary)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check": cmd_check,
    "status": cmd_status,
    "counters": cmd_counters,
    "report": cmd_report,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
}


# --- from arguments to settings ----------------------------------------------------------------------


def _settings(args: argparse.Namespace, command: Command) -> Settings:
    """Validate everything before anything is sent."""
    from ._config import load_config
    from ._job_files import preferences, report_for, runs_of
    from ._jobs import Settings
    from ._messages import other_job_line, results_elsewhere_line
    from ._report import done_elsewhere, journal_header, journal_path, report_delimiter
    from ._tokens import account_tokens

    api_base = _api_base(args.api_base)
    config = load_config(args.config)
    if args.ulogin:
        from ._config import with_ulogin

        config = with_ulogin(config, args.ulogin)
    job = Job(Window(args.window), not args.disable)
    report, usual = report_for(config, job, command, args.report, args.fresh)
    _warn_about(args, config)
    if command is Command.RUN and not args.fresh:
        header = journal_header(journal_path(report))
        if header is None:
            if done := done_elsewhere(usual, config.counters, job, report):
                log.warning("%s", results_elsewhere_line(usual, done, report))
        elif header.command is Command.RUN and header.job != job:
            log.warning("%s", other_job_line(report, header.job, job))
    # status reads a short window in the light of what the job's runs did
    enabling, disabling = runs_of(config.path, job.window) if command is Command.STATUS else (None, None)
    interrupt, events = _interrupt_and_events(args)
    return Settings(
        config=config,
        tokens=account_tokens(config, args.token_file),
        report=report,
        api_base=api_base,
        job=job,
        policy=policy_from(vars(args), args.command),
        delimiter=report_delimiter(
            _delimiter(args), report, config.csv_delimiter, preferences(args.config).delimiter
        ),
        fresh=args.fresh,
        preflight=args.preflight,
        retry_failed=args.retry_failed,
        enabling=enabling,
        disabling=disabling,
        events=events,
        interrupt=interrupt,
    )


def _api_base(given: str) -> str:
    """The checked API root; a near miss of Metrica's host is said, and the run goes on as given."""
    from ._metrica import UnsafeApiBase, check_api_base, mistyped_host

    try:
        api_base = check_api_base(given)
    except UnsafeApiBase as e:
        raise UsageError(f"--api-base {e}") from None
    near = mistyped_host(api_base)
    if near:
        log.warning("--api-base %s: did you mean https://%s? (going on as given)", api_base, near)
    return api_base


def _delimiter(args: argparse.Namespace) -> str | None:
    return DELIMITERS[args.csv_delimiter] if args.csv_delimiter is not None else None


def _warn_about(args: argparse.Namespace, config: Config) -> None:
    from ._messages import repeats_line

    if (args.concurrency or 0) > METRICA_MAX_IN_FLIGHT:
        log.warning(
            "--concurrency %d is above Metrica's %d parallel requests per login: expect quota answers "
            "(the run lowers it again by itself)",
            args.concurrency,
            METRICA_MAX_IN_FLIGHT,
        )
    if (args.rps or 0) > METRICA_ADDRESS_RPS:
        log.warning(
            "--rps %g is above Metrica's %d requests a second per address: expect quota answers "
            "(the run slows down by itself)",
            args.rps,
            METRICA_ADDRESS_RPS,
        )
    if args.report is not None and args.report.suffix.lower() == ".xlsx" and args.csv_delimiter is not None:
        log.warning("--csv-delimiter applies to CSV reports; %s is a workbook", args.report)
    repeats = repeats_line(config)
    if repeats:
        log.warning("%s", repeats)


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
    from ._job_files import JobLock, preferences, remember
    from ._messages import exit_code
    from ._next_steps import excel_tip

    chosen = _delimiter(args) is not None or preferences(args.config).delimiter is not None
    tip = excel_tip(settings.report, settings.delimiter, chosen)
    with JobLock(args.config, command, settings.job, settings.report):
        remember(args.config, _delimiter(args), args.report)
        summary = _run_async(job(settings), settings.interrupt, settings.events)
    _finish(args, summary, args.config, *tip)
    return exit_code(summary)


def _run_async(work: Coroutine[Any, Any, T], interrupt: Interrupt, events: JobEvents | None = None) -> T:
    """Run `work` with Ctrl-C, SIGTERM and SIGHUP wired to `interrupt` (and the progress shown)."""
    import asyncio

    from ._progress import showing
    from ._signals import job_signals

    async def wired() -> T:
        with job_signals(interrupt):
            async with showing(events):
                return await work

    return asyncio.run(wired())


def _finish(args: argparse.Namespace, summary: Summary, config: Path, *more: str) -> None:
    """The summary (and `more` lines) on stdout, or the JSON with the words on stderr. A stdout that
    cannot take it (closed, full) costs one line on stderr, never the exit code: the job is done and
    the report has every row."""
    from ._messages import json_summary, report_line, summary_lines

    lines = [*summary_lines(summary, config, args.max_requests), *more]
    if args.json:
        if not args.quiet:  # -q --json: only the JSON (for schedulers that log both streams)
            for line in lines:
                print(line, file=sys.stderr)
        lost = write_json(json_summary(summary, config))
    else:
        lost = write_stdout("".join(line + "\n" for line in lines))
    if lost is not None and not isinstance(lost, BrokenPipeError):
        say(f"cannot write the summary to stdout ({lost.strerror or lost}); {report_line(summary)}")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bulk-enable: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
