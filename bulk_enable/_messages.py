"""Every word a user reads: report messages, stop reasons, the summary, next steps, exit codes.

The jobs, the scheduler and the client hand over plain data (statuses, stop causes, answers); this
module alone turns it into sentences, so the wording is consistent and found in one place.
"""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from ._answer import Answer, Blame
from ._model import (
    FAILED_STATUSES,
    Command,
    ExitCode,
    Job,
    Status,
    Stop,
    StopCause,
    Summary,
    Window,
    by_account,
    failed_for_good,
)
from ._outlook import AccountOutlook, days_left
from ._untrusted import PLAIN, TERMINAL_LIMIT

if TYPE_CHECKING:
    from ._config import Config

FULL_DAYS = 21  # the extended window's full length
LIST_FAILED_IDS = 10  # the summary names failed counters up to this many
KINDS_SHOWN = 4  # kinds of refusal a summary line names; a server can answer with any number of them


def repeats_line(config: Config) -> str | None:
    """The one warning for counters listed more than once (each runs once), or None."""
    dup = config.duplicates
    if not dup.count:
        return None
    cid, first, line = dup.examples[0]
    if dup.count == 1:
        return (
            f"{config.path}: line {line}: counter {cid} is listed again (first on line {first}): it runs once"
        )
    where = ", under the first account that lists it" if len(config.accounts) > 1 else ""
    return (
        f"{config.path}: {plural(dup.count, 'repeat')} of counters listed before (e.g. {cid} on lines "
        f"{first} and {line}): each counter runs once{where}"
    )


def results_elsewhere_line(usual: Path, done: int, report: Path) -> str:
    """A run into a new report while the job's usual one has `done` of its counters done."""
    return (
        f"{usual} already has {done} of these counters done; {report} starts from nothing and sends them "
        f"again (for those results in another file: bulk-enable report {usual} --as {report})"
    )


def other_job_line(report: Path, was: Job, now: Job) -> str:
    """A run into a report made for another job (the other window, or disabling)."""
    return (
        f"{report} was made to {job_words(was)}, this run will {job_words(now)}: earlier results are not "
        "reused"
    )


