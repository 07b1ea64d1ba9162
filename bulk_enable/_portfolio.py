"""An agency's whole portfolio: every login its tokens reach, as one ready-to-run `accounts:` config;
and the plain listing of one login's counters (`counters`), as a config of its own.

Discovery (`counters --clients`) lists, for each token, the login's own counters and then, for every
login `GET /accounts` says it represents, that client's counters under `ulogin=`. It only ever reads:
`PUT /accounts` (which revokes access on Metrica) has no method in the client at all. A counter seen
under several logins is written once, under the first, with a comment naming the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from . import _messages as say
from ._answer import Answer, Verdict
from ._config import is_login
from ._errors import JobStopped
from ._interrupt import Interrupt
from ._metrica import CounterInfo, MetricaClient, open_session
from ._model import Stop, StopCause
from ._plan import read_listing
from ._policy import Policy
from ._scheduler import Lane, NotSent, Scheduler
from ._tokens import TokenSource
from ._untrusted import Scrubber


@dataclass
class FoundAccount:
    """One account of the portfolio: whose token, for which client login, which counters."""

    name: str
    source: TokenSource
    ulogin: str | None
    counters: list[CounterInfo] = field(default_factory=list)  # those kept, each under its first account
    also: dict[int, list[str]] = field(default_factory=dict)  # counter -> the other accounts that list it
    note: str = ""  # why the account has no counters


@dataclass
class Portfolio:
    """Everything discovery found, in the order it was found."""

    accounts: list[FoundAccount]
    permission: str  # the permissions kept, e.g. "own,edit"
    left_out: int = 0  # counters seen without a wanted permission
    odd_logins: list[str] = field(default_factory=list)  # `/accounts` entries that are not logins

    @property
    def counters(self) -> int:
        return sum(len(a.counters) for a in self.accounts)

    @property
    def shared(self) -> int:
        return sum(len(a.also) for a in self.accounts)


def counter_label(info: CounterInfo) -> str:
    """A listed counter's label in a config or a report: `name — site`."""
    return " — ".join(part for part in (info.name, info.site) if part)


def counter_item(info: CounterInfo) -> dict[str, object]:
    """A listed counter as a config's item: {id, label}, or {id} when the listing names nothing."""
    label = counter_label(info)
    return {"id": info.id, "label": label} if label else {"id": info.id}


# --- a wrong client login ------------------------------------------------------------------------------

_REFUSALS = frozenset({400, 403, 404})  # what a ulogin the token does not represent gets: the docs are silent


def refused(answer: Answer | None) -> bool:
    """An answer a wrong `ulogin` can get: refused for good (not transient, not the token)."""
    return (
        answer is not None
        and answer.verdict in (Verdict.DENIED, Verdict.FAILED)
        and answer.http_status in _REFUSALS
    )


def same_login(a: str, b: str) -> bool:
    """Yandex logins ignore case, and `.` and `-` in them are the same."""
    return a.lower().replace(".", "-") == b.lower().replace(".", "-")


async def ulogin_problem(
    scheduler: Scheduler, login: str, client: MetricaClient, ulogin: str
) -> Answer | None:
    """When `ulogin` is not among the logins the token represents (`GET /accounts`, asked with
    `client`, which has no ulogin, on `login`'s quotas): an answer saying so, with the close ones.
    None when it is among them, or when the list cannot be read: then nothing is claimed."""
    lane = scheduler.aside(f"accounts for {ulogin}", login)
    outcome = await scheduler.call(lane, "accounts", client.list_accounts)
    if isinstance(outcome, NotSent) or outcome.answer.verdict is not Verdict.DONE:
        return None
    if any(same_login(ulogin, represented) for represented in outcome.value):
        return None
    message = say.wrong_ulogin(ulogin, outcome.value)
    return Answer(Verdict.FAILED, outcome.answer.http_status, "wrong_ulogin", message)


def unique_sources(sources: Sequence[TokenSource]) -> tuple[list[TokenSource], list[str]]:
    """The sources with each token once (the first), and a line for each one dropped."""
    kept: dict[str, TokenSource] = {}
    dropped = []
    for source in sources:
        first = kept.setdefault(source.token, source)
        if first is not source:
            dropped.append(f"{source.shown} holds the same token as {first.shown}: listed once")
    return list(kept.values()), dropped


