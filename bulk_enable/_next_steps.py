"""What to do next: the `next:` lines a summary ends with, one per cause, in the config's own words;
and the `tip:` a new CSV report gets about Excel's separator.

A stop names its fix (`fix_for`); failures for good name the fix of each kind of refusal (from the
Metrica client's table, `_api_errors`); `status` tells the `short` windows apart by what the job's
runs did; a run the daily quota stopped says when it resets and how many days the job needs.
"""

from __future__ import annotations

import collections
import dataclasses
import shlex
from pathlib import Path

from ._api_errors import what_fixes
from ._messages import (
    AFTER_A_WRITE_FAILED,
    AGAIN,
    FRESH_DAYS,
    KINDS_SHOWN,
    STALE_DAYS,
    clock,
    fix_for,
    plural,
    until,
)
from ._model import Command, Row, Status, Stop, StopCause, Summary, failed_for_good
from ._outlook import days_left, outlook
from ._report import journal_header, journal_path


def excel_tip(report: Path, delimiter: str, chosen: bool, kept: bool = True) -> list[str]:
    """The `tip:` for a new CSV report with the comma no one chose: Excel with Russian (and most
    European) regional settings splits on `;`, and shows a comma-separated file as one column. Its
    other way, a workbook made from the journal, sends nothing. `kept`: a separator given now sticks
    to the config's other commands."""
    new = journal_header(journal_path(report)) is None
    if chosen or not new or delimiter != "," or report.suffix.lower() != ".csv":
        return []
    once = "once (this config's commands keep it)" if kept else "next time"
    workbook = shlex.join(["bulk-enable", "report", str(report), "--as", str(report.with_suffix(".xlsx"))])
    return [
        f"tip: {report} is comma-separated; Excel with Russian regional settings wants `;`: add "
        f"--csv-delimiter ';' {once}, or make a workbook of it: `{workbook}`"
    ]


def next_steps(summary: Summary, config: Path, max_requests: int | None) -> list[str]:
    """The `next:` lines a summary ends with: what to do, one line per cause; none when all is done."""
    again = AGAIN
    if summary.interrupted:
        return [f"next: interrupted; {again} to finish the rest"]
    if summary.report_error:
        return [
            f"next: {AFTER_A_WRITE_FAILED}: the journal keeps what it recorded before the failure (the few "
            "counters done after it are sent again, harmlessly)"
        ]
    first: dict[StopCause, Stop] = {}  # cause -> the first account's stop for it
    for stop in summary.stops.values():
        first.setdefault(stop.cause, stop)
    causes = set(first)
    waitable = {StopCause.DAILY_QUOTA, StopCause.BUDGET}
    steps = [
        f"next: {fix_for(cause, config, first[cause].answer)}"
        for cause in StopCause
        if cause in causes - waitable
    ]
    if causes & waitable or summary.deferred_until:
        reset = summary.deferred_until
        when = f" after the quota reset at {clock(reset)} (in {until(reset)})" if reset else ""
        if StopCause.BUDGET in causes and StopCause.DAILY_QUOTA not in causes:
            budget = f"another {plural(max_requests, 'request')}" if max_requests else "more requests"
            steps.append(f"next: {again} to spend {budget}")
        else:
            wait = (
                ", or add --until-done to let it wait by itself"
                if summary.command is not Command.CHECK
                else ""
            )
            steps.append(f"next: {again}{when}{wait}{_pace(summary)}")
    if steps:
        return steps
    if summary.count(Status.DEFERRED):
        return [f"next: {again} to finish the rest"]
    failed = [r for r in summary.rows if r.status is Status.FAILED]
    if summary.command is not Command.CHECK and failed:
        return [_after_failures(failed, summary.report, summary.command, config)]
    if summary.count(Status.READ_ONLY, Status.NOT_FOUND):
        retry = f"; {_ONCE_FIXED}" if summary.command is Command.RUN else ""
        stuck = [r for r in summary.rows if r.status in (Status.READ_ONLY, Status.NOT_FOUND)]
        if {r.account for r in stuck} <= summary.acting:  # their client logins are given already
            kinds = [r.status.value for r in stuck]
            fixes = _fixes(kinds, config)
            return [f"next: {_names(kinds)} counters cannot be changed with this token: {fixes}{retry}"]
        plain = config.suffix.lower() in (".csv", ".txt", ".tsv")
        how = "add a ulogin column or pass --ulogin LOGIN" if plain else "add `ulogin:` to the config"
        return [
            "next: read_only and not_found counters cannot be changed with this token; "
            f"for a client's counters {how}{retry}"
        ]
    if summary.command is Command.STATUS and summary.count(Status.SHORT):
        return _after_short(summary, config)
    return []


