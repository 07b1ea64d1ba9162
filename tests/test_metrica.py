"""The Metrica client: every documented answer becomes the right Verdict, and the token never leaks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from bulk_enable import MetricaClient, Verdict, check_api_base
from bulk_enable._metrica import UnsafeApiBase

from .conftest import TOKEN

BASE = "https://api-metrica.yandex.net"
URL = f"{BASE}/management/v1/counter/123/offline_conversions/calls_extended_threshold"


def err(status: int, error_type: str, message: str = "msg") -> dict[str, Any]:
    return {
        "errors": [{"error_type": error_type, "message": message}],
        "code": status,
        "message": message,
    }


@pytest.fixture
async def client() -> AsyncIterator[MetricaClient]:
    async with aiohttp.ClientSession() as session:
        yield MetricaClient(session, BASE, TOKEN)


@pytest.mark.parametrize(
    ("status", "body", "verdict", "error_type"),
    [
        (200, {"success": True}, Verdict.DONE, ""),
        (200, {"success": False}, Verdict.FAILED, "success_false"),
        (200, {}, Verdict.FAILED, "success_false"),
        (503, err(503, "backend_error"), Verdict.RETRY, "backend_error"),
        (504, err(504, "timeout"), Verdict.RETRY, "timeout"),
        (500, "<html>oops</html>", Verdict.RETRY, "http_500"),
        (502, "", Verdict.RETRY, "http_502"),
        (429, err(429, "quota_requests_by_ip"), Verdict.SLOW_DOWN, "quota_requests_by_ip"),
        (420, err(420, "quota_requests_by_ip"), Verdict.SLOW_DOWN, "quota_requests_by_ip"),
        (429, err(429, "quota_parallel_requests"), Verdict.SLOW_DOWN, "quota_parallel_requests"),
        (420, err(420, "quota_parallel_requests"), Verdict.SLOW_DOWN, "quota_parallel_requests"),
        (429, err(429, "quota_requests_by_uid"), Verdict.STOP_ACCOUNT, "quota_requests_by_uid"),
        (420, err(420, "quota_requests_by_uid"), Verdict.STOP_ACCOUNT, "quota_requests_by_uid"),
        (429, err(429, "quota_delegate_requests"), Verdict.STOP_ACCOUNT, "quota_delegate_requests"),
        (
            429,
            err(429, "quota_requests_by_counter_id"),
            Verdict.DEFER_COUNTER,
            "quota_requests_by_counter_id",
        ),
        (403, err(403, "invalid_token"), Verdict.STOP_ACCOUNT, "invalid_token"),
        (401, err(401, "unauthorized"), Verdict.STOP_ACCOUNT, "unauthorized"),
        (401, "", Verdict.STOP_ACCOUNT, "unauthorized"),
        (401, err(401, "invalid_token"), Verdict.STOP_ACCOUNT, "invalid_token"),
        (403, err(403, "access_denied"), Verdict.FAILED, "access_denied"),
        (403, err(403, "counter_in_connect"), Verdict.FAILED, "counter_in_connect"),
        (404, err(404, "not_found"), Verdict.FAILED, "not_found"),
        (400, err(400, "invalid_parameter"), Verdict.FAILED, "invalid_parameter"),
        (429, "", Verdict.SLOW_DOWN, "http_429"),
    ],
)
async def test_answers_are_classified(
    client: MetricaClient, status: int, body: Any, verdict: Verdict, error_type: str
) -> None:
    """Each documented answer maps to the verdict the API reference's table gives it."""
    with aioresponses() as m:
        kwargs = {"payload": body} if isinstance(body, dict) else {"body": body}
        m.post(URL, status=status, **kwargs)
        answer = await client.switch_window(123, "calls", enable=True)
    assert (answer.verdict, answer.error_type, answer.http_status) == (verdict, error_type, status)


