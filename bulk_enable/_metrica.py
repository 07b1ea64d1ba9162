"""The Metrica Management API, as far as this tool uses it: one HTTP request in, one typed `Answer` out.

No retries and no scheduling here: the client only says what an answer *means* for a bulk run
(`Verdict`), following the error table in the project's API reference. The token lives in the
session's default headers and is scrubbed from every text that leaves this module.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

DEFAULT_API_BASE = "https://api-metrica.yandex.net"

WINDOW_PATHS = {"calls": "calls_extended_threshold", "conversions": "extended_threshold"}
# `offline_options` flag of each window, where the API still returns it (unconfirmed, never required)
WINDOW_FLAGS = {
    "calls": "offline_calls_extended_threshold",
    "conversions": "offline_conversion_extended_threshold",
}
LIST_PAGE_SIZE = 10_000  # the API's maximum `per_page`


class Verdict(enum.Enum):
    """What a bulk run should do with an answer."""

    DONE = "done"  # the change is made
    FAILED = "failed"  # this counter cannot be changed: do not ask again
    RETRY = "retry"  # transient: ask again after a backoff
    SLOW_DOWN = "slow_down"  # per-second or parallel quota: slow everyone down, ask again
    DEFER_COUNTER = "defer_counter"  # this counter's daily quota: not today
    STOP_ACCOUNT = "stop_account"  # dead token or the login's daily quota: nothing more today


# error_type -> verdict, from ../shared/reference/metrica-api.md
_BY_ERROR_TYPE = {
    "backend_error": Verdict.RETRY,
    "timeout": Verdict.RETRY,
    "quota_requests_by_ip": Verdict.SLOW_DOWN,
    "quota_parallel_requests": Verdict.SLOW_DOWN,
    "quota_requests_by_uid": Verdict.STOP_ACCOUNT,
    "quota_delegate_requests": Verdict.STOP_ACCOUNT,
    "quota_grants_requests": Verdict.STOP_ACCOUNT,
    "quota_requests_by_counter_id": Verdict.DEFER_COUNTER,
    "invalid_token": Verdict.STOP_ACCOUNT,
    "unauthorized": Verdict.STOP_ACCOUNT,
    "access_denied": Verdict.FAILED,
    "counter_in_connect": Verdict.FAILED,
    "not_found": Verdict.FAILED,
    "invalid_parameter": Verdict.FAILED,
}
_QUOTA_STATUSES = {420, 429}
_TRANSIENT_STATUSES = {500, 502, 503, 504}


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's result, already classified; `message` never holds the token."""

    verdict: Verdict
    http_status: int | None = None  # None: no HTTP answer (connection error, client timeout)
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header


class UnsafeApiBase(ValueError):
    """An API base the token must not be sent to."""


def check_api_base(url: str) -> str:
    """Return `url` without a trailing slash; refuse plain http unless the host is loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeApiBase(f"--api-base {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UnsafeApiBase(
            f"--api-base {url!r} is plain http to a non-loopback host: the token would travel in "
            "clear text; use https"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
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


class MetricaClient:
    """One login's view of the API: writes the window flag, lists counters."""

    def __init__(self, session: aiohttp.ClientSession, api_base: str, token: str) -> None:
        self._session = session
        self._base = api_base.rstrip("/")
        self._token = token
        self._headers = {"Authorization": f"OAuth {token}"}

    def window_url(self, counter_id: int, window: str) -> str:
        """The write method's URL for one counter and window."""
        return f"{self._base}/management/v1/counter/{counter_id}/offline_conversions/{WINDOW_PATHS[window]}"

    async def switch_window(self, counter_id: int, window: str, enable: bool) -> Answer:
        """POST (enable) or DELETE (disable) the window on one counter; one request, no retry."""
        method = "POST" if enable else "DELETE"
        answer, body = await self._request(method, self.window_url(counter_id, window))
        if answer.verdict is Verdict.DONE and not (isinstance(body, dict) and body.get("success") is True):
            return Answer(
                Verdict.FAILED,
                answer.http_status,
                "success_false",
                self._scrub(f"the API answered {_short(body)}: the change was not made"),
            )
        return answer

    async def list_page(self, offset: int) -> tuple[Answer, list[dict[str, Any]], int]:
        """One page of the counters this token can see: (answer, counters, total rows).

        `offset` is 1-based, as the API wants; pages hold up to 10,000 counters, so listing a whole
        agency costs a handful of requests.
        """
        url = f"{self._base}/management/v1/counters"
        params = {"per_page": str(LIST_PAGE_SIZE), "offset": str(offset)}
        answer, body = await self._request("GET", url, params)
        if answer.verdict is not Verdict.DONE:
            return answer, [], 0
        if not isinstance(body, dict) or not isinstance(body.get("counters"), list):
            return (
                Answer(
                    Verdict.RETRY,
                    answer.http_status,
                    "bad_listing",
                    f"unexpected listing body {_short(body)}",
                ),
                [],
                0,
            )
        counters = [c for c in body["counters"] if isinstance(c, dict) and isinstance(c.get("id"), int)]
        rows = body.get("rows")
        return answer, counters, rows if isinstance(rows, int) else len(counters)

    async def _request(
        self, method: str, url: str, params: Mapping[str, str] | None = None
    ) -> tuple[Answer, Any]:
        """Send one request; read the body before deciding; map every user-side fault to an Answer."""
        try:
            async with self._session.request(method, url, params=params, headers=self._headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return Answer(Verdict.RETRY, None, "client_timeout", "no answer within --timeout"), None
        except aiohttp.ClientError as e:
            # The exception text may name the URL, never the headers; scrub anyway.
            text = self._scrub(f"{type(e).__name__}: {e}".rstrip(": "))
            return Answer(Verdict.RETRY, None, "connection_error", text), None
        body = _json_or_none(raw)
        if 200 <= status < 300:
            return Answer(Verdict.DONE, status, "", ""), body
        return self._classify(status, raw, body, retry_after), body

    def _classify(self, status: int, raw: bytes, body: Any, retry_after: float | None) -> Answer:
        error_type, message = _error_of(body)
        if not message:
            message = _short(raw.decode("utf-8", "replace")) if raw else f"HTTP {status}"
        message = self._scrub(message)
        verdict = _BY_ERROR_TYPE.get(error_type)
        if verdict is None:
            if status == 401:
                verdict, error_type = Verdict.STOP_ACCOUNT, error_type or "unauthorized"
            elif status in _TRANSIENT_STATUSES or status in _QUOTA_STATUSES:
                # An unknown quota answer is treated as the per-second kind: slow down, try again.
                verdict = Verdict.SLOW_DOWN if status in _QUOTA_STATUSES else Verdict.RETRY
            else:
                verdict = Verdict.FAILED
            error_type = error_type or f"http_{status}"  # no JSON error body (an HTML 500, a proxy)
        elif status == 401 or error_type == "unauthorized":
            verdict = Verdict.STOP_ACCOUNT
        return Answer(verdict, status, error_type, message, retry_after)

    def _scrub(self, text: str) -> str:
        """Remove the token from any text that may leave this module (an echoing API, a URL)."""
        return text.replace(self._token, "***") if self._token else text


def _error_of(body: Any) -> tuple[str, str]:
    """The first `errors[]` entry's type and message, or the top-level message."""
    if not isinstance(body, dict):
        return "", ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("error_type") or ""), str(first.get("message") or body.get("message") or "")
    return "", str(body.get("message") or "")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