def number(n: int) -> str:
    """`1003`, `12 000`: digits grouped by a space from 10,000 on (read alike in English and Russian)."""
    return f"{n:,}".replace(",", " ") if n >= 10_000 else str(n)


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 counter`, `2 counters`, `12 000 counters`."""
    return f"{number(n)} {word if n == 1 else (many or word + 's')}"


def terminal(text: str) -> str:
    """A text (already cleaned) cut for one terminal line."""
    return PLAIN.clean(text, TERMINAL_LIMIT)


def job_words(job: Job) -> str:
    return f"{'enable' if job.enable else 'disable'} the {job.window.value} window"


# --- report messages -------------------------------------------------------------------------------

PENDING = "not sent yet"
INTERRUPTED = "interrupted before it was sent: run the same command again"


def answer_text(answer: Answer | None) -> str:
    if answer is None:
        return ""
    parts = [str(answer.http_status) if answer.http_status else "", answer.error_type]
    head = " ".join(p for p in parts if p)
    if answer.message and answer.message != answer.error_type:
        return f"{head}: {answer.message}" if head else answer.message
    return head


def stop_reason(stop: Stop, max_requests: int | None = None) -> str:
    """Why an account stopped, in one sentence (for the report's message and the summary)."""
    what = answer_text(stop.answer)
    match stop.cause:
        case StopCause.REFUSED:
            return f"the token was refused ({what})"
        case StopCause.DAILY_QUOTA:
            return f"the login's daily request quota is spent ({what})"
        case StopCause.BUDGET:
            budget = f" (--max-requests {max_requests})" if max_requests else ""
            return f"this run's request budget is spent{budget}"
        case StopCause.CANNOT_WRITE:
            return (
                "writes keep being refused with access_denied and none has succeeded: the token may "
                "have expired or lack metrika:write, or these counters are not editable by it"
            )
        case StopCause.SAME_FAILURE:
            times = plural(stop.alike, "time") if stop.alike else "again and again"
            if stop.answer is not None and stop.answer.blame is Blame.METHOD:
                return (
                    f"answers that blame the method itself, not the counters, came back {times} and "
                    f"nothing has succeeded ({what})"
                )
            return f"the same failure came back {times} and nothing has succeeded ({what})"
        case StopCause.UNREACHABLE:
            return f"cannot reach the API ({what})"
        case StopCause.NOT_THE_API:
            return f"this does not look like the Metrica API ({what})"
        case StopCause.LISTING:
            return f"the counter list could not be read ({what})"
        case StopCause.WRONG_ULOGIN:
            return what if stop.answer is None else stop.answer.message
        case StopCause.THROTTLED:
            return (
                f"Metrica refused this address's every request for a long while ({what}): another tool may "
                "be using all of its 30 requests a second"
            )
    return stop.cause.value  # pragma: no cover


def wrong_ulogin(ulogin: str, represented: list[str]) -> str:
    """A `ulogin` that is not among the logins the token represents, with the close ones."""
    import difflib

    if not represented:
        return f"client login {ulogin}: this token represents no client logins (use that client's own token)"
    # Client logins often share a prefix (client-...): only the very close ones, else the closest.
    close = difflib.get_close_matches(ulogin, represented, n=3, cutoff=0.8)
    close = close or difflib.get_close_matches(ulogin, represented, n=1, cutoff=0.6)
    if close:
        hint = (
            f": did you mean {' or '.join([', '.join(close[:-1]), close[-1]] if len(close) > 1 else close)}?"
        )
    else:
        more = ", ..." if len(represented) > 5 else ""
        hint = f" ({', '.join(represented[:5])}{more})"
    what = plural(len(represented), "client login")
    return f"client login {ulogin} is not among the {what} this token represents{hint}"


def deferred_message(stop: Stop | None, max_requests: int | None = None, attempts: int = 0) -> str:
    """Why a counter is not done: the account's stop, or an interruption (after some tries, maybe)."""
    if stop is None:
        if attempts:
            tried = plural(attempts, "try", "tries")
            return f"interrupted after {tried} that did not go through: run the same command again"
        return INTERRUPTED
    return f"not done: {stop_reason(stop, max_requests)}"


def gave_up_message(attempts: int, answer: Answer) -> str:
    return f"gave up after {plural(attempts, 'attempt')}: {answer_text(answer)}"


def kept_slowing_message(answer: Answer) -> str:
    return f"the API kept answering {answer.error_type or 'with quota answers'}: run the same command again"


def counter_quota_message(answer: Answer, reset: dt.datetime) -> str:
    return f"this counter's daily quota is spent ({answer_text(answer)}): run again after {clock(reset)}"


def clock(when: dt.datetime, now: dt.datetime | None = None) -> str:
    """`00:00 UTC`, with the date when it is not today's, and the machine's own time beside it when
    its zone is not UTC (`21:00 UTC, 00:00 local`): nobody in Moscow should have to add three hours."""
    now = now or dt.datetime.now(dt.UTC)
    shape = "%H:%M" if when.second == 0 else "%H:%M:%S"
    text = f"{when.strftime(shape)} UTC"
    if when.date() != now.date():
        text = f"{when:%Y-%m-%d} {text}"
    local = when.astimezone()
    if local.utcoffset() == dt.timedelta(0):
        return text
    day = "" if local.date() == when.date() else f"{local:%Y-%m-%d} "  # only a date the UTC part lacks
    return f"{text}, {day}{local.strftime(shape)} local"


def until(when: dt.datetime, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    seconds = max(0, int((when - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


# plan rows


def plan_not_found(ulogin: str | None) -> str:
    if ulogin:
        return f"not visible to this token acting for {ulogin}"
    return (
        "not visible to this token (a client's counter? give its login: `ulogin:` in YAML, a ulogin column "
        "in a CSV, or --ulogin LOGIN)"
    )


def plan_read_only(permission: str) -> str:
    return f"this token has `{permission}` access, not edit"


def plan_already(job: Job) -> str:
    return f"the listing shows the {job.window.value} window already {'on' if job.enable else 'off'}"


def plan_would(job: Job, state_shown: bool) -> str:
    verb = "enable" if job.enable else "disable"
    if state_shown:
        return f"the run will {verb} the {job.window.value} window"
    return (
        f"the listing does not show the window's state: the run will {verb} it (a repeat is very likely "
        "harmless); `bulk-enable status`, with the same config and options, reads the real state"
    )


# status rows


def window_message(status: Status, days: int, full_on: dt.date | None, window: Window = Window.CALLS) -> str:
    if status is Status.FULL:
        joined = "calls" if window is Window.CALLS else "offline conversions"
        return f"{joined} up to {FULL_DAYS} days old join visits"
    if status is Status.GROWING:
        return f"the window has grown to {days} days; it reaches {FULL_DAYS} on {full_on}"
    return (
        "the window is not extended, or was extended in the last day (it grows from the next day); "
        "enabling it again is very likely harmless"
    )


def refused_short_message(run_report: str, cause: str, message: str) -> str:
    """A `status` row's message for a short window the run could not extend: its report says why."""
    why = f"{cause}: {message}" if message and message != cause else cause
    return f"not extended: {run_report} has it as {why}; sending it again changes nothing until that is fixed"


FRESH_DAYS = 2  # a window enabled this many days ago may still read short: the next day, and a day's
# slack for time zones (the run's time is UTC, the window's day the counter's own)
STALE_DAYS = FRESH_DAYS + 1


def enabled_short_message(run_report: str, on: dt.date | None, days: int, already: bool = False) -> str:
    """A `status` row's message for a short window the run enabled (or found enabled) `days` ago:
    growing from the next day, or, days on, a change that did not take. `on` None: its date unreadable."""
    did = "found already enabled" if already else "enabled"
    when = f"on {on}" if on else "(its date unreadable)"
    if on is not None and days <= FRESH_DAYS:
        return f"{did} {when} ({run_report}): the window grows from the next day; check again in a few days"
    later = f" {days} days later" if on is not None else ""
    return f"{did} {when} ({run_report}), still not extended{later}: the change did not take"


def disabled_short_message(run_report: str, at: str) -> str:
    """A `status` row's message for a short window a later run disabled: what that run asked."""
    return f"disabled on {at[:10]} ({run_report}), after any run that enabled it: short is what it asked"


# --- the summary -----------------------------------------------------------------------------------


def exit_code(summary: Summary) -> ExitCode:
    """0 all done; 1 complete with failures; 3 stopped with work left (3 wins over 1); 130 interrupted.
    For a run, a counter that failed on faults is work left (a rerun sends it): 1 means complete."""
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    if summary.left or summary.stops or summary.report_error:
        return ExitCode.STOPPED
    failing = FAILED_STATUSES if summary.command is not Command.CHECK else frozenset()
    if summary.count(*failing, Status.FAILED):
        return ExitCode.FAILED
    return ExitCode.OK


def counts(summary: Summary) -> collections.Counter[str]:
    return collections.Counter(str(r.status) for r in summary.rows)


def summary_lines(summary: Summary, config: Path, max_requests: int | None = None) -> list[str]:
    """The closing lines, for a person."""
    tally = counts(summary)
    what = ", ".join(f"{n} {status}" for status, n in tally.most_common()) or "nothing to do"
    head = {Command.RUN: "done", Command.CHECK: "plan", Command.STATUS: "status"}[summary.command]
    out = [
        f"{head}: {what} ({plural(len(summary.rows), 'counter')}, "
        f"{plural(summary.requests, 'request')}, {summary.elapsed:.1f} s)"
    ]
    failed = [r for r in summary.rows if r.status is Status.FAILED]
    if failed:
        kinds = collections.Counter(r.error_type or "?" for r in failed)
        shown = kinds.most_common(KINDS_SHOWN)
        rest = kinds.total() - sum(n for _, n in shown)
        more = f", and {number(rest)} more of {plural(len(kinds) - len(shown), 'other kind')}" if rest else ""
        line = "failed: " + ", ".join(f"{n} {kind}" for kind, n in shown) + more
        if len(failed) <= LIST_FAILED_IDS:
            line += " (" + ", ".join(str(r.counter_id) for r in failed) + ")"
        out.append(line)
    if summary.retries:
        retries = plural(summary.retries, "retry", "retries")
        if summary.gave_up:
            out.append(f"{retries}; {number(summary.gave_up)} of the retried requests did not go through")
        else:
            out.append(f"{retries}, all recovered")
    if summary.address_quota_answers:
        rate = f"; the rate settled at {summary.rate:.1f} a second" if summary.rate else ""
        out.append(
            f"per-address quota: {plural(summary.address_quota_answers, 'answer')}{rate} "
            "(another tool may share this address)"
        )
    if summary.skipped:
        done = "were" if summary.skipped != 1 else "was"
        out.append(f"{plural(summary.skipped, 'counter')} {done} already done in this report: not sent again")
    if summary.listed is not None:
        out.append(_listed_line(summary.listed, summary.new))
    if summary.held:
        out.append(
            f"{plural(summary.held, 'counter')} failed for good in earlier runs: not sent again "
            "(--retry-failed sends them, once fixed: the client grants access, say)"
        )
    if summary.elsewhere:
        out.append(f"the report also keeps {plural(summary.elsewhere, 'counter')} from other configs")
    if summary.state_unknown:
        out.append(
            "the listing does not show whether the window is on: editable counters are planned "
            "`would_enable`; `bulk-enable status` (same config and options) reads the real state"
        )
    if summary.command is Command.STATUS:
        out.extend(_status_lines(summary))
    for account, stop in summary.stops.items():
        out.append(
            f"account {account} stopped after {plural(stop.requests, 'request')}: "
            f"{terminal(stop_reason(stop, max_requests))}"
        )
    if summary.report_error:
        out.append(f"stopped: {terminal(summary.report_error)}")
    if summary.command is Command.RUN:
        out.append(_complete_line(summary))
    out.append(report_line(summary))
    from ._next_steps import next_steps  # the advice, in its own module

    out.extend(next_steps(summary, config, max_requests))
    return out


def _listed_line(listed: int, new: list[int] | None) -> str:
    """What `counters: all` found: on a rerun, the new counters by ID."""
    found = f"counters: all listed {plural(listed, 'editable counter')}"
    if new is None:
        return found
    if not new:
        return f"{found}; none is new since the last run"
    ids = ", ".join(str(cid) for cid in new[:LIST_FAILED_IDS]) + (
        ", ..." if len(new) > LIST_FAILED_IDS else ""
    )
    return f"{found}; new since the last run: {plural(len(new), 'counter')} ({ids})"


def report_line(summary: Summary) -> str:
    """Where the report is; never names a file as the report when its last render failed."""
    if summary.report_written:
        return f"report: {summary.report}"
    if summary.command is Command.CHECK:  # a plan has no journal to render it from
        return f"report: not written ({summary.report} could not be written)"
    return (
        f"report: not written ({summary.report} could not be written); once it can be, "
        f"`bulk-enable report {summary.report}` writes it from its journal"
    )


def _complete_line(summary: Summary) -> str:
    """Whether the job is over: every counter done or failed for good (a rerun then sends nothing)."""
    if not summary.complete:
        return f"not complete: {plural(summary.left, 'counter')} left for a rerun"
    return complete_words(sum(1 for r in summary.rows if failed_for_good(r)))


def complete_words(failed: int) -> str:
    if not failed:
        return "complete: every counter is done; a rerun sends nothing"
    return (
        f"complete: every counter is done or failed for good ({number(failed)} failed); a rerun sends nothing"
    )


def outlook_lines(accounts: dict[str, AccountOutlook]) -> list[str]:
    """Per account: done, failed (by cause), left and the days left at the job's pace; then the whole."""
    out = []
    for name, account in accounts.items():
        parts = [f"{number(account.done)} done"]
        if account.failed:
            causes = ", ".join(f"{number(n)} {cause}" for cause, n in account.failed.most_common())
            parts.append(f"{number(account.failed.total())} failed ({causes})")
        parts.append(f"{number(account.left)} left")
        line = f"account {name}: {', '.join(parts)}"
        if account.left:
            pace, days = account.per_day, account.days_left
            line += (
                f"; about {plural(days, 'day')} more at {number(pace)} a day (its busiest day so far)"
                if pace and days
                else "; nothing answered yet to tell its pace"
            )
        out.append(line)
    left = sum(a.left for a in accounts.values())
    if not left:
        out.append(complete_words(sum(a.failed.total() for a in accounts.values())))
        return out
    days = days_left(accounts)
    more = f"; about {plural(days, 'day')} more at this pace" if days else ""
    out.append(f"not complete: {plural(left, 'counter')} left{more}")
    return out


def _status_lines(summary: Summary) -> list[str]:
    growing = [r for r in summary.rows if r.status is Status.GROWING and r.full_on]
    if not growing:
        return []
    last = max(r.full_on for r in growing)
    return [f"growing: {plural(len(growing), 'window')}; the last reaches {FULL_DAYS} days on {last}"]


AGAIN = "run the same command again"
AFTER_A_WRITE_FAILED = f"free some disk space (or fix the report's folder), then {AGAIN}"


QUOTE_LIMIT = 100  # characters of an answer quoted in a `next:` line


def fix_for(
    cause: StopCause, config: Path | str = "CONFIG", answer: Answer | None = None, again: str = AGAIN
) -> str:
    """What the user does about a stop that waiting cannot fix, as the rest of a `next:` line; the
    answer that caused it is quoted (short) where it tells what to look at; `again` says how to go on
    (for a command that is not a job)."""
    got = f'it answered "{PLAIN.clean(answer_text(answer), QUOTE_LIMIT)}"' if answer is not None else ""
    return {
        StopCause.REFUSED: (
            f"get a new OAuth token with metrika:read and metrika:write at oauth.yandex.ru, then {again}"
        ),
        StopCause.CANNOT_WRITE: (
            (f"{got}: " if got else "")
            + f"`bulk-enable check {config}` shows which counters the token can edit; if it can edit "
            f"them, get a token with metrika:write, then {again}"
        ),
        StopCause.SAME_FAILURE: (
            f"{got or 'the same answer came back'}: check the API root (--api-base), that Metrica still "
            f"has the method (docs/metrica-api.md), the token's scopes (metrika:read, metrika:write) and "
            f"the counters (`bulk-enable check {config}`), then {again}"
        ),
        StopCause.NOT_THE_API: (
            f"give --api-base as the API root only, e.g. https://api-metrika.yandex.net, then {again}"
            + (
                f" ({got}; if that is the API root, Metrica may have dropped the method: docs/metrica-api.md)"
                if got
                else ""
            )
        ),
        StopCause.UNREACHABLE: f"check --api-base and the network, then {again}",
        StopCause.LISTING: f"{again}; if the listing keeps failing, check the token",
        StopCause.THROTTLED: f"let the other tool on this address finish (or run from another), then {again}",
        StopCause.WRONG_ULOGIN: (
            f"correct the client login (`bulk-enable counters --clients` lists every login the token "
            f"reaches), then {again}"
        ),
    }.get(cause, again)


def json_summary(summary: Summary, config: Path) -> dict[str, object]:
    """The `--json` object; the keys are documented in the README."""
    return {
        "command": summary.command.value,
        "config": str(config),
        "counts": dict(counts(summary)),
        "requests": summary.requests,
        "elapsed_s": round(summary.elapsed, 3),
        "report": str(summary.report) if summary.report_written else None,
        "exit_code": int(exit_code(summary)),
        "error": None,  # an exit without a summary has its one line here instead
        "complete": summary.complete,
        "left": summary.left,
        "accounts": by_account(summary.rows),
        "stops": {account: stop.cause.value for account, stop in summary.stops.items()},
        "report_error": summary.report_error or None,
        "deferred_until": summary.deferred_until.isoformat().replace("+00:00", "Z")
        if summary.deferred_until
        else None,
    }