async def discover(
    api_base: str,
    sources: Sequence[TokenSource],
    permission: str | None,
    policy: Policy,
    interrupt: Interrupt | None = None,
) -> Portfolio:
    """List every token's own counters and every represented client's; only GET requests."""
    interrupt = interrupt or Interrupt()
    scheduler = Scheduler(policy, interrupt=interrupt)
    scrubber = Scrubber(s.token for s in sources)
    wanted = permission or "own,edit"
    portfolio = Portfolio([], wanted)
    sightings: dict[int, list[tuple[str, CounterInfo]]] = {}
    names: set[str] = set()
    async with open_session(policy.timeout, 4) as session:
        for index, source in enumerate(sources, start=1):
            lane = scheduler.lane(source.shown, f"login-{index}")

            def client(ulogin: str | None, token: str = source.token) -> MetricaClient:
                return MetricaClient(session, api_base, token, ulogin, scrubber)

            sightings_of = await _listed(scheduler, lane, client(None), source, None)
            own = FoundAccount(_unique(_login_of(sightings_of) or source.own_name, names), source, None)
            portfolio.accounts.append(own)
            _seen(sightings, own.name, sightings_of)
            outcome = await scheduler.call(lane, "accounts", client(None).list_accounts)
            if isinstance(outcome, NotSent):
                _stopped(outcome.stop, source, "the list of client logins")
            if outcome.answer.verdict is not Verdict.DONE:
                stop = scheduler.stop(lane, StopCause.LISTING, outcome.answer, "accounts")
                _stopped(stop, source, "the list of client logins")
            for login in outcome.value:
                if not is_login(login):
                    portfolio.odd_logins.append(login)
                    continue
                account = FoundAccount(_unique(login, names), source, login)
                portfolio.accounts.append(account)
                _seen(sightings, account.name, await _listed(scheduler, lane, client(login), source, login))
    _assign(portfolio, sightings)
    return portfolio


async def _listed(
    scheduler: Scheduler, lane: Lane, client: MetricaClient, source: TokenSource, ulogin: str | None
) -> list[CounterInfo]:
    listing = await read_listing(scheduler, lane, client)
    if listing.interrupted:
        raise KeyboardInterrupt
    if listing.stop is not None:
        _stopped(listing.stop, source, f"the counters of {ulogin}" if ulogin else "its own counters")
    return list(listing.counters.values())


def _stopped(stop: Stop | None, source: TokenSource, what: str) -> NoReturn:
    if stop is None:
        raise KeyboardInterrupt
    reason = say.terminal(say.stop_reason(stop))
    fix = say.fix_for(stop.cause, answer=stop.answer, again="try again")
    raise JobStopped(f"the token in {source.shown}: {what}: {reason}; nothing written; next: {fix}")


def _login_of(own_listing: list[CounterInfo]) -> str | None:
    """The token's login, as its own counters name their owner: the account's name whatever the token
    came from (a variable today, a file for cron tomorrow), so rediscovery keeps the report's accounts.
    None when the listing has no own counter, or owners that disagree."""
    owners = {info.owner.lower() for info in own_listing if info.permission == "own" and info.owner}
    login = owners.pop() if len(owners) == 1 else None
    return login if login is not None and is_login(login) else None


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def _seen(
    sightings: dict[int, list[tuple[str, CounterInfo]]], account: str, found: list[CounterInfo]
) -> None:
    for info in found:
        sightings.setdefault(info.id, []).append((account, info))


def _assign(portfolio: Portfolio, sightings: dict[int, list[tuple[str, CounterInfo]]]) -> None:
    """Each counter under its owner's account when the owner is among them (a client's own counter
    seen first as another client's guest still belongs to its owner's workbook), else under the first
    account where it has a wanted permission, in listing order."""
    by_name = {a.name: a for a in portfolio.accounts}
    login = {a.name: a.ulogin or a.name for a in portfolio.accounts}  # a client reached twice: one login
    for cid, seen in sightings.items():
        wanted = [(name, info) for name, info in seen if _wanted(info, portfolio.permission)]
        owned = [(name, info) for name, info in wanted if info.owner and same_login(login[name], info.owner)]
        kept = owned[0] if owned else (wanted[0] if wanted else None)
        if kept is None:
            portfolio.left_out += 1
            continue
        account = by_name[kept[0]]
        account.counters.append(kept[1])
        others = list(dict.fromkeys(login[name] for name, _ in seen if login[name] != login[kept[0]]))
        if others:
            account.also[cid] = others
    first_token_of: dict[str, FoundAccount] = {}
    for account in portfolio.accounts:
        if account.ulogin is not None:
            first_token_of.setdefault(account.ulogin, account)
    for account in portfolio.accounts:
        if account.counters:
            continue
        first = first_token_of.get(account.ulogin) if account.ulogin else None
        if first is not None and first is not account:
            account.note = (
                f"also reached with the token in {first.source.shown}: its counters are under {first.name}"
            )
        else:
            account.note = f"no counters with permission {portfolio.permission}"


