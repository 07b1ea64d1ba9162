"""The Metrica Management API, as far as this tool uses it: one HTTP request in, one typed reply out.

No retries and no scheduling here: the client only says what an answer *means* for a bulk run
(`Verdict`, and whom a failure blames: `Blame`), following the error table in docs/metrica-api.md.
Every reply is `(Answer, value)`.
Answers are read with a size cap and never followed through a redirect; every text taken from
them passes through the run's `Scrubber` (tokens removed, escaped, capped).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ._answer import Answer, Blame, Verdict
from ._api_errors import BY_ERROR_TYPE
from ._errors import UserError
from ._model import DEFAULT_API_BASE, MAX_ID, Window
from ._untrusted import PLAIN, TERMINAL_LIMIT, Scrubber

KNOWN_HOSTS = ("api-metrika.yandex.net", "api-metrica.yandex.net")

WINDOW_PATHS = {Window.CALLS: "calls_extended_threshold", Window.CONVERSIONS: "extended_threshold"}
STATE_PATHS = {Window.CALLS: "calls_visit_join_threshold", Window.CONVERSIONS: "visit_join_threshold"}
# `offline_options` flag of each window, where a listing carries it (undocumented: never required)
WINDOW_FLAGS = {
    Window.CALLS: "offline_calls_extended_threshold",
    Window.CONVERSIONS: "offline_conversion_extended_threshold",
}
LIST_PAGE_SIZE = 10_000  # asked for; the API may return fewer (1,000 by default): paging follows what came
WRITE_ANSWER_LIMIT = 64 * 1024  # a write or state answer is a few bytes; an error page a few KB
LISTING_ANSWER_LIMIT = 32 * 1024 * 1024  # 10,000 counters with every field: a few MB
ACCOUNTS_ANSWER_LIMIT = 4 * 1024 * 1024  # 10,000 represented logins: under 1 MB
MAX_ACCOUNTS = 10_000  # represented logins an answer may list (agencies have dozens, not thousands)
LOGIN_LIMIT = 100  # characters of a login taken from an answer (Yandex logins are far shorter)
RETRY_AFTER_LIMIT = 24 * 3600.0  # seconds; the scheduler caps it much lower
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")

_QUOTA_STATUSES = frozenset({420, 429})
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# Statuses about the method, not the counter: not allowed, gone, not implemented.
_METHOD_STATUSES = frozenset({405, 410, 501})
# What a web server that is not the API answers for a path it does not serve.
_ROUTING_STATUSES = _METHOD_STATUSES | {404}
_ERROR_TYPE_LIMIT = 64
_USERINFO = re.compile(r"[^/?#@]*@")  # what a URL can carry before its host: a user name, a password


class UnsafeApiBase(UserError):
    """An API root the token must not be sent to, or that is not an API root; one line for the user."""


def check_api_base(url: str) -> str:
    """The API root without a trailing slash; refuse anything that is not exactly a safe root. The
    message is a predicate of the URL given: the caller names where it came from (`--api-base`)."""
    shown = PLAIN.clean(_USERINFO.sub("***@", url), TERMINAL_LIMIT)  # never echo a password
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise UnsafeApiBase(f"{shown!r} has spaces in it: give it as {DEFAULT_API_BASE}")
    if PLAIN.clean(url, len(url)) != url:  # would reach a message raw, through the root below
        raise UnsafeApiBase(f"{shown!r} has control characters: give it as {DEFAULT_API_BASE}")
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # would silently become the scheme's default port
            raise ValueError("port 0")
    except ValueError:
        raise UnsafeApiBase(f"{shown!r} is not a URL: give it as {DEFAULT_API_BASE}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeApiBase(f"{shown!r} is not an http(s) URL: give it as {DEFAULT_API_BASE}")
    root = f"{parts.scheme}://{parts.hostname if ':' not in parts.hostname else f'[{parts.hostname}]'}"
    root += f":{parts.port}" if parts.port else ""
    if parts.username is not None or parts.password is not None:
        raise UnsafeApiBase(
            f"must not carry a user name or password (the token is the only credential): give it as {root}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.rstrip("/").endswith("?"):
        raise UnsafeApiBase(
            f"{shown!r} has a path or query: give the API root only, as {root} "
            "(the tool adds /management/v1/...)"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UnsafeApiBase(
            f"{shown!r} is plain http to a non-loopback host: the token would travel in "
            f"clear text; use https://{parts.netloc}"
        )
    return root


def mistyped_host(api_base: str) -> str | None:
    """The Metrica host `api_base` most likely meant, when its host is a near miss of one."""
    import difflib

    host = urlsplit(api_base).hostname or ""
    if host in KNOWN_HOSTS or is_loopback(host):
        return None
    close = difflib.get_close_matches(host, KNOWN_HOSTS, n=1, cutoff=0.85)
    return close[0] if close else None


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address: the only hosts plain http may reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_session(timeout: float, connections: int) -> aiohttp.ClientSession:
    """The one HTTP session of a run; the token goes per request, never into the session."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=connections, ttl_dns_cache=300),
        raise_for_status=False,
    )


