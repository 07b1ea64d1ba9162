"""The command line: parse, validate, hand off to the jobs, print the summary, return the exit code.

Exit codes: 0 all done; 1 some counters failed; 2 bad input or usage (nothing sent); 3 stopped early
(dead token, quota, budget) with the rest deferred; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from ._config import DEFAULT_TOKEN_ENV, Config, ConfigError, load_config
from ._job import ListingError, Settings, Summary, check_job, counters_yaml, run_job
from ._metrica import DEFAULT_API_BASE, UnsafeApiBase, check_api_base
from ._report import Job, ReportError, default_report_path
from ._sandbox import Profile, ProfileError, serve
from ._scheduler import DEFAULT_RPS, METRICA_MAX_IN_FLIGHT, Policy

log = logging.getLogger("bulk_enable")
T = TypeVar("T")

EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input the user can fix; the message is the one line shown."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bulk-enable` and `python -m bulk_enable`."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, getattr(args, "quiet", False))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, ConfigError, ReportError, UnsafeApiBase, ProfileError) as e:
        print(f"bulk-enable: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ListingError as e:
        print(f"bulk-enable: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except KeyboardInterrupt:
        print("bulk-enable: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# --- subcommands -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_check(args)
    settings = _settings(args, plan=False)
    return _finish(asyncio.run(_with_progress(run_job(settings), settings.progress)))


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args, plan=True)
    return _finish(asyncio.run(check_job(settings)))


def cmd_counters(args: argparse.Namespace) -> int:
    api_base = check_api_base(args.api_base)
    token = _default_token(args.token_file)
    text, n = asyncio.run(counters_yaml(api_base, token, args.permission, args.timeout))
    sys.stdout.write(text)
    log.info("%d counters listed", n)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    profile = _profile(args)

    async def forever() -> None:
        async with serve(profile, args.host, args.port) as (_, url):
            print(url, flush=True)  # the first line of stdout: scripts read the URL from it
            log.info("sandbox: %s (stats at %s/_sandbox/stats); Ctrl-C stops it", url, url)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forever())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo  # only the demo needs its profile

    config = load_config(args.config)
    report = args.report or default_report_path(args.config, Job("calls", True))
    progress = not args.quiet and sys.stderr.isatty()
    summary, sandbox_line = asyncio.run(
        _with_progress(run_demo(config, report, args.fresh, progress), progress)
    )
    print(sandbox_line)
    return _finish(summary)


# --- helpers ---------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, plan: bool) -> Settings:
    """Validate everything before anything is sent."""
    api_base = check_api_base(args.api_base)
    config = load_config(args.config)
    job = Job(args.window, not args.disable)
    report = args.report or default_report_path(args.config, job, plan=plan)
    concurrency = getattr(args, "concurrency", METRICA_MAX_IN_FLIGHT)
    if concurrency > METRICA_MAX_IN_FLIGHT:
        log.warning(
            "--concurrency %d is above Metrica's %d parallel requests per login: expect quota "
            "answers and retries",
            concurrency,
            METRICA_MAX_IN_FLIGHT,
        )
    policy = Policy(
        concurrency=concurrency,
        rps=getattr(args, "rps", DEFAULT_RPS),
        max_attempts=getattr(args, "max_attempts", 6),
        max_requests=getattr(args, "max_requests", None),
        backoff_initial=getattr(args, "backoff", 0.5),
    )
    return Settings(
        config=config,
        tokens=_tokens(config, args.token_file),
        report=report,
        api_base=api_base,
        job=job,
        policy=policy,
        timeout=args.timeout,
        fresh=getattr(args, "fresh", False),
        preflight=getattr(args, "preflight", False),
        progress=not args.quiet and sys.stderr.isatty(),
    )


def _tokens(config: Config, token_file: Path | None) -> dict[str, str]:
    """Each account's token, from its environment variable (or the default token); never from YAML."""
    tokens: dict[str, str] = {}
    for account in config.accounts:
        if account.token_env is None:
            tokens[account.name] = _default_token(token_file)
            continue
        if token_file is not None:
            raise UsageError(
                "--token-file applies to a single-account config; with `accounts:` each "
                "account's token comes from its token_env"
            )
        token = os.environ.get(account.token_env, "").strip()
        if not token:
            raise UsageError(
                f"{config.path}: account `{account.name}`: environment variable "
                f"{account.token_env} (its token_env) is not set"
            )
        tokens[account.name] = _checked_token(token, account.token_env)
    return tokens


def _default_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UsageError(f"{token_file}: cannot read the token file ({e.strerror})") from None
        if not token:
            raise UsageError(f"{token_file}: the token file is empty")
        return _checked_token(token, str(token_file))
    token = os.environ.get(DEFAULT_TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"no token: set {DEFAULT_TOKEN_ENV} or pass --token-file PATH")
    return _checked_token(token, DEFAULT_TOKEN_ENV)


