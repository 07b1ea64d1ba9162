"""A local stand-in for the Metrica Management API: the demo's, the tests' and the benchmarks' server
(its settings: `_sandbox_profile`).

By default it models the *documented* API (docs/metrica-api.md), never a kinder one: listings of
CounterBrief items (`site2.site`, no `offline_options`), at most 1,000 counters a page whatever
`per_page` asks, counters of client logins reachable only with `ulogin=` and only for the logins a
token's login represents (`GET /accounts` lists them; a client's listing holds guest counters owned
by someone else, and one counter can be seen under several logins), 401 without a token, tokens
that can read but not write, the join-threshold reads, and the documented error bodies and quotas
(per login: 3 in flight and a daily count for reads and for writes; per address: requests a
second). `PUT /accounts` and `DELETE /account` (which revoke access on Metrica) are recorded and
refused. Where the documentation is silent (the quota status, a bad token's status, the shape of
the threshold date, `offline_options`, the answer to a `ulogin` the token does not represent), a
profile setting picks the answer and the tests run both.

Each request goes through a pipeline of aiohttp middlewares (count, authenticate, quotas, trouble),
so each handler is only API behaviour. It misbehaves on purpose when told to: latency, transient
faults, fixed per-counter answers. Fault decisions hash the seed with the request's path and its
ordinal for that path, so a run is reproducible whatever order requests arrive in. A fault never
applies the change, and a client that hangs up cancels its handler, so "written twice" in the stats
always means a real second write.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._sandbox_profile import (
    FOREIGN_ULOGIN,
    STRANGER,
    Profile,
)

_WRITES = {"calls_extended_threshold": "calls", "extended_threshold": "conversions"}
_READS = {"calls_visit_join_threshold": "calls", "visit_join_threshold": "conversions"}
_FLAGS = {
    "calls": "offline_calls_extended_threshold",
    "conversions": "offline_conversion_extended_threshold",
}
_BASE = "/management/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_KEY = web.RequestKey("token", str)
LOGIN_KEY = web.RequestKey("login", str)  # whose token it is
AS_LOGIN_KEY = web.RequestKey("as_login", str)  # whom it acts for: the ulogin, or itself


@dataclass
class Stats:
    """What the sandbox saw; served as JSON at /_sandbox/stats."""

    requests: int = 0
    write_requests: int = 0
    read_requests: int = 0
    writes: collections.Counter[int] = field(default_factory=collections.Counter)  # applied writes
    write_attempts: collections.Counter[int] = field(default_factory=collections.Counter)  # writes sent
    write_log: list[tuple[float, int]] = field(default_factory=list)  # (epoch seconds, counter) applied
    state_reads: collections.Counter[int] = field(default_factory=collections.Counter)
    requests_by_login: collections.Counter[str] = field(default_factory=collections.Counter)
    ulogins: collections.Counter[str] = field(default_factory=collections.Counter)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    peak_in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    in_flight_all: int = 0  # every login's together, as the address sees them
    peak_in_flight_all: int = 0
    quota_answers: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    methods: collections.Counter[str] = field(default_factory=collections.Counter)  # "POST calls", ...
    http_methods: collections.Counter[str] = field(default_factory=collections.Counter)  # "GET", "POST"...
    account_changes: list[str] = field(default_factory=list)  # "PUT /management/v1/accounts": refused

    def as_json(self) -> dict[str, Any]:
        writes = self.writes
        return {
            "requests": self.requests,
            "write_requests": self.write_requests,
            "read_requests": self.read_requests,
            "writes": {str(k): v for k, v in writes.items()},
            "write_attempts": {str(k): v for k, v in self.write_attempts.items()},
            "write_log": self.write_log,
            "state_reads": {str(k): v for k, v in self.state_reads.items()},
            "counters_written": len(writes),
            "counters_written_twice": sum(1 for v in writes.values() if v > 1),
            "repeated_writes": sum(v - 1 for v in writes.values() if v > 1),
            "requests_by_login": dict(self.requests_by_login),
            "ulogins": dict(self.ulogins),
            "peak_in_flight": dict(self.peak_in_flight),
            "peak_in_flight_all": self.peak_in_flight_all,
            "quota_answers": dict(self.quota_answers),
            "faults": dict(self.faults),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "methods": dict(self.methods),
            "http_methods": dict(self.http_methods),
            "account_changes": list(self.account_changes),
        }


def error_body(status: int, error_type: str, message: str) -> dict[str, Any]:
    """The documented error shape."""
    return {"errors": [{"error_type": error_type, "message": message}], "code": status, "message": message}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, error_type: str, message: str) -> web.Response:
    return _json(status, error_body(status, error_type, message))


class Sandbox:
    """The server's state, its middlewares and its handlers; `serve()` runs it on a loopback port."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.stats = Stats()
        self.shared = set(profile.counters)
        self.owned_by = {cid: login for login, ids in profile.clients.items() for cid in ids}
        self.guest_ids = {cid for given in profile.guests.values() for cid in given}
        # Logins that are someone's client: they see their own counters, never the shared ones.
        self.client_logins = set(profile.clients) | {c for cs in profile.represents.values() for c in cs}
        self.enabled: dict[str, dict[int, dt.date]] = {"calls": {}, "conversions": {}}
        self.dead = set(profile.dead_tokens)
        self._daily: collections.Counter[tuple[str, str]] = collections.Counter()
        self._counter_daily: collections.Counter[int] = collections.Counter()
        self._by_ip: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._ordinal: collections.Counter[str] = collections.Counter()
        today = _today()
        for cid, days in profile.enabled_days_ago.items():
            for flags in self.enabled.values():
                flags[cid] = today - dt.timedelta(days=days)
        for cid, behaviour in profile.fixed.items():
            if behaviour == "already_enabled":
                for flags in self.enabled.values():
                    flags.setdefault(cid, today - dt.timedelta(days=30))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count, self._authenticate, self._quotas, self._trouble])
        app.router.add_route("POST", _BASE + "/counter/{id}/offline_conversions/{method}", self.write)
        app.router.add_route("DELETE", _BASE + "/counter/{id}/offline_conversions/{method}", self.write)
        app.router.add_get(_BASE + "/counter/{id}/offline_conversions/{method}", self.read_state)
        app.router.add_get(_BASE + "/counter/{id}", self.counter)
        app.router.add_get(_BASE + "/counters", self.listing)
        app.router.add_get(_BASE + "/accounts", self.accounts)
        for method in ("PUT", "POST", "DELETE"):  # on Metrica these replace or revoke representatives
            app.router.add_route(method, _BASE + "/accounts", self.change_accounts)
            app.router.add_route(method, _BASE + "/account", self.change_accounts)
        app.router.add_get("/_sandbox/stats", self.stats_view)
        app.router.add_post("/_sandbox/reset-day", self.reset_day_view)
        app.router.add_post("/_sandbox/revoke", self.revoke_view)
        return app

    # --- controls (tests, benchmarks, /_sandbox/...) ------------------------------------------

    def reset_day(self) -> None:
        """The quota reset: daily counts start again."""
        self._daily.clear()
        self._counter_daily.clear()

    def revoke(self, login: str) -> None:
        """Kill every token of `login`, as a password change does."""
        self.dead |= {t for t, who in self.profile.tokens.items() if who == login}

    def grant_write(self, token: str) -> None:
        """A token that could only read gets `metrika:write` (a new token with the right scope)."""
        if token in self.profile.write_denied_tokens:
            self.profile.write_denied_tokens.remove(token)

    def set_latency(self, seconds: float) -> None:
        """Answers take `seconds` from now on: a test slows the API while it acts, then lets it run."""
        self.profile.latency = seconds

    def add_counter(self, cid: int, login: str | None = None) -> None:
        """A new counter appears: a client login's own (`login`), or one of the shared ones."""
        if login is None:
            self.profile.counters.append(cid)
            self.shared.add(cid)
            return
        self.profile.clients.setdefault(login, []).append(cid)
        self.owned_by[cid] = login
        self.client_logins.add(login)

    # --- the API: each handler is only API behaviour ------------------------------------------

    async def write(self, request: web.Request) -> web.StreamResponse:
        window = _WRITES.get(request.match_info["method"])
        cid = _counter_id(request)
        if window is not None and self.profile.method_failure:
            return _method_failure(self.profile.method_failure)
        if window is None:
            return _error(404, "not_found", "Unknown method")
        if cid is None:
            return _error(400, "invalid_parameter", "counterId must be a number")
        if request[TOKEN_KEY] in self.profile.write_denied_tokens:
            return _error(403, "access_denied", "Access is denied")
        refusal = self._fixed_answer(cid, request[AS_LOGIN_KEY])
        if refusal is not None:
            return refusal
        limit = self.profile.counter_daily_limit
        if limit and self._counter_daily[cid] >= limit:
            return self._quota("quota_requests_by_counter_id", f"Quota exceeded for counter {cid}")
        self._counter_daily[cid] += 1
        if self.profile.fixed.get(cid) == "success_false":
            return _json(200, {"success": False})
        flags = self.enabled[window]
        if request.method == "POST":
            flags.setdefault(cid, _today())  # enabling again does not restart the window
        else:
            flags.pop(cid, None)
        self.stats.writes[cid] += 1
        self.stats.write_log.append((time.time(), cid))
        return _json(200, {"success": True})

    async def read_state(self, request: web.Request) -> web.StreamResponse:
        window = _READS.get(request.match_info["method"])
        cid = _counter_id(request)
        if window is not None and self.profile.method_failure:
            return _method_failure(self.profile.method_failure)
        if window is None or cid is None:
            return _error(405 if window is None else 400, "invalid_parameter", "Unsupported request")
        self.stats.state_reads[cid] += 1
        if not self._visible(cid, request[AS_LOGIN_KEY]):
            return _error(404, "not_found", "Counter not found")
        if self.profile.fixed.get(cid) in ("access_denied", "read_only"):
            return _error(403, "access_denied", "Access is denied")
        today = _today()
        since = self.enabled[window].get(cid)
        days = 1 if since is None else min(max((today - since).days, 1), 21)  # 16 hours unless extended
        start = today - dt.timedelta(days=days)
        if self.profile.threshold_format == "datetime":
            return _json(200, {"date": f"{start.isoformat()}T00:00:00+03:00"})
        return _json(200, {"date": start.isoformat()})

    async def counter(self, request: web.Request) -> web.StreamResponse:
        cid = _counter_id(request)
        if cid is None or not self._visible(cid, request[AS_LOGIN_KEY]):
            return _error(404, "not_found", "Counter not found")
        return _json(200, {"counter": self._describe(cid, request[AS_LOGIN_KEY])})

    async def listing(self, request: web.Request) -> web.StreamResponse:
        try:
            per_page = int(request.query.get("per_page", "1000"))
            offset = int(request.query.get("offset", "1"))
        except ValueError:
            return _error(400, "invalid_parameter", "per_page and offset are numbers")
        if per_page < 1 or offset < 1:
            return _error(400, "invalid_parameter", "per_page and offset start at 1")
        login = request[AS_LOGIN_KEY]
        wanted = set(filter(None, request.query.get("permission", "").split(",")))
        ids = self._ids_of(login)
        if wanted:
            ids = [c for c in ids if self._permission(c, login) in wanted]
        page = ids[offset - 1 : offset - 1 + min(per_page, self.profile.page_cap)]
        return _json(200, {"rows": len(ids), "counters": [self._describe(c, login) for c in page]})

    async def accounts(self, request: web.Request) -> web.StreamResponse:
        """The logins the acting login represents, in the documented shape."""
        logins = self.profile.represents.get(request[AS_LOGIN_KEY], [])
        return _json(200, {"accounts": [{"user_login": u, "created_at": _CREATED} for u in logins]})

    async def change_accounts(self, request: web.Request) -> web.StreamResponse:
        """Recorded and refused: on Metrica a PUT replaces the list and revokes every login left out."""
        self.stats.account_changes.append(f"{request.method} {request.path}")
        return _error(403, "access_denied", "The sandbox never changes representatives")

    # --- the sandbox's own endpoints -----------------------------------------------------------

    async def stats_view(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.stats.as_json())

    async def reset_day_view(self, request: web.Request) -> web.StreamResponse:
        self.reset_day()
        return _json(200, {"success": True})

    async def revoke_view(self, request: web.Request) -> web.StreamResponse:
        """`POST /_sandbox/revoke?login=NAME` (never takes the token itself)."""
        login = request.query.get("login", "")
        self.revoke(login)
        return _json(200, {"revoked": login})

    # --- the pipeline ---------------------------------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        stats = self.stats
        stats.requests += 1
        stats.http_methods[request.method] += 1
        method = request.match_info.get("method", "")
        if method in _WRITES and request.method in ("POST", "DELETE"):
            stats.write_requests += 1
            stats.methods[f"{request.method} {_WRITES[method]}"] += 1
            cid = _counter_id(request)
            if cid is not None:
                stats.write_attempts[cid] += 1
        else:
            stats.read_requests += 1
        response = await handler(request)
        stats.statuses[response.status] += 1
        return response

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[6:] if header.startswith("OAuth ") else ""
        if not token:
            return _error(401, "unauthorized", "Authorization required")
        login = self.profile.tokens.get(token)
        if login is None or token in self.dead:
            status = self.profile.bad_token_status
            # Echoes the token on purpose: the client must scrub what an API sends back.
            return _error(status, "invalid_token", f"Invalid oauth_token {token}")
        ulogin = request.query.get("ulogin")
        if ulogin is not None:
            self.stats.ulogins[ulogin] += 1
            if ulogin != login and ulogin not in self.profile.represents.get(login, []):
                kind = self.profile.foreign_ulogin
                return _error(FOREIGN_ULOGIN[kind], kind, f"No access to the user {ulogin}")
        request[TOKEN_KEY], request[LOGIN_KEY], request[AS_LOGIN_KEY] = token, login, ulogin or login
        self.stats.requests_by_login[login] += 1
        return await handler(request)

    @web.middleware
    async def _quotas(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        login = request[LOGIN_KEY]
        if self.profile.ip_rps and self._over_ip_rate(request.remote or "?"):
            return self._quota("quota_requests_by_ip", "Quota for requests per second from one IP exceeded")
        group = "write" if request.method in ("POST", "DELETE") else "read"
        if self.profile.daily_limit and self._daily[(login, group)] >= self.profile.daily_limit:
            return self._quota("quota_requests_by_uid", f"Daily quota of requests for user {login} exceeded")
        self._daily[(login, group)] += 1
        if self.stats.in_flight[login] >= self.profile.parallel_limit:
            return self._quota("quota_parallel_requests", "Quota for parallel requests exceeded")
        stats = self.stats
        stats.in_flight[login] += 1
        stats.in_flight_all += 1
        stats.peak_in_flight[login] = max(stats.peak_in_flight[login], stats.in_flight[login])
        stats.peak_in_flight_all = max(stats.peak_in_flight_all, stats.in_flight_all)
        try:
            return await handler(request)
        finally:
            stats.in_flight[login] -= 1
            stats.in_flight_all -= 1

    @web.middleware
    async def _trouble(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Latency, then maybe a transient fault, both decided by (seed, path, ordinal)."""
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        key = f"{request.method} {request.path}"
        self._ordinal[key] += 1
        rng = random.Random(f"{self.profile.seed}|{key}|{self._ordinal[key]}")
        delay = self.profile.latency + (rng.uniform(-1, 1) * self.profile.jitter)
        if delay > 0:
            await asyncio.sleep(delay)
        if not self.profile.faults or rng.random() >= self.profile.fault_rate:
            return await handler(request)
        kind = rng.choice(self.profile.faults)
        self.stats.faults[kind] += 1
        if kind == "backend_error":
            return _error(503, "backend_error", "Internal backend error")
        if kind == "timeout":
            return _error(504, "timeout", "Request timed out")
        if kind == "html_500":
            html = "<html><body><h1>500 Internal Server Error</h1></body></html>"
            return web.Response(status=500, text=html, content_type="text/html")
        if kind == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # the connection is gone; nothing more to answer
        await asyncio.sleep(self.profile.slow_seconds)  # "slow": cancelled if the client gives up
        return await handler(request)

    # --- the model ------------------------------------------------------------------------------

    def _over_ip_rate(self, address: str) -> bool:
        now = time.monotonic()
        window = self._by_ip[address]
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.profile.ip_rps:
            return True
        window.append(now)
        return False

    def _quota(self, error_type: str, message: str) -> web.Response:
        self.stats.quota_answers[error_type] += 1
        status = self.profile.quota_status
        headers = {} if self.profile.retry_after is None else {"Retry-After": f"{self.profile.retry_after:g}"}
        return _json(status, error_body(status, error_type, message), headers)

    def _fixed_answer(self, cid: int, login: str) -> web.Response | None:
        behaviour = self.profile.fixed.get(cid)
        if not self._visible(cid, login):
            if cid in self.owned_by or cid in self.guest_ids:
                return _error(403, "access_denied", "Access is denied")  # a client's counter without ulogin
            return _error(404, "not_found", "Counter not found")
        if self._permission(cid, login) not in ("own", "edit"):  # fixed access_denied, or a guest's view
            return _error(403, "access_denied", "Access is denied")
        if behaviour == "counter_in_connect":
            return _error(403, "counter_in_connect", "Counter is in Connect")
        if behaviour == "invalid_parameter":
            return _error(400, "invalid_parameter", "Invalid parameter")
        return None

    def _ids_of(self, login: str) -> list[int]:
        """The login's own counters (a client's, or the shared ones), then its guest counters."""
        own = self.profile.clients.get(login, []) if login in self.client_logins else self.profile.counters
        known = set(own)
        guest = [c for c in self.profile.guests.get(login, {}) if c not in known]
        return [c for c in [*own, *guest] if self.profile.fixed.get(c) != "not_found"]

    def _visible(self, cid: int, login: str) -> bool:
        if self.profile.fixed.get(cid) == "not_found":
            return False
        if cid in self.profile.guests.get(login, {}):
            return True
        owner = self.owned_by.get(cid)
        if owner is not None:
            return owner == login
        return cid in self.shared and login not in self.client_logins

    def _permission(self, cid: int, login: str) -> str:
        if self.profile.fixed.get(cid) in ("access_denied", "read_only"):
            return "view"
        if self.owned_by.get(cid) == login:
            return "own"
        return self.profile.guests.get(login, {}).get(cid, "edit")

    def _owner(self, cid: int) -> str:
        owner = self.owned_by.get(cid)
        if owner is not None:
            return owner
        if cid in self.shared:
            return next(iter(self.profile.tokens.values()), "agency")
        return STRANGER

    def _describe(self, cid: int, login: str) -> dict[str, Any]:
        """A CounterBrief, as the documented listing gives it."""
        body: dict[str, Any] = {
            "id": cid,
            "name": f"Counter {cid}",
            "site2": {"site": f"site-{cid}.example"},
            "permission": self._permission(cid, login),
            "status": "Active",
            "owner_login": self._owner(cid),
        }
        if self.profile.offline_options:
            body["offline_options"] = {_FLAGS[w]: cid in on for w, on in self.enabled.items()}
        return body


_CREATED = "2024-03-01T09:00:00Z"  # when each representative was added (the shape is what matters)


def _method_failure(mode: str) -> web.Response:
    """The answer of a threshold method that is gone or broken, the same for every counter."""
    if mode == "gone":
        return _error(404, "not_found", "Not found")
    if mode == "http_405":
        return _error(405, "invalid_parameter", "Method not allowed")
    if mode == "invalid_parameter":
        return _error(400, "invalid_parameter", "Invalid parameter")
    if mode == "empty_200":
        return _json(200, {})
    status = 501 if mode == "html_501" else 200
    page = f"<html><body><h1>{'501 Not Implemented' if status == 501 else 'Welcome'}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _counter_id(request: web.Request) -> int | None:
    raw = request.match_info.get("id", "")
    return int(raw) if raw.isdigit() and len(raw) < 20 else None


@contextlib.asynccontextmanager
async def serve(
    profile: Profile, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[Sandbox, str]]:
    """Run a sandbox in this event loop; yields it and its base URL."""
    sandbox = Sandbox(profile)
    # handler_cancellation: a client that hangs up cancels its handler, as a real server stops work
    runner = web.AppRunner(sandbox.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        # Listening on every address (0.0.0.0, ::): the URL to print is one a client here can use.
        reachable = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        shown = f"[{reachable}]" if ":" in reachable else reachable
        yield sandbox, f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()


async def serve_forever(
    profile: Profile, host: str, port: int, ready: Callable[[str, dict[str, str]], None]
) -> None:
    """`bulk-enable sandbox`: serve until interrupted; `ready(url, tokens)` once listening."""
    async with serve(profile, host, port) as (_, url):
        ready(url, profile.tokens)
        await asyncio.Event().wait()


class SandboxThread:
    """A sandbox on its own event loop in a background thread, for tests and benchmarks."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.url = ""
        self._sandbox: Sandbox | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> SandboxThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"sandbox did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the stats, taken on the sandbox's own loop."""
        stats: dict[str, Any] = self._on_loop(lambda box: box.stats.as_json())
        return stats

    def reset_day(self) -> None:
        """The daily quota resets now."""
        self._on_loop(lambda box: box.reset_day())

    def reset_day_at(self, when: float) -> None:
        """The daily quota resets at `when` (epoch seconds), on the sandbox's own clock."""

        def schedule(box: Sandbox) -> None:
            self._loop.call_later(max(0.0, when - time.time()), box.reset_day)

        self._on_loop(schedule)

    def revoke(self, login: str) -> None:
        """Every token of `login` is dead from now on."""
        self._on_loop(lambda box: box.revoke(login))

    def grant_write(self, token: str) -> None:
        """`token` may write from now on."""
        self._on_loop(lambda box: box.grant_write(token))

    def set_latency(self, seconds: float) -> None:
        """Answers take `seconds` from now on."""
        self._on_loop(lambda box: box.set_latency(seconds))

    def add_counter(self, cid: int, login: str | None = None) -> None:
        """Counter `cid` exists from now on (a client login's own, or a shared one)."""
        self._on_loop(lambda box: box.add_counter(cid, login))

    def _on_loop(self, fn: Callable[[Sandbox], Any]) -> Any:
        sandbox = self._sandbox
        assert sandbox is not None, "the sandbox is not running"

        async def run() -> Any:
            return fn(sandbox)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by __enter__
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self.profile) as (sandbox, url):
            self._sandbox, self.url = sandbox, url
            self._ready.set()
            await self._stop.wait()
