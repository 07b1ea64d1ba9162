"""A local stand-in for the Metrica Management API: the demo's, the tests' and the benchmarks' server.

It serves the subset this tool uses (the two window methods, one counter, the counter listing) with
the documented error bodies and quotas (per login: parallel requests and a daily count; per client
address: requests a second), and misbehaves on purpose when told to: latency, transient faults,
fixed per-counter answers. `GET /_sandbox/stats` says what it saw. Fault decisions hash the seed
with the request's path and its ordinal for that path, so a run is reproducible whatever the order
requests arrive in.

A fault answer never applies the change; a slow answer applies it only if the client still waits
(the handler is cancelled when the client hangs up), so "written twice" in the stats always means
the client really sent a second write after a first one had taken effect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

FIXED_BEHAVIOURS = (
    "access_denied",
    "not_found",
    "invalid_parameter",
    "counter_in_connect",
    "success_false",
    "already_enabled",
    "read_only",
)
FAULT_KINDS = ("backend_error", "timeout", "html_500", "drop", "slow")
_WINDOWS = {"calls_extended_threshold": "calls", "extended_threshold": "conversions"}
_FLAGS = {
    "calls": "offline_calls_extended_threshold",
    "conversions": "offline_conversion_extended_threshold",
}


class ProfileError(ValueError):
    """A sandbox profile that cannot be used; one line for the user."""


@dataclass
class Profile:
    """How the sandbox behaves. Every field can come from a YAML profile or a command-line option."""

    tokens: dict[str, str] = field(default_factory=lambda: {"sandbox-token": "agency"})  # token -> login
    dead_tokens: list[str] = field(default_factory=list)  # answered `invalid_token`
    dead_token_status: int = 403  # the docs say 403 or 401: both are handled by the client
    counters: list[int] | None = None  # None: every ID exists and is editable (the listing shows those seen)
    fixed: dict[int, str] = field(default_factory=dict)  # counter -> one of FIXED_BEHAVIOURS
    latency: float = 0.0  # seconds, each request
    jitter: float = 0.0  # +- seconds, uniform
    fault_rate: float = 0.0  # share of requests that get a transient fault
    faults: list[str] = field(default_factory=lambda: list(FAULT_KINDS))  # the mix to draw from
    slow_seconds: float = 5.0  # how long a "slow" fault takes: set it past the client's --timeout
    parallel_limit: int = 3  # per login
    ip_rps: int = 30  # per client address, sliding one-second window; 0: off
    daily_limit: int = 5000  # per login; 0: off
    counter_daily_limit: int = 0  # writes per counter a day; 0: off
    quota_status: int = 429  # the Russian docs say 429, the English 420
    retry_after: float | None = None  # a Retry-After header on quota answers (the real API shows none)
    offline_options: bool = True  # include the (unconfirmed) offline_options object in counter bodies
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path) -> Profile:
        """Read a profile; unknown keys and bad values are refused with one line."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ProfileError(f"{path}: cannot read the sandbox profile ({e})") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: a sandbox profile is a mapping of settings")
        return cls().updated(data, str(path))

    def updated(self, data: dict[str, Any], source: str = "options") -> Profile:
        """A copy with `data` applied (YAML or CLI values), checked."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"{source}: unknown sandbox setting(s): {', '.join(unknown)}")
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        merged.update({k: v for k, v in data.items() if v is not None})
        if isinstance(merged["counters"], str):
            first, _, last = merged["counters"].partition("-")
            merged["counters"] = list(range(int(first), int(last or first) + 1))
        merged["fixed"] = {int(k): str(v) for k, v in (merged["fixed"] or {}).items()}
        merged["tokens"] = {str(k): str(v) for k, v in (merged["tokens"] or {}).items()}
        profile = Profile(**merged)
        bad = {v for v in profile.fixed.values() if v not in FIXED_BEHAVIOURS}
        bad |= {f for f in profile.faults if f not in FAULT_KINDS}
        if bad:
            raise ProfileError(f"{source}: unknown behaviour(s): {', '.join(sorted(bad))}")
        if profile.quota_status not in (420, 429):
            raise ProfileError(f"{source}: quota_status must be 420 or 429")
        return profile


@dataclass
class Stats:
    """What the sandbox saw; served as JSON at /_sandbox/stats."""

    requests: int = 0
    write_requests: int = 0
    read_requests: int = 0
    writes: collections.Counter[int] = field(default_factory=collections.Counter)  # applied writes
    write_attempts: collections.Counter[int] = field(default_factory=collections.Counter)  # writes sent
    requests_by_login: collections.Counter[str] = field(default_factory=collections.Counter)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    peak_in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    quota_answers: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    methods: collections.Counter[str] = field(default_factory=collections.Counter)  # "POST calls", ...

    def as_json(self) -> dict[str, Any]:
        writes = self.writes
        return {
            "requests": self.requests,
            "write_requests": self.write_requests,
            "read_requests": self.read_requests,
            "writes": {str(k): v for k, v in writes.items()},
            "write_attempts": {str(k): v for k, v in self.write_attempts.items()},
            "counters_written": len(writes),
            "counters_written_twice": sum(1 for v in writes.values() if v > 1),
            "repeated_writes": sum(v - 1 for v in writes.values() if v > 1),
            "requests_by_login": dict(self.requests_by_login),
            "peak_in_flight": dict(self.peak_in_flight),
            "quota_answers": dict(self.quota_answers),
            "faults": dict(self.faults),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "methods": dict(self.methods),
        }


def error_body(status: int, error_type: str, message: str) -> dict[str, Any]:
    """The documented error shape."""
    return {
        "errors": [{"error_type": error_type, "message": message}],
        "code": status,
        "message": message,
    }


class Sandbox:
    """The server's state and handlers; `serve()` runs it on a loopback port."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.stats = Stats()
        self.enabled: dict[str, set[int]] = {"calls": set(), "conversions": set()}
        self.seen: set[int] = set(profile.counters or ())
        self.dead = set(profile.dead_tokens)
        self._daily: collections.Counter[str] = collections.Counter()
        self._counter_daily: collections.Counter[int] = collections.Counter()
        self._by_ip: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._ordinal: collections.Counter[str] = collections.Counter()
        for cid, behaviour in profile.fixed.items():
            self.seen.add(cid)
            if behaviour == "already_enabled":
                self.enabled["calls"].add(cid)
                self.enabled["conversions"].add(cid)

    def app(self) -> web.Application:
        app = web.Application()
        base = "/management/v1"
        app.router.add_route("POST", base + "/counter/{id}/offline_conversions/{method}", self.window)
        app.router.add_route("DELETE", base + "/counter/{id}/offline_conversions/{method}", self.window)
        app.router.add_get(base + "/counter/{id}", self.counter)
        app.router.add_get(base + "/counters", self.counters)
        app.router.add_get("/_sandbox/stats", self.stats_view)
        app.router.add_post("/_sandbox/reset-day", self.reset_day)
        app.router.add_post("/_sandbox/revoke", self.revoke)
        return app

    # --- the API -----------------------------------------------------------------------------

    async def window(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        window = _WINDOWS.get(method)
        self.stats.write_requests += 1
        if window is None:
            return _json(404, error_body(404, "not_found", f"unknown method {method}"))
        self.stats.methods[f"{request.method} {window}"] += 1
        cid = _counter_id(request)
        if cid is not None:
            self.stats.write_attempts[cid] += 1
        async with self._admitted(request, write=True) as refusal:
            if refusal is not None:
                return refusal
            if cid is None:
                return _json(400, error_body(400, "invalid_parameter", "counterId must be a number"))
            fault = await self._misbehave(request)
            if fault is not None:
                return fault
            fixed = self._fixed_answer(cid)
            if fixed is not None:
                return fixed
            limit = self.profile.counter_daily_limit
            if limit and self._counter_daily[cid] >= limit:
                return self._quota("quota_requests_by_counter_id", f"Quota exceeded for counter {cid}")
            self._counter_daily[cid] += 1
            if self.profile.fixed.get(cid) == "success_false":
                return _json(200, {"success": False})
            flags = self.enabled[window]
            (flags.add if request.method == "POST" else flags.discard)(cid)
            self.stats.writes[cid] += 1
            return _json(200, {"success": True})

    async def counter(self, request: web.Request) -> web.StreamResponse:
        self.stats.read_requests += 1
        async with self._admitted(request) as refusal:
            if refusal is not None:
                return refusal
            cid = _counter_id(request)
            fault = await self._misbehave(request)
            if fault is not None:
                return fault
            if cid is None or not self._visible(cid):
                return _json(404, error_body(404, "not_found", "Counter not found"))
            return _json(200, {"counter": self._describe(cid)})

    async def counters(self, request: web.Request) -> web.StreamResponse:
        self.stats.read_requests += 1
        async with self._admitted(request) as refusal:
            if refusal is not None:
                return refusal
            fault = await self._misbehave(request)
            if fault is not None:
                return fault
            try:
                per_page = min(int(request.query.get("per_page", "1000")), 10_000)
                offset = int(request.query.get("offset", "1"))
            except ValueError:
                return _json(400, error_body(400, "invalid_parameter", "per_page and offset are numbers"))
            if per_page < 1 or offset < 1:
                return _json(400, error_body(400, "invalid_parameter", "per_page and offset start at 1"))
            wanted = set(filter(None, request.query.get("permission", "").split(",")))
            described = (self._describe(c) for c in sorted(self.seen) if self._visible(c))
            rows = [d for d in described if not wanted or d["permission"] in wanted]
            return _json(200, {"rows": len(rows), "counters": rows[offset - 1 : offset - 1 + per_page]})

    # --- the sandbox's own endpoints -------------------------------------------------------------

    async def stats_view(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.stats.as_json())

    async def reset_day(self, request: web.Request) -> web.StreamResponse:
        """00:00 GMT, on demand: daily counts start again."""
        self._daily.clear()
        self._counter_daily.clear()
        return _json(200, {"success": True})

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """Kill a token mid-run: `POST /_sandbox/revoke?login=NAME` (never takes the token itself)."""
        login = request.query.get("login", "")
        self.dead |= {t for t, who in self.profile.tokens.items() if who == login}
        return _json(200, {"revoked": login})

    # --- machinery -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _admitted(
        self, request: web.Request, write: bool = False
    ) -> AsyncIterator[web.Response | None]:
        """Auth and quotas, in the order the real API is likely to apply them; yields a refusal or None."""
        self.stats.requests += 1
        header = request.headers.get("Authorization", "")
        token = header[6:] if header.startswith("OAuth ") else ""
        login = self.profile.tokens.get(token)
        if not token:
            yield self._count(_json(401, error_body(401, "unauthorized", "Authorization required")))
            return
        if login is None or token in self.dead:
            status = self.profile.dead_token_status
            # Echoes the token on purpose: the client must scrub what an API sends back.
            message = f"Invalid oauth_token {token}"
            yield self._count(_json(status, error_body(status, "invalid_token", message)))
            return
        self.stats.requests_by_login[login] += 1
        if self.profile.ip_rps and self._over_ip_rate(request.remote or "?"):
            yield self._quota("quota_requests_by_ip", "Quota for requests per second from one IP exceeded")
            return
        if self.profile.daily_limit and self._daily[login] >= self.profile.daily_limit:
            yield self._quota("quota_requests_by_uid", f"Daily quota of requests for user {login} exceeded")
            return
        self._daily[login] += 1
        if self.stats.in_flight[login] >= self.profile.parallel_limit:
            yield self._quota("quota_parallel_requests", "Quota for parallel requests exceeded")
            return
        self.stats.in_flight[login] += 1
        self.stats.peak_in_flight[login] = max(self.stats.peak_in_flight[login], self.stats.in_flight[login])
        try:
            yield None
        finally:
            self.stats.in_flight[login] -= 1

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
        return self._count(_json(status, error_body(status, error_type, message), headers))

    def _count(self, response: web.Response) -> web.Response:
        self.stats.statuses[response.status] += 1
        return response

    async def _misbehave(self, request: web.Request) -> web.StreamResponse | None:
        """Latency, then maybe a transient fault, both decided by (seed, path, ordinal)."""
        key = f"{request.method} {request.path}"
        self._ordinal[key] += 1
        rng = random.Random(f"{self.profile.seed}|{key}|{self._ordinal[key]}")
        delay = self.profile.latency + (rng.uniform(-1, 1) * self.profile.jitter)
        if delay > 0:
            await asyncio.sleep(delay)
        if not self.profile.faults or rng.random() >= self.profile.fault_rate:
            return None
        kind = rng.choice(self.profile.faults)
        self.stats.faults[kind] += 1
        if kind == "backend_error":
            return self._count(_json(503, error_body(503, "backend_error", "Internal backend error")))
        if kind == "timeout":
            return self._count(_json(504, error_body(504, "timeout", "Request timed out")))
        if kind == "html_500":
            self.stats.statuses[500] += 1
            return web.Response(
                status=500,
                text="<html><body><h1>500 Internal Server Error</h1></body></html>",
                content_type="text/html",
            )
        if kind == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # the connection is gone; nothing more to answer
        await asyncio.sleep(self.profile.slow_seconds)  # "slow": cancelled if the client gives up
        return None

    def _fixed_answer(self, cid: int) -> web.Response | None:
        behaviour = self.profile.fixed.get(cid)
        if behaviour in ("access_denied", "read_only"):
            return self._count(_json(403, error_body(403, "access_denied", "Access is denied")))
        if behaviour == "counter_in_connect":
            return self._count(_json(403, error_body(403, "counter_in_connect", "Counter is in Connect")))
        if behaviour == "not_found" or not self._visible(cid):
            return self._count(_json(404, error_body(404, "not_found", "Counter not found")))
        if behaviour == "invalid_parameter":
            return self._count(_json(400, error_body(400, "invalid_parameter", "Invalid parameter")))
        return None

    def _visible(self, cid: int) -> bool:
        if self.profile.fixed.get(cid) == "not_found":
            return False
        if self.profile.counters is None:
            self.seen.add(cid)
            return True
        return cid in self.seen

    def _describe(self, cid: int) -> dict[str, Any]:
        behaviour = self.profile.fixed.get(cid)
        body: dict[str, Any] = {
            "id": cid,
            "name": f"Counter {cid}",
            "site": f"site-{cid}.example",
            "permission": "view" if behaviour in ("access_denied", "read_only") else "edit",
            "status": "Active",
        }
        if self.profile.offline_options:
            body["offline_options"] = {_FLAGS[w]: cid in on for w, on in self.enabled.items()}
        return body


def _counter_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isdigit() else None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


@contextlib.asynccontextmanager
async def serve(
    profile: Profile, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[Sandbox, str]]:
    """Run a sandbox in this event loop; yields it and its base URL."""
    sandbox = Sandbox(profile)
    # handler_cancellation: a client that hangs up cancels its handler, as a real server stops work
    runner = web.AppRunner(sandbox.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    try:
        yield sandbox, f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()


class SandboxThread:
    """A sandbox on its own event loop in a background thread, for tests and benchmarks."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.url = ""
        self.sandbox: Sandbox | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> SandboxThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("sandbox did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the stats, taken on the sandbox's own loop."""
        assert self.sandbox is not None
        sandbox = self.sandbox
        future = asyncio.run_coroutine_threadsafe(_snapshot(sandbox), self._loop)
        return future.result(10)

    def call(self, fn: Any) -> Any:
        """Run `fn(sandbox)` on the sandbox's loop (reset the day, revoke a token, ...)."""

        async def run() -> Any:
            return fn(self.sandbox)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self.profile) as (sandbox, url):
            self.sandbox, self.url = sandbox, url
            self._ready.set()
            await self._stop.wait()


async def _snapshot(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.stats.as_json()