def _checked_token(token: str, source: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise UsageError(f"the token in {source} has spaces or control characters: is it pasted whole?")
    return token


def _profile(args: argparse.Namespace) -> Profile:
    profile = Profile.from_yaml(args.profile) if args.profile else Profile()
    overrides: dict[str, object] = {
        name: getattr(args, name)
        for name in (
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
        )
    }
    if args.token:
        pairs = [t.partition("=") for t in args.token]
        if any(not sep or not login for _, sep, login in pairs):
            raise UsageError("--token takes TOKEN=LOGIN")
        overrides["tokens"] = {token: login for token, _, login in pairs}
    if args.dead_token:
        overrides["dead_tokens"] = args.dead_token
    return profile.updated(overrides)


async def _with_progress(job: Awaitable[T], progress: bool) -> T:
    """Await `job` with log lines routed around the progress bar when there is one."""
    with logging_redirect_tqdm(loggers=[log]) if progress else contextlib.nullcontext():
        return await job


def _finish(summary: Summary) -> int:
    for line in summary.lines():
        print(line)
    return summary.exit_code


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bulk-enable: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


# --- the parser ------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _nonneg_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulk-enable",
        description="Enable Yandex Metrica's extended call tracking window on many counters, "
        "within the API quotas.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (stderr)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    def api(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--api-base",
            default=DEFAULT_API_BASE,
            metavar="URL",
            help=f"API root (default {DEFAULT_API_BASE}); plain http only to loopback",
        )
        p.add_argument(
            "--token-file",
            type=Path,
            metavar="PATH",
            help=f"read the token from PATH instead of ${DEFAULT_TOKEN_ENV}",
        )
        p.add_argument(
            "--timeout",
            type=_positive_float,
            default=30.0,
            metavar="SECONDS",
            help="per request (default 30)",
        )

    def job(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", type=Path, metavar="CONFIG", help="YAML list of counter IDs")
        p.add_argument(
            "--report",
            type=Path,
            metavar="PATH",
            help="CSV report (default reports/<config name>.csv); reruns resume from it",
        )
        p.add_argument(
            "--window",
            choices=("calls", "conversions"),
            default="calls",
            help="which extended window (default calls)",
        )
        p.add_argument("--disable", action="store_true", help="switch the window off (DELETE)")
        p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
        api(p)

    run = command("run", "enable the window on every counter in CONFIG")
    job(run)
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=METRICA_MAX_IN_FLIGHT,
        metavar="N",
        help="requests in flight per login (default and Metrica's cap: 3)",
    )
    run.add_argument(
        "--rps",
        type=_nonneg_float,
        default=DEFAULT_RPS,
        metavar="R",
        help=f"requests a second for the whole run (default {DEFAULT_RPS:g}; Metrica: 30 per address)",
    )
    run.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=6,
        metavar="N",
        help="requests per counter before it fails (default 6)",
    )
    run.add_argument(
        "--max-requests",
        type=_positive_int,
        metavar="N",
        help="per login, the most requests this run may spend (keep quota for other tools)",
    )
    run.add_argument(
        "--backoff",
        type=_nonneg_float,
        default=0.5,
        metavar="SECONDS",
        help="first retry wait, doubling with jitter (default 0.5)",
    )
    run.add_argument("--fresh", action="store_true", help="ignore the old report: send every counter")
    run.add_argument(
        "--preflight",
        action="store_true",
        help="read the plan first (a few requests), write only where needed",
    )
    run.add_argument("--dry-run", action="store_true", help="only make the plan: same as `check`")
    run.set_defaults(handler=cmd_run)

    check = command("check", "read-only plan: what `run` would do, in a few requests")
    job(check)
    check.set_defaults(handler=cmd_check)

    counters = command("counters", "print a ready-to-run YAML of the counters the token sees")
    api(counters)
    counters.add_argument(
        "--permission", metavar="LIST", help="keep counters with these permissions, e.g. edit or own,edit"
    )
    counters.set_defaults(handler=cmd_counters)

    sandbox = command("sandbox", "run the local Metrica stand-in")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    sandbox.add_argument("--profile", type=Path, metavar="YAML", help="settings file (see README)")
    sandbox.add_argument("--latency", type=_nonneg_float, metavar="SECONDS")
    sandbox.add_argument("--jitter", type=_nonneg_float, metavar="SECONDS")
    sandbox.add_argument("--fault-rate", type=_nonneg_float, metavar="SHARE", help="0..1")
    sandbox.add_argument("--slow-seconds", type=_nonneg_float, metavar="SECONDS")
    sandbox.add_argument("--seed", type=int)
    sandbox.add_argument("--quota-status", type=int, choices=(420, 429))
    sandbox.add_argument("--daily-limit", type=int, metavar="N", help="requests per login a day (0: off)")
    sandbox.add_argument("--ip-rps", type=int, metavar="N", help="requests per address a second (0: off)")
    sandbox.add_argument("--parallel-limit", type=int, metavar="N")
    sandbox.add_argument("--counters", metavar="FIRST-LAST", help="the counters that exist")
    sandbox.add_argument("--token", action="append", metavar="TOKEN=LOGIN")
    sandbox.add_argument("--dead-token", action="append", metavar="TOKEN")
    sandbox.set_defaults(handler=cmd_sandbox, quiet=False)

    demo = command("demo", "the main job against an embedded sandbox, no account needed")
    demo.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    demo.add_argument("--report", type=Path, metavar="PATH")
    demo.add_argument("--fresh", action="store_true")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=cmd_demo)
    return parser