def _wanted(info: CounterInfo, permission: str) -> bool:
    return not info.permission or info.permission in permission.split(",")  # not said: kept


def portfolio_yaml(portfolio: Portfolio, sources: int) -> str:
    """The portfolio as one ready-to-run `accounts:` config, with comments a person can follow."""
    now = dt.datetime.now(dt.UTC)
    kept = portfolio.permission
    runnable = [a for a in portfolio.accounts if a.counters]
    lines = [
        f"# {say.plural(len(runnable), 'account')}, {say.plural(portfolio.counters, 'counter')} "
        f"(permission {kept}) from {say.plural(sources, 'token')}, listed {now:%Y-%m-%d %H:%M} UTC",
        "# For counters added later, an account may say `counters: all` instead of its list.",
    ]
    if portfolio.left_out:
        lines.append(f"# left out: {say.plural(portfolio.left_out, 'counter')} without permission {kept}")
    if portfolio.odd_logins:
        shown = ", ".join(say.terminal(login) for login in portfolio.odd_logins[:5])
        lines.append(f"# left out: client logins that are not Yandex logins: {shown}")
    lines.append("accounts:")
    for account in portfolio.accounts:
        if not account.counters:
            lines.append(f"  # {say.terminal(account.name)}: {say.terminal(account.note)}")  # one line each
            continue
        key, where = account.source.reference
        lines += [f"  - name: {_scalar(account.name)}", f"    {key}: {_scalar(where)}"]
        if account.ulogin:
            lines.append(f"    ulogin: {_scalar(account.ulogin)}")
        lines.append("    counters:")
        for info in account.counters:
            item = f"      - {_flow(counter_item(info))}"
            others = account.also.get(info.id)
            lines.append(f"{item}  # also under {', '.join(others)}" if others else item)
    return "\n".join(lines) + "\n"


def _scalar(value: str) -> str:
    """One YAML scalar, quoted where YAML needs it."""
    return _flow([value])[1:-1]


def _flow(value: object) -> str:
    import yaml

    text: str = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, width=10**9, sort_keys=False
    )
    return text.strip()


def found_summary(portfolio: Portfolio) -> str:
    """One line for stderr: what discovery found."""
    clients = sum(1 for a in portfolio.accounts if a.ulogin is not None)
    shared = f", {say.plural(portfolio.shared, 'counter')} under several logins" if portfolio.shared else ""
    return (
        f"{say.plural(portfolio.counters, 'counter')} in "
        f"{say.plural(sum(1 for a in portfolio.accounts if a.counters), 'account')} "
        f"({say.plural(clients, 'client login')}){shared}"
    )


# --- a listing as a config -------------------------------------------------------------------


async def list_counters(
    api_base: str, token: str, ulogin: str | None, policy: Policy, interrupt: Interrupt | None = None
) -> tuple[list[CounterInfo], Stop | None]:
    """Every counter the token sees (acting for `ulogin`), or why the listing failed."""
    scheduler = Scheduler(policy, interrupt=interrupt)
    lane = scheduler.lane("default")
    async with open_session(policy.timeout, 4) as session:
        client = MetricaClient(session, api_base, token, ulogin, Scrubber([token]))
        listing = await read_listing(scheduler, lane, client)
        stop = listing.stop
        if stop is not None and ulogin is not None and refused(stop.answer):
            itself = MetricaClient(session, api_base, token, None, Scrubber([token]))
            problem = await ulogin_problem(scheduler, "default", itself, ulogin)
            stop = Stop(StopCause.WRONG_ULOGIN, problem, "ulogin") if problem is not None else stop
    if listing.interrupted:
        raise KeyboardInterrupt
    return list(listing.counters.values()), stop


def counters_yaml(
    counters: Sequence[CounterInfo], permission: str | None, ulogin: str | None
) -> tuple[str, int]:
    """A ready-to-run config of the listed counters: (YAML text, how many)."""
    import yaml

    wanted = set(permission.split(",")) if permission else None
    items: list[dict[str, object]] = []
    for info in counters:
        if wanted is not None and info.permission and info.permission not in wanted:
            continue
        items.append(counter_item(info))
    now = dt.datetime.now(dt.UTC)
    seen = say.plural(len(counters), "counter")
    kept = f"{len(items)} with permission {permission} of {seen}" if wanted is not None else seen
    header = f"# {kept} visible to this token, listed {now:%Y-%m-%d %H:%M} UTC\n"
    body: dict[str, object] = {"ulogin": ulogin} if ulogin else {}
    body["counters"] = items
    return header + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=200), len(items)