def _after_short(summary: Summary, config: Path) -> list[str]:
    """`status` found short windows: those its run could not extend need a fix in Metrica first; the
    others are normal on the day of the run, and sent again days later."""
    short = [r for r in summary.rows if r.status is Status.SHORT]
    refused = [r for r in short if r.final]
    steps = []
    if refused:
        types = [r.error_type for r in refused]
        them = "it" if len(refused) == 1 else "them"
        steps.append(
            f"next: {plural(len(refused), 'short counter')} the run could not change ({_names(types)}): "
            f"fix {them} first ({_fixes(types, config)}) or drop {them} from the config; once fixed, run "
            "with --retry-failed"
        )
    rest = [r for r in short if not r.final and r.counter_id not in summary.disabled_by_run]
    ago = summary.enabled_days_ago
    if ago is None:  # no run journal to tell when, or whether, the run enabled them
        return steps + _send_again(summary, config, rest, "the other short" if refused else "those")
    fresh = [r for r in rest if ago.get(r.counter_id, STALE_DAYS) <= FRESH_DAYS]
    if fresh:
        steps.append(
            f"next: {plural(len(fresh), 'short counter')} the run enabled in the last {FRESH_DAYS} days: "
            "normal, the window grows from the next day: check again in a few days"
        )
    stale = [r for r in rest if ago.get(r.counter_id, 0) >= STALE_DAYS]
    lead = f"{plural(len(stale), 'short counter')} the run enabled {STALE_DAYS} or more days ago did not take"
    steps.extend(_send_again(summary, config, stale, "those", lead))
    unsent = [r for r in rest if r.counter_id not in ago]
    if unsent:
        steps.append(
            f"next: {plural(len(unsent), 'short counter')} the run has not enabled yet: "
            f"`{shlex.join(['bulk-enable', 'run', str(config)])}` sends them"
        )
    return steps


def _send_again(summary: Summary, config: Path, short: list[Row], those: str, lead: str = "") -> list[str]:
    """The next step for short counters to enable again (a rerun of the job skips them: its report has
    them done). `lead` says which they are; without it, both readings of `short` are given."""
    accounts = {r.account for r in short}
    if not accounts:
        return []
    if accounts <= summary.bare:
        again = f"save {those} IDs as short.txt and `bulk-enable run short.txt`"
    elif config.suffix.lower() == ".txt":  # a plain list run with --ulogin (or a token of its own)
        again = f"save {those} IDs as short.txt and run it with the same --ulogin and token"
    else:
        again = (
            f"run a copy of {config.name} that keeps only {those} counters with their accounts' "
            "ulogin and token (a bare ID of a client's counter fails)"
        )
    if lead:
        return [f"next: {lead}: {again}"]
    normal = "next: `short` on the day of `run` is normal: check again in a few days"
    return [f"{normal}; `short` days later: {again}"]


_ONCE_FIXED = "reruns do not send them: once fixed, add --retry-failed"


def _kinds(error_types: list[str]) -> tuple[list[str], str]:
    """The kinds of refusal among some rows, the most common first, at most KINDS_SHOWN; and the words
    for the rest."""
    counted = collections.Counter(t or "?" for t in error_types)
    kinds = sorted(counted, key=lambda k: (-counted[k], k))
    rest = len(kinds) - KINDS_SHOWN
    more = f" ({plural(rest, 'more kind')} in the report's error_type column)" if rest > 0 else ""
    return kinds[:KINDS_SHOWN], more


def _names(error_types: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`: the kinds of refusal among some rows."""
    kinds, more = _kinds(error_types)
    return " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds) + more


def _fixes(error_types: list[str], config: Path | None = None) -> str:
    """What fixes each kind of refusal: the fix alone for one kind, `kind: fix; ...` for several; a
    client login in the words of `config`'s form."""
    plain = config is not None and config.suffix.lower() in (".csv", ".txt", ".tsv")
    ulogin = "a ulogin column or --ulogin" if plain else "`ulogin:`"
    kinds, _ = _kinds(error_types)
    if len(kinds) == 1:
        return what_fixes(kinds[0], ulogin)
    return "; ".join(f"{kind}: {what_fixes(kind, ulogin)}" for kind in kinds)


def _after_failures(failed: list[Row], report: Path, command: Command, config: Path) -> str:
    fixed = [r.error_type for r in failed if failed_for_good(r)]
    retried = [r for r in failed if not failed_for_good(r)]
    parts = []
    if fixed:
        parts.append(
            f"{_names(fixed)} will fail again until fixed ({_fixes(fixed, config)})"
            + (f", so {_ONCE_FIXED}" if command is Command.RUN else "")
        )
    if retried:
        parts.append(f"{AGAIN} to retry the {'others' if fixed else 'failed ones'}")
    return f"next: {'; '.join(parts)}; details in the `message` column of {report}"


def _pace(summary: Summary) -> str:
    """For a run the daily quota cut short: the days the job needs at its pace (as `report` says), per
    login rather than per account: a login's client accounts share its daily quota."""
    if summary.command is not Command.RUN:
        return ""
    logins = summary.logins
    by_login = [dataclasses.replace(r, account=logins.get(r.account, r.account)) for r in summary.rows]
    days = days_left(outlook(by_login, summary.command))
    if not days:
        return ""
    report = shlex.join(["bulk-enable", "report", str(summary.report)])
    return f"; at this pace the job needs {plural(days, 'more day')} (`{report}`)"