async def test_error_body_is_read_into_the_answer(client: MetricaClient) -> None:
    """The API's own message reaches the report."""
    with aioresponses() as m:
        m.post(URL, status=403, payload=err(403, "access_denied", "Access is denied"))
        answer = await client.switch_window(123, "calls", enable=True)
    assert answer.message == "Access is denied"


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0.5", 0.5), ("soon", None)])
async def test_retry_after_is_read(client: MetricaClient, header: str, seconds: float | None) -> None:
    """A Retry-After header in seconds is honoured; a bad one is ignored."""
    with aioresponses() as m:
        m.post(
            URL,
            status=429,
            payload=err(429, "quota_requests_by_ip"),
            headers={"Retry-After": header},
        )
        answer = await client.switch_window(123, "calls", enable=True)
    assert answer.retry_after == seconds


@pytest.mark.parametrize(
    "exc",
    [aiohttp.ClientConnectionError("reset"), aiohttp.ServerDisconnectedError(), TimeoutError()],
)
async def test_transport_faults_are_transient(client: MetricaClient, exc: Exception) -> None:
    """Connection errors and client timeouts are retried, with no HTTP status."""
    with aioresponses() as m:
        m.post(URL, exception=exc)
        answer = await client.switch_window(123, "calls", enable=True)
    assert answer.verdict is Verdict.RETRY and answer.http_status is None


@pytest.mark.parametrize(
    ("window", "enable", "method", "path"),
    [
        ("calls", True, "POST", "calls_extended_threshold"),
        ("calls", False, "DELETE", "calls_extended_threshold"),
        ("conversions", True, "POST", "extended_threshold"),
        ("conversions", False, "DELETE", "extended_threshold"),
    ],
)
async def test_window_and_action_pick_method_and_path(
    client: MetricaClient, window: str, enable: bool, method: str, path: str
) -> None:
    """--window and --disable reach the right method and path, with the OAuth header."""
    url = f"{BASE}/management/v1/counter/9/offline_conversions/{path}"
    with aioresponses() as m:
        m.add(url, method, payload={"success": True})
        assert (await client.switch_window(9, window, enable)).verdict is Verdict.DONE
        ((key, calls),) = m.requests.items()
    assert key[0] == method and str(key[1]) == url
    assert calls[0].kwargs["headers"] == {"Authorization": f"OAuth {TOKEN}"}


async def test_token_echoed_by_the_api_is_scrubbed(client: MetricaClient) -> None:
    """An error text that repeats the token loses it before it can reach a report or a log."""
    with aioresponses() as m:
        m.post(URL, status=403, payload=err(403, "invalid_token", f"Invalid oauth_token {TOKEN}"))
        m.post(URL, status=500, body=f"<html>token={TOKEN}</html>")
        m.post(URL, exception=aiohttp.ClientConnectionError(f"failed for {TOKEN}"))
        answers = [await client.switch_window(123, "calls", enable=True) for _ in range(3)]
    for answer in answers:
        assert TOKEN not in answer.message
        assert "***" in answer.message


async def test_listing_pages(client: MetricaClient) -> None:
    """The listing asks with the 10,000 page size and a 1-based offset."""
    with aioresponses() as m:
        m.get(
            re.compile(rf"{BASE}/management/v1/counters\?.*offset=1.*"),
            payload={"rows": 2, "counters": [{"id": 1}, {"id": 2}, {"bad": 3}]},
        )
        answer, counters, rows = await client.list_page(1)
        (((_, url), _),) = m.requests.items()
    assert answer.verdict is Verdict.DONE and rows == 2 and [c["id"] for c in counters] == [1, 2]
    assert url.query["per_page"] == "10000" and url.query["offset"] == "1"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api-metrica.yandex.net", True),
        ("https://api-metrika.yandex.net/", True),
        ("http://127.0.0.1:8080", True),
        ("http://127.5.5.5", True),
        ("http://localhost:1", True),
        ("http://[::1]:9", True),
        ("http://api-metrica.yandex.net", False),
        ("http://10.0.0.1", False),
        ("ftp://x", False),
        ("api-metrica.yandex.net", False),
    ],
)
def test_plain_http_only_to_loopback(url: str, ok: bool) -> None:
    """Tokens never travel in clear text."""
    if ok:
        assert check_api_base(url) == url.rstrip("/")
    else:
        with pytest.raises(UnsafeApiBase):
            check_api_base(url)