@dataclass(frozen=True, slots=True)
class CounterInfo:
    """One counter of a listing (CounterBrief), its texts already made safe."""

    id: int
    name: str
    site: str
    permission: str  # "" when the listing does not say
    states: Mapping[Window, bool]  # from `offline_options`, where present (undocumented)
    owner: str = ""  # `owner_login`: whose counter it is ("" when the listing does not say)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the listing: its counters and the total the API reports (None: not given)."""

    counters: list[CounterInfo]
    rows: int | None


class MetricaClient:
    """One account's view of the API: writes the window flag, reads its state, lists counters."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_base: str,
        token: str,
        ulogin: str | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        self._session = session
        self._base = api_base.rstrip("/") + "/management/v1"
        self._headers = {"Authorization": f"OAuth {token}"}
        # Yandex logins are case-insensitive and written in lower case: `Client-A` from a spreadsheet
        # asks for client-a (whether Metrica itself folds case is not documented).
        self._params = {"ulogin": ulogin.lower()} if ulogin else {}
        self._scrubber = scrubber or Scrubber([token])

    def window_url(self, counter_id: int, window: Window) -> str:
        """The write method's URL for one counter and window."""
        return f"{self._base}/counter/{counter_id}/offline_conversions/{WINDOW_PATHS[window]}"

    async def switch_window(self, counter_id: int, window: Window, enable: bool) -> tuple[Answer, None]:
        """POST (enable) or DELETE (disable) the window on one counter; one request, no retry."""
        method = "POST" if enable else "DELETE"
        answer, body = await self._request(method, self.window_url(counter_id, window), WRITE_ANSWER_LIMIT)
        if answer.verdict is Verdict.DONE and not (isinstance(body, dict) and body.get("success") is True):
            if isinstance(body, dict) and body.get("success") is False:
                shown = self._scrubber.clean(body)
                failed = f"the API answered {shown}: the change was not made"
                return Answer(Verdict.FAILED, answer.http_status, "success_false", failed), None
            answer = self._unexpected(answer, body, '{"success": true}', "the change was not made")
        return answer, None

    async def read_window_since(self, counter_id: int, window: Window) -> tuple[Answer, dt.date | None]:
        """The date from which calls (or conversions) can be joined to visits now: the window's start."""
        url = f"{self._base}/counter/{counter_id}/offline_conversions/{STATE_PATHS[window]}"
        answer, body = await self._request("GET", url, WRITE_ANSWER_LIMIT)
        if answer.verdict is not Verdict.DONE:
            return answer, None
        since = _date_of(body)
        if since is None:
            return self._unexpected(answer, body, '{"date": "YYYY-MM-DD"} or a date-time'), None
        return answer, since

    def _unexpected(self, answer: Answer, body: Any, expected: str, outcome: str = "") -> Answer:
        """A 2xx whose body is not what the method answers: a page that is not JSON is not the API's
        answer at all; JSON of another shape says the method is not what it was. Either way the
        method, not the counter, is to blame."""
        shown = self._scrubber.clean(body, 200) if body is not None else "an empty or non-JSON body"
        tail = f": {outcome}" if outcome else ""
        if body is None:
            message = f"expected {expected}, got {shown}: not the API's answer{tail}"
            verdict, error_type = Verdict.FOREIGN, "not_json"
        else:
            message = f"expected {expected}, got {shown}{tail}"
            verdict, error_type = Verdict.FAILED, "unexpected_answer"
        return Answer(
            verdict,
            answer.http_status,
            error_type,
            message,
            blame=Blame.METHOD,
            content_type=answer.content_type,
        )

    async def list_page(self, offset: int) -> tuple[Answer, Page]:
        """One page of the counters this account can see, from 1-based `offset`."""
        params = {"per_page": str(LIST_PAGE_SIZE), "offset": str(offset)}
        answer, body = await self._request("GET", f"{self._base}/counters", LISTING_ANSWER_LIMIT, params)
        empty = Page([], None)
        if answer.verdict is not Verdict.DONE:
            return answer, empty
        if not isinstance(body, dict) or not isinstance(body.get("counters"), list):
            # A web page or JSON of another shape: not the API's listing (a wrong --api-base?)
            shown = self._scrubber.clean(body, 200)
            message = f"unexpected listing {shown}: not the API's counters listing"
            foreign = Answer(
                Verdict.FOREIGN,
                answer.http_status,
                "bad_listing",
                message,
                blame=Blame.METHOD,
                content_type=answer.content_type,
            )
            return foreign, empty
        counters = [c for c in map(self._counter_info, body["counters"]) if c is not None]
        rows = body.get("rows")
        return answer, Page(counters, rows if isinstance(rows, int) and not isinstance(rows, bool) else None)

    async def list_accounts(self) -> tuple[Answer, list[str]]:
        """The logins this login represents (`GET /accounts`), each once, in the API's order.

        Only ever a GET: the same path's PUT replaces the list and revokes every login it leaves out,
        so this client has no method that changes it. A client made with a `ulogin` asks for the
        logins *that* login represents."""
        answer, body = await self._request("GET", f"{self._base}/accounts", ACCOUNTS_ANSWER_LIMIT)
        if answer.verdict is not Verdict.DONE:
            return answer, []
        items = body.get("accounts") if isinstance(body, dict) else None
        if not isinstance(items, list):
            shown = self._scrubber.clean(body, 200)
            message = f"unexpected answer to the list of represented logins {shown}"
            return Answer(Verdict.RETRY, answer.http_status, "bad_accounts", message), []
        if len(items) > MAX_ACCOUNTS:
            message = f"the list of represented logins has {len(items):,} entries, over {MAX_ACCOUNTS:,}"
            return Answer(Verdict.FAILED, answer.http_status, "accounts_too_long", message), []
        logins = [
            self._scrubber.clean(login, LOGIN_LIMIT)
            for item in items
            if isinstance(item, dict) and isinstance(login := item.get("user_login"), str) and login
        ]
        return answer, list(dict.fromkeys(logins))

    def _counter_info(self, item: Any) -> CounterInfo | None:
        if not isinstance(item, dict):
            return None
        cid = item.get("id")
        if (
            not isinstance(cid, int) or isinstance(cid, bool) or not 0 < cid <= MAX_ID
        ):  # what a config accepts: a listed ID beyond it could not be run
            return None
        clean = self._scrubber.clean
        site2 = item.get("site2")
        site = site2.get("site") if isinstance(site2, dict) else None
        if not isinstance(site, str):
            site = item.get("site")
        options = item.get("offline_options")
        states: dict[Window, bool] = {}
        if isinstance(options, dict):
            for window, flag in WINDOW_FLAGS.items():
                value = options.get(flag)
                if isinstance(value, bool):
                    states[window] = value
        name, permission, owner = item.get("name"), item.get("permission"), item.get("owner_login")
        return CounterInfo(
            cid,
            clean(name, 200) if isinstance(name, str) else "",
            clean(site, 200) if isinstance(site, str) else "",
            clean(permission, 40) if isinstance(permission, str) else "",
            states,
            clean(owner, 100) if isinstance(owner, str) else "",
        )

    async def _request(
        self, method: str, url: str, limit: int, params: Mapping[str, str] | None = None
    ) -> tuple[Answer, Any]:
        """Send one request; read the body (capped) before deciding; every user-side fault is an Answer."""
        clean = self._scrubber.clean
        try:
            async with self._session.request(
                method,
                url,
                params={**(params or {}), **self._params},
                headers=self._headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await _read_capped(response, limit)
                retry_after = _retry_after(response.headers.get("Retry-After"))
                location = response.headers.get("Location", "")
                media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        except TimeoutError:
            return Answer(Verdict.NO_ANSWER, None, "client_timeout", "no answer within --timeout"), None
        except aiohttp.ClientError as e:
            return Answer(
                Verdict.NO_ANSWER, None, "connection_error", clean(f"{type(e).__name__}: {e}")
            ), None
        media = clean(media, _ERROR_TYPE_LIMIT)
        if raw is None:
            message = f"the answer was larger than {limit // 1024} KB: not read"
            return Answer(Verdict.FAILED, status, "answer_too_large", message, content_type=media), None
        body = _json_or_none(raw)
        if 200 <= status < 300:
            return Answer(Verdict.DONE, status, content_type=media), body
        if 300 <= status < 400:
            where = clean(location, 200) or "nowhere"
            message = f"the API answered with a redirect to {where}: not followed, nothing was changed"
            redirect = Answer(
                Verdict.FOREIGN, status, "redirect", message, blame=Blame.METHOD, content_type=media
            )
            return redirect, body
        return self._classify(status, raw, body, retry_after, media), body

    def _classify(self, status: int, raw: bytes, body: Any, retry_after: float | None, media: str) -> Answer:
        clean = self._scrubber.clean
        error_type, message, is_metrica = _error_of(body)
        message = clean(message) if message else (clean(raw) if raw else f"HTTP {status}")
        verdict, blame = BY_ERROR_TYPE.get(error_type, (None, Blame.NONE))
        if verdict is None:
            if status == 401:
                verdict, error_type = Verdict.ACCOUNT_REFUSED, error_type or "unauthorized"
            elif status in _QUOTA_STATUSES:
                verdict = Verdict.SLOW_ADDRESS  # an unknown quota answer: slow down, ask again
            elif status in _TRANSIENT_STATUSES:
                verdict = Verdict.RETRY
            elif status in _ROUTING_STATUSES and not is_metrica:
                verdict, blame = Verdict.FOREIGN, Blame.METHOD  # a web server's, not the API's: --api-base?
            else:
                verdict = Verdict.FAILED
                # A page where the API's JSON error was expected blames the method (or the API root).
                blame = Blame.METHOD if status in _METHOD_STATUSES or not is_metrica else Blame.NONE
            error_type = error_type or f"http_{status}"  # no JSON error body (an HTML 500, a proxy)
        elif status == 401:
            verdict = Verdict.ACCOUNT_REFUSED
        elif status in _METHOD_STATUSES and verdict in (Verdict.FAILED, Verdict.DENIED):
            blame = Blame.METHOD  # "not allowed", "gone", "not implemented": whatever the error type says
        return Answer(
            verdict, status, clean(error_type, _ERROR_TYPE_LIMIT), message, retry_after, blame, media
        )


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, decompressed as it streams in; None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error_of(body: Any) -> tuple[str, str, bool]:
    """The first `errors[]` entry's type and message, or the top-level message; and whether the body
    has Metrica's error shape at all."""
    if not isinstance(body, dict):
        return "", "", False
    errors = body.get("errors")
    top = body.get("message")
    top_text = top if isinstance(top, str) else ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        kind, text = first.get("error_type"), first.get("message")
        return (
            kind if isinstance(kind, str) else "",
            text if isinstance(text, str) and text else top_text,
            True,
        )
    return "", top_text, isinstance(errors, list) or "code" in body


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _date_of(body: Any) -> dt.date | None:
    """`{"date": "YYYY-MM-DD"}` or `{"date": <ISO date-time>}`; anything else is None."""
    value = body.get("date") if isinstance(body, dict) else None
    if not isinstance(value, str) or len(value) > 40 or not _ISO_DATE.match(value):
        return None  # not 20250101 or 2025-W01-1, which Python would also read
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        # The date as the API writes it (the counter's own time zone), not converted to UTC.
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or garbage."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_LIMIT)
