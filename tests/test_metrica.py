"""The Metrica client: every answer becomes the right Verdict, reads are bounded, redirects are not
followed, and no text taken from an answer carries the token or a control character.

Mocked answers (aioresponses) for what a mock can model; a real loopback aiohttp server for what it
cannot (redirects, compression, bodies too large to read).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import functools
import gzip
import json
import math
import os
import re
import socket
import struct
import tracemalloc
import unicodedata
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_enable import Answer, ExitCode, MetricaClient, Verdict, Window, check_api_base
from bulk_enable._answer import Blame
from bulk_enable._metrica import (
    LISTING_ANSWER_LIMIT,
    RETRY_AFTER_LIMIT,
    WRITE_ANSWER_LIMIT,
    CounterInfo,
    Page,
    UnsafeApiBase,
    open_session,
)
from bulk_enable._untrusted import MASK, SECRET_PIECE

from .conftest import TOKEN

BASE = "https://api-metrika.yandex.net"
API = f"{BASE}/management/v1"
WRITE_URL = f"{API}/counter/123/offline_conversions/calls_extended_threshold"
WRITE_PATH = "/management/v1/counter/123/offline_conversions/calls_extended_threshold"
LISTING = re.compile(re.escape(f"{API}/counters") + r"\?.*")
STATE = re.compile(re.escape(f"{API}/counter/123/offline_conversions/") + r"\w+(\?.*)?")
ANYWHERE = re.compile(r".*")
MB = 1024 * 1024
PIECES = [TOKEN[i : i + SECRET_PIECE] for i in range(len(TOKEN) - SECRET_PIECE + 1)]
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FUZZ_EXAMPLES = int(os.environ.get("BULK_ENABLE_FUZZ_EXAMPLES", "150"))


def err(status: int, error_type: str, message: str = "msg") -> dict[str, Any]:
    """A Metrica error body, as the API reference shows it."""
    return {"errors": [{"error_type": error_type, "message": message}], "code": status, "message": message}


def raw(body: object) -> str | bytes:
    """What the server sends: text and bytes as they are, anything else as JSON."""
    return body if isinstance(body, str | bytes) else json.dumps(body)


def assert_safe(text: str) -> None:
    """No 8-character piece of the token, no control or invisible character, valid UTF-8."""
    assert [p for p in PIECES if p in text] == [], text
    assert [ch for ch in text if unicodedata.category(ch) in UNSAFE_CATEGORIES] == [], text
    text.encode("utf-8")


def assert_answer_safe(answer: Answer) -> None:
    """Every text of an Answer is safe and its wait is a finite, capped number."""
    assert isinstance(answer.verdict, Verdict)
    assert_safe(answer.error_type)
    assert_safe(answer.message)
    if answer.retry_after is not None:
        assert 0 <= answer.retry_after <= RETRY_AFTER_LIMIT and math.isfinite(answer.retry_after)


@pytest.fixture
async def client() -> AsyncIterator[MetricaClient]:
    async with aiohttp.ClientSession() as session:
        yield MetricaClient(session, BASE, TOKEN)


async def write(client: MetricaClient, status: int, body: object, **headers: str) -> Answer:
    """The answer of an enabling POST that the API answers with `status` and `body`."""
    with aioresponses() as m:
        m.post(WRITE_URL, status=status, body=raw(body), headers=headers)
        answer, nothing = await client.switch_window(123, Window.CALLS, enable=True)
    assert nothing is None
    return answer


async def listing(client: MetricaClient, body: object, status: int = 200) -> tuple[Answer, Page]:
    """A listing page that the API answers with `body`."""
    with aioresponses() as m:
        m.get(LISTING, status=status, body=raw(body))
        return await client.list_page(1)


async def state(client: MetricaClient, body: object, status: int = 200) -> tuple[Answer, dt.date | None]:
    """The window's state read, answered with `body`."""
    with aioresponses() as m:
        m.get(STATE, status=status, body=raw(body))
        return await client.read_window_since(123, Window.CALLS)


# --- 1. classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "verdict", "error_type"),
    [
        (200, {"success": True}, Verdict.DONE, ""),
        (200, {"success": False}, Verdict.FAILED, "success_false"),
        (200, {}, Verdict.FAILED, "unexpected_answer"),
        (200, {"success": "true"}, Verdict.FAILED, "unexpected_answer"),
        (200, "OK, done", Verdict.FOREIGN, "not_json"),
        (200, "", Verdict.FOREIGN, "not_json"),
        (503, err(503, "backend_error"), Verdict.RETRY, "backend_error"),
        (504, err(504, "timeout"), Verdict.RETRY, "timeout"),
        (500, "<html><body>Internal error</body></html>", Verdict.RETRY, "http_500"),
        (502, "", Verdict.RETRY, "http_502"),
        (503, "", Verdict.RETRY, "http_503"),
        (420, err(420, "quota_requests_by_ip"), Verdict.SLOW_ADDRESS, "quota_requests_by_ip"),
        (429, err(429, "quota_requests_by_ip"), Verdict.SLOW_ADDRESS, "quota_requests_by_ip"),
        (420, err(420, "quota_parallel_requests"), Verdict.SLOW_LOGIN, "quota_parallel_requests"),
        (429, err(429, "quota_parallel_requests"), Verdict.SLOW_LOGIN, "quota_parallel_requests"),
        (429, err(429, "quota_requests_by_uid"), Verdict.ACCOUNT_QUOTA, "quota_requests_by_uid"),
        (420, err(420, "quota_requests_by_uid"), Verdict.ACCOUNT_QUOTA, "quota_requests_by_uid"),
        (429, err(429, "quota_delegate_requests"), Verdict.ACCOUNT_QUOTA, "quota_delegate_requests"),
        (429, err(429, "quota_grants_requests"), Verdict.ACCOUNT_QUOTA, "quota_grants_requests"),
        (
            429,
            err(429, "quota_requests_by_counter_id"),
            Verdict.COUNTER_QUOTA,
            "quota_requests_by_counter_id",
        ),
        (
            420,
            err(420, "quota_requests_by_counter_id"),
            Verdict.COUNTER_QUOTA,
            "quota_requests_by_counter_id",
        ),
        (429, "", Verdict.SLOW_ADDRESS, "http_429"),
        (420, "<html>slow down</html>", Verdict.SLOW_ADDRESS, "http_420"),
        (429, err(429, "quota_something_new"), Verdict.SLOW_ADDRESS, "quota_something_new"),
        (403, err(403, "invalid_token"), Verdict.ACCOUNT_REFUSED, "invalid_token"),
        (401, err(401, "unauthorized"), Verdict.ACCOUNT_REFUSED, "unauthorized"),
        (401, err(401, "invalid_token"), Verdict.ACCOUNT_REFUSED, "invalid_token"),
        (401, err(401, "access_denied"), Verdict.ACCOUNT_REFUSED, "access_denied"),
        (401, "", Verdict.ACCOUNT_REFUSED, "unauthorized"),
        (401, "<html>401</html>", Verdict.ACCOUNT_REFUSED, "unauthorized"),
        (403, err(403, "access_denied", "Access is denied"), Verdict.DENIED, "access_denied"),
        (403, err(403, "counter_in_connect"), Verdict.FAILED, "counter_in_connect"),
        (404, err(404, "not_found"), Verdict.FAILED, "not_found"),
        (400, err(400, "invalid_parameter"), Verdict.FAILED, "invalid_parameter"),
        (404, {"errors": [], "code": 404, "message": "no such counter"}, Verdict.FAILED, "http_404"),
        (404, "<html><body>Not Found</body></html>", Verdict.FOREIGN, "http_404"),
        (404, "", Verdict.FOREIGN, "http_404"),
        (404, {"detail": "not here"}, Verdict.FOREIGN, "http_404"),
        (400, "", Verdict.FAILED, "http_400"),
        (418, err(418, "brand_new_error"), Verdict.FAILED, "brand_new_error"),
        (405, err(405, "invalid_parameter"), Verdict.FAILED, "invalid_parameter"),
        (405, "<html>405 Not Allowed</html>", Verdict.FOREIGN, "http_405"),
        (410, "", Verdict.FOREIGN, "http_410"),
        (501, "<html>501 Not Implemented</html>", Verdict.FOREIGN, "http_501"),
        (501, err(501, "not_implemented"), Verdict.FAILED, "not_implemented"),
    ],
)
async def test_answers_are_classified(
    client: MetricaClient, status: int, body: object, verdict: Verdict, error_type: str
) -> None:
    """Each documented answer maps to the verdict the API reference's table gives it."""
    answer = await write(client, status, body)
    assert (answer.verdict, answer.error_type, answer.http_status) == (verdict, error_type, status)
    assert answer.message or verdict is Verdict.DONE


@pytest.mark.parametrize(
    ("status", "body", "blame"),
    [
        (200, {"success": True}, Blame.NONE),
        (200, {"success": False}, Blame.NONE),
        (503, err(503, "backend_error"), Blame.NONE),
        (418, err(418, "brand_new_error"), Blame.NONE),
        (404, {"errors": [], "code": 404, "message": "no such counter"}, Blame.NONE),
        (403, err(403, "access_denied"), Blame.COUNTER),
        (403, err(403, "counter_in_connect"), Blame.COUNTER),
        (404, err(404, "not_found"), Blame.EITHER),
        (400, err(400, "invalid_parameter"), Blame.EITHER),
        (405, err(405, "invalid_parameter"), Blame.METHOD),
        (410, err(410, "not_found"), Blame.METHOD),
        (501, err(501, "not_implemented"), Blame.METHOD),
        (501, "<html>501 Not Implemented</html>", Blame.METHOD),
        (404, "<html>Not Found</html>", Blame.METHOD),
        (403, "<html>Forbidden</html>", Blame.METHOD),
        (400, "", Blame.METHOD),
        (200, {}, Blame.METHOD),
        (200, "<html>Welcome</html>", Blame.METHOD),
    ],
)
async def test_failures_say_whom_they_blame(
    client: MetricaClient, status: int, body: object, blame: Blame
) -> None:
    """A failure names its counter (the method works), may be either, or blames the method or root."""
    assert (await write(client, status, body)).blame is blame


@pytest.mark.parametrize(
    ("content_type", "signature"),
    [
        ("text/html; charset=utf-8", ("http_501", "text/html")),
        ("TEXT/HTML", ("http_501", "text/html")),
        ("application/json", ("http_501", "application/json")),
        (None, ("http_501", "")),
    ],
)
async def test_a_signature_is_the_error_type_and_the_media_type(
    client: MetricaClient, content_type: str | None, signature: tuple[str, str]
) -> None:
    """Two answers are the same failure when their error type and media type (no parameters) match."""
    headers = {"Content-Type": content_type} if content_type else {}
    with aioresponses() as m:
        m.post(WRITE_URL, status=501, body=b"<html>501</html>", headers=headers, content_type="")
        answer, _ = await client.switch_window(123, Window.CALLS, enable=True)
    assert answer.signature == signature


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (403, err(403, "invalid_token"), Verdict.ACCOUNT_REFUSED),
        (429, err(429, "quota_requests_by_uid"), Verdict.ACCOUNT_QUOTA),
        (503, err(503, "backend_error"), Verdict.RETRY),
        (404, "", Verdict.FOREIGN),
    ],
)
async def test_reads_are_classified_like_writes(
    client: MetricaClient, status: int, body: object, verdict: Verdict
) -> None:
    """The state read and the listing classify an error answer exactly as a write does."""
    (read, since), (listed, page) = await state(client, body, status), await listing(client, body, status)
    assert read.verdict is listed.verdict is verdict and since is None
    assert page == Page([], None)


@pytest.mark.parametrize(
    ("window", "enable", "method", "path"),
    [
        (Window.CALLS, True, "POST", "calls_extended_threshold"),
        (Window.CALLS, False, "DELETE", "calls_extended_threshold"),
        (Window.CONVERSIONS, True, "POST", "extended_threshold"),
        (Window.CONVERSIONS, False, "DELETE", "extended_threshold"),
    ],
)
async def test_window_and_action_pick_method_and_path(
    client: MetricaClient, window: Window, enable: bool, method: str, path: str
) -> None:
    """--window and --disable reach the right method and path."""
    url = f"{API}/counter/9/offline_conversions/{path}"
    with aioresponses() as m:
        m.add(url, method, payload={"success": True})
        answer, _ = await client.switch_window(9, window, enable)
        ((key, _calls),) = m.requests.items()
    assert answer.verdict is Verdict.DONE and key[0] == method and str(key[1]) == url


# --- 2. messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (err(403, "access_denied", "Access is denied"), "Access is denied"),
        ({"errors": [{"error_type": "access_denied"}], "code": 403, "message": "Top level"}, "Top level"),
        ({"errors": [{"error_type": "access_denied", "message": ""}], "message": "Top"}, "Top"),
        ({"errors": [{"error_type": "access_denied", "message": 5}], "message": "Top"}, "Top"),
        (
            {"errors": [{"error_type": "access_denied"}], "code": 403},
            '{"errors": [{"error_type": "access_denied"}], "code": 403}',
        ),
    ],
)
async def test_the_error_message_reaches_the_answer(
    client: MetricaClient, body: object, message: str
) -> None:
    """The API's own message (the first error's, else the top-level one, else the body) is kept."""
    answer = await write(client, 403, body)
    assert answer.verdict is Verdict.DENIED and answer.message == message


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"errors": [{"error_type": f"bad_{TOKEN}", "message": "m"}], "code": 400}),
        (400, {"errors": [{"error_type": TOKEN[:9], "message": "m"}], "code": 400}),
        (403, err(403, "invalid_token", f"Invalid oauth_token {TOKEN}")),
        (403, err(403, "invalid_token", f"Invalid oauth_token {TOKEN[2:14]}")),
        (400, err(400, "invalid_parameter", "x" * 250 + TOKEN + "y" * 100)),
        (400, err(400, "invalid_parameter", "x" * 490 + TOKEN)),
        (400, err(400, "invalid_parameter", "\x1b[2J" + TOKEN + "\u202e")),
        (500, f"<html><body>token={TOKEN}</body></html>"),
        (502, f"<html>{'z' * 300}{TOKEN}</html>".encode()),
        (404, f"Not Found: /?oauth_token={TOKEN}"),
        (200, {"success": False, "echo": TOKEN}),
    ],
)
async def test_token_echoed_by_the_api_is_scrubbed(client: MetricaClient, status: int, body: object) -> None:
    """A token echoed in an error type, a message (even past char 200) or an HTML page is scrubbed."""
    answer = await write(client, status, body)
    assert_answer_safe(answer)
    assert MASK in answer.error_type + answer.message


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ClientConnectionError(f"failed for {TOKEN}"),
        aiohttp.ClientPayloadError(f"bad payload \x1b[31m{TOKEN}"),
        aiohttp.InvalidURL(f"https://x/?t={TOKEN}"),
    ],
)
async def test_token_in_an_exception_text_is_scrubbed(client: MetricaClient, exc: Exception) -> None:
    """An aiohttp exception that names the token (or a control character) is scrubbed and escaped."""
    with aioresponses() as m:
        m.post(WRITE_URL, exception=exc)
        answer, _ = await client.switch_window(123, Window.CALLS, enable=True)
    assert answer.verdict is Verdict.NO_ANSWER and answer.error_type == "connection_error"
    assert_answer_safe(answer)
    assert MASK in answer.message


async def test_messages_are_escaped(client: MetricaClient) -> None:
    """Control and bidi characters in the API's message are shown as visible escapes."""
    answer = await write(client, 400, err(400, "invalid\x1b_param", "a\x1b[31mb\u202ec\r\nd"))
    assert answer.message == "a\\x1b[31mb\\u202ec\\r\\nd" and answer.error_type == "invalid\\x1b_param"


async def test_a_long_message_is_capped(client: MetricaClient) -> None:
    """A huge error message is cut to the report's cap and says so."""
    answer = await write(client, 400, err(400, "invalid_parameter", "m" * 5000))
    assert len(answer.message) <= 500 and answer.message.endswith("…")


# --- 3. Retry-After -------------------------------------------------------------------------------


def http_date(seconds_ahead: float) -> str:
    """An HTTP date this many seconds from now."""
    return email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_ahead), usegmt=True
    )


IN_30_SECONDS = "<an HTTP date 30 s ahead>"  # made when the test runs, not when it is collected


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7.0, 7.0),
        ("0.5", 0.5, 0.5),
        (" 3 ", 3.0, 3.0),
        ("0", 0.0, 0.0),
        ("-5", 0.0, 0.0),
        ("-1e400", 0.0, 0.0),
        ("99999", RETRY_AFTER_LIMIT, RETRY_AFTER_LIMIT),
        ("1e400", RETRY_AFTER_LIMIT, RETRY_AFTER_LIMIT),
        ("inf", RETRY_AFTER_LIMIT, RETRY_AFTER_LIMIT),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_LIMIT, RETRY_AFTER_LIMIT),
        ("Fri, 31 Dec 9999 23:59:59 -2359", RETRY_AFTER_LIMIT, RETRY_AFTER_LIMIT),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0, 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0, 0.0),
        (IN_30_SECONDS, 25.0, 30.0),
    ],
)
async def test_retry_after_is_read_and_capped(
    client: MetricaClient, header: str, low: float, high: float
) -> None:
    """Retry-After in seconds or as an HTTP date becomes a finite wait between 0 and 24 hours."""
    header = http_date(30) if header == IN_30_SECONDS else header
    answer = await write(client, 429, err(429, "quota_requests_by_ip"), **{"Retry-After": header})
    assert answer.retry_after is not None and low <= answer.retry_after <= high


@pytest.mark.parametrize(
    "header", ["soon", "nan", "NaN", "", "1,5", "Fri, 32 Foo 2026", "0x10", "\u0663 days"]
)
async def test_a_garbage_retry_after_is_ignored(client: MetricaClient, header: str) -> None:
    """A Retry-After that is neither seconds nor a date is as if absent."""
    answer = await write(client, 503, err(503, "backend_error"), **{"Retry-After": header})
    assert answer.verdict is Verdict.RETRY and answer.retry_after is None


# --- a real loopback server -----------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Loopback:
    """A running loopback server: its API root and every request it received ("METHOD /path?query")."""

    base: str
    seen: list[str] = field(default_factory=list)


Serve = Callable[[Handler], Awaitable[Loopback]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start loopback aiohttp servers answering every request with a handler; all closed at the end."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> Loopback:
        box = Loopback("")

        async def record(request: web.Request) -> web.StreamResponse:
            box.seen.append(f"{request.method} {request.path_qs}")
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        box.base = f"http://127.0.0.1:{server.port}"
        return box

    yield start
    for server in servers:
        await server.close()


# --- 4. redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(serve: Serve, status: int) -> None:
    """A redirect answer to the write is FOREIGN; its target (carrying the token) is never requested."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == WRITE_PATH:
            where = f"http://{request.host}/elsewhere?token={TOKEN}"
            return web.Response(status=status, headers={"Location": where})
        return web.json_response({"success": True})

    box = await serve(handler)
    async with open_session(10, 4) as session:
        answer, _ = await MetricaClient(session, box.base, TOKEN).switch_window(
            123, Window.CALLS, enable=True
        )
    assert (answer.verdict, answer.error_type, answer.http_status) == (Verdict.FOREIGN, "redirect", status)
    assert f"{box.base}/elsewhere?token={MASK}" in answer.message
    assert_answer_safe(answer)
    assert box.seen == [f"POST {WRITE_PATH}"]


# --- 5. bounded reads -----------------------------------------------------------------------------


@functools.cache
def gzip_of_zeros(mib: int = 512) -> bytes:
    """A valid gzip stream of `mib` MiB of zeros (about 1 KB per MiB), built without holding the zeros:
    each MiB is deflated alone (a full flush resets the history), so its bytes repeat exactly."""
    zeros = bytes(MB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH) == block
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * mib + deflate.flush() + struct.pack("<II", crc, (mib * MB) & 0xFFFFFFFF)


def test_the_gzip_bomb_is_what_it_claims() -> None:
    """The bomb is a small valid gzip stream that inflates to 512 MiB (checked on its first 16 MiB)."""
    bomb = gzip_of_zeros()
    inflate = zlib.decompressobj(31)
    head = inflate.decompress(bomb, 16 * MB)
    assert len(bomb) < MB and head == bytes(16 * MB) and inflate.unconsumed_tail
    assert struct.unpack("<I", bomb[-4:]) == (512 * MB & 0xFFFFFFFF,)


async def test_a_huge_write_answer_is_not_read_whole(serve: Serve) -> None:
    """A 5 MB write answer is refused at the cap, before the server has even sent most of it."""
    gate = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5 * MB
        await response.prepare(request)
        piece = b" " * (64 * 1024)
        try:
            for i in range(80):
                if i == 16:  # 1 MB sent; the other 4 MB only after the client has answered
                    await asyncio.wait_for(gate.wait(), 10)
                await response.write(piece)
        except (ConnectionError, TimeoutError):
            pass
        return response

    box = await serve(handler)
    async with open_session(10, 4) as session:
        client = MetricaClient(session, box.base, TOKEN)
        answer, _ = await asyncio.wait_for(client.switch_window(123, Window.CALLS, enable=True), 5)
        gate.set()
    assert (answer.verdict, answer.error_type, answer.http_status) == (
        Verdict.FAILED,
        "answer_too_large",
        200,
    )
    assert "64 KB" in answer.message


@pytest.mark.parametrize(
    ("call", "limit"), [("write", WRITE_ANSWER_LIMIT), ("listing", LISTING_ANSWER_LIMIT)]
)
async def test_a_gzip_bomb_is_cut_at_the_cap(
    serve: Serve, call: str, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip bomb (512 MiB inflated) is refused at the cap: quickly (it inflates little more than the
    cap, never the 512 MiB), in memory bounded by the cap."""
    bomb = gzip_of_zeros()
    inflated = [0]  # bytes the client's response streams were fed, after decompression
    feed_data = aiohttp.StreamReader.feed_data

    def counted(self: aiohttp.StreamReader, data: bytes, *args: Any) -> None:
        inflated[0] += len(data)
        feed_data(self, data, *args)

    monkeypatch.setattr(aiohttp.StreamReader, "feed_data", counted)

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=bomb, headers=headers)

    box = await serve(handler)
    async with open_session(30, 4) as session:
        client = MetricaClient(session, box.base, TOKEN)
        tracemalloc.start()
        try:
            if call == "write":
                answer, _ = await client.switch_window(123, Window.CALLS, enable=True)
            else:
                answer, page = await client.list_page(1)
                assert page == Page([], None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    print(f"gzip bomb ({call}): {inflated[0] / MB:.1f} MB inflated, peak {peak / MB:.1f} MB traced")
    assert (answer.verdict, answer.error_type) == (Verdict.FAILED, "answer_too_large")
    assert limit < inflated[0] < limit + 16 * MB
    assert peak < limit + 16 * MB < 100 * MB


async def test_a_compressed_listing_within_the_cap_is_read(serve: Serve) -> None:
    """A gzip listing of 10,000 counters (well within the cap) is inflated and parsed whole."""
    counters = [
        {"id": i, "name": f"Counter {i}", "site2": {"site": f"s{i}.example"}} for i in range(1, 10_001)
    ]
    body = gzip.compress(json.dumps({"rows": 12_345, "counters": counters}).encode())

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)

    box = await serve(handler)
    async with open_session(10, 4) as session:
        answer, page = await MetricaClient(session, box.base, TOKEN).list_page(10_001)
    assert answer.verdict is Verdict.DONE and page.rows == 12_345 and len(page.counters) == 10_000
    assert page.counters[-1] == CounterInfo(10_000, "Counter 10000", "s10000.example", "", {})
    assert box.seen == ["GET /management/v1/counters?per_page=10000&offset=10001"]


# --- 6. ulogin and the header ---------------------------------------------------------------------


@pytest.mark.parametrize("ulogin", [None, "client-x"])
async def test_ulogin_goes_on_every_request(ulogin: str | None) -> None:
    """ulogin reaches writes, state reads and listing pages (or none); the only header is the OAuth one."""
    async with aiohttp.ClientSession() as session:
        client = MetricaClient(session, BASE, TOKEN, ulogin=ulogin)
        with aioresponses() as m:
            m.post(ANYWHERE, payload={"success": True})
            m.delete(ANYWHERE, payload={"success": True})
            m.get(STATE, payload={"date": "2026-11-01"})
            m.get(LISTING, payload={"rows": 0, "counters": []})
            answers = [
                (await client.switch_window(123, Window.CALLS, enable=True))[0],
                (await client.switch_window(123, Window.CONVERSIONS, enable=False))[0],
                (await client.read_window_since(123, Window.CALLS))[0],
                (await client.list_page(1))[0],
            ]
            requests = [(url, call) for (_, url), calls in m.requests.items() for call in calls]
    assert [a.verdict for a in answers] == [Verdict.DONE] * 4 and len(requests) == 4
    for url, call in requests:
        assert url.query.getall("ulogin", []) == ([ulogin] if ulogin else [])
        assert call.kwargs["headers"] == {"Authorization": f"OAuth {TOKEN}"}
        assert TOKEN not in str(url)


# --- 7. listing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, 10_001, 123_457])
async def test_listing_asks_for_big_pages_from_the_offset(client: MetricaClient, offset: int) -> None:
    """The listing asks per_page=10000 and the given 1-based offset."""
    with aioresponses() as m:
        m.get(LISTING, payload={"rows": 2, "counters": []})
        await client.list_page(offset)
        (((_, url), _),) = m.requests.items()
    assert url.query["per_page"] == "10000" and url.query["offset"] == str(offset)


async def test_listing_items_become_counter_infos(client: MetricaClient) -> None:
    """CounterBriefs become CounterInfos (site2.site, else site); items without a positive id are skipped."""
    body = {
        "rows": 3,
        "counters": [
            {
                "id": 1,
                "name": "Shop",
                "site2": {"site": "shop.example"},
                "permission": "own",
                "status": "Active",
                "owner_login": "agency",
            },
            {"id": 2, "name": "Old", "site": "old.example", "permission": "edit"},
            {"id": 3, "site2": {"site": 5}, "site": "fallback.example"},
            {"id": 4, "name": 7, "site2": "x", "permission": None},
            {"id": "5"},
            {"id": True},
            {"id": 0},
            {"id": -6},
            {"id": 7.0},
            {"name": "no id"},
            "junk",
            None,
            [8],
        ],
    }
    answer, page = await listing(client, body)
    assert answer.verdict is Verdict.DONE and page.rows == 3
    assert page.counters == [
        CounterInfo(1, "Shop", "shop.example", "own", {}, owner="agency"),
        CounterInfo(2, "Old", "old.example", "edit", {}),
        CounterInfo(3, "", "fallback.example", "", {}),
        CounterInfo(4, "", "", "", {}),
    ]


@pytest.mark.parametrize(
    ("rows", "expected"), [(7, 7), (0, 0), ("7", None), (True, None), (7.0, None), (None, None)]
)
async def test_listing_rows_must_be_an_integer(
    client: MetricaClient, rows: object, expected: int | None
) -> None:
    """`rows` is the total only when it is an integer; otherwise the page says it does not know."""
    answer, page = await listing(client, {"rows": rows, "counters": [{"id": 1}]})
    assert answer.verdict is Verdict.DONE and page.rows == expected and [c.id for c in page.counters] == [1]


async def test_listing_without_rows_has_no_total(client: MetricaClient) -> None:
    """A listing that gives no `rows` has rows None."""
    _, page = await listing(client, {"counters": []})
    assert page == Page([], None)


@pytest.mark.parametrize(
    "body",
    [
        [{"id": 1}],
        {"counters": {"id": 1}},
        {"counters": "1,2"},
        {"rows": 1, "counter": [TOKEN]},
        f"<html>{TOKEN}</html>",
        "",
        "null",
    ],
)
async def test_a_body_that_is_not_a_listing_is_not_the_apis(client: MetricaClient, body: object) -> None:
    """A 200 whose body is not {"counters": [...]} is not the API's listing (FOREIGN bad_listing, not
    asked again), its text scrubbed."""
    answer, page = await listing(client, body)
    assert (answer.verdict, answer.error_type) == (Verdict.FOREIGN, "bad_listing") and page == Page([], None)
    assert answer.message.startswith("unexpected listing") and "not the API's" in answer.message
    assert_answer_safe(answer)


async def test_a_token_in_a_listing_never_reaches_a_counter(client: MetricaClient) -> None:
    """A token (or a piece) echoed in any listing field is removed; control characters are escaped."""
    body = {
        "counters": [
            {"id": 1, "name": f"n {TOKEN}", "site2": {"site": f"{TOKEN}.example"}, "permission": TOKEN},
            {"id": 2, "name": f"\x1b[31m{TOKEN[3:15]}\u202e", "site": TOKEN[5:], "permission": f"own{TOKEN}"},
        ]
    }
    _, page = await listing(client, body)
    assert len(page.counters) == 2
    for info in page.counters:
        for text in (info.name, info.site, info.permission):
            assert_safe(text)
    assert page.counters[0] == CounterInfo(1, f"n {MASK}", f"{MASK}.example", MASK, {})
    assert page.counters[1].name == f"\\x1b[31m{MASK}\\u202e"


@pytest.mark.parametrize(
    ("options", "states"),
    [
        ({"offline_calls_extended_threshold": True}, {Window.CALLS: True}),
        ({"offline_calls_extended_threshold": False}, {Window.CALLS: False}),
        (
            {"offline_calls_extended_threshold": True, "offline_conversion_extended_threshold": False},
            {Window.CALLS: True, Window.CONVERSIONS: False},
        ),
        ({"offline_calls_extended_threshold": "true", "offline_conversion_extended_threshold": 1}, {}),
        ({"offline_calls_extended_threshold": None}, {}),
        ({"offline_visits_extended_threshold": True}, {}),
        ([True], {}),
        ("on", {}),
        (None, {}),
    ],
)
async def test_offline_options_give_states_only_as_booleans(
    client: MetricaClient, options: object, states: dict[Window, bool]
) -> None:
    """The undocumented offline_options flags become states only when they are true booleans."""
    _, page = await listing(client, {"counters": [{"id": 1, "offline_options": options}]})
    assert dict(page.counters[0].states) == states


# --- 8. the window's state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "path"),
    [(Window.CALLS, "calls_visit_join_threshold"), (Window.CONVERSIONS, "visit_join_threshold")],
)
async def test_state_read_asks_the_right_path(client: MetricaClient, window: Window, path: str) -> None:
    """The state of each window is read with a GET on its own path."""
    with aioresponses() as m:
        m.get(STATE, payload={"date": "2026-11-01"})
        answer, since = await client.read_window_since(123, window)
        ((key, _),) = m.requests.items()
    assert answer.verdict is Verdict.DONE and since == dt.date(2026, 11, 1)
    assert key == ("GET", yarl.URL(f"{API}/counter/123/offline_conversions/{path}"))


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-01",
        "2026-11-01T00:00:00+03:00",
        "2026-11-01 10:00:00",
        "2026-11-01T23:59:59Z",
        "2026-11-01T08:00",
    ],
)
async def test_state_dates_are_read(client: MetricaClient, value: str) -> None:
    """A date or an ISO date-time gives that date."""
    answer, since = await state(client, {"date": value})
    assert answer.verdict is Verdict.DONE and since == dt.date(2026, 11, 1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"date": 5},
        {"date": None},
        {"date": "soon"},
        {"date": "2026-13-01"},
        {"date": "2026-11-01" + " " * 40},
        {"date": ["2026-11-01"]},
        {"since": "2026-11-01"},
        ["2026-11-01"],
        [],
        "2026-11-01",
        "<html>oops</html>",
        {"date": f"{TOKEN}\x1b"},
    ],
)
async def test_any_other_state_is_unexpected(client: MetricaClient, body: object) -> None:
    """Any other shape is FAILED unexpected_answer (not JSON at all: FOREIGN not_json), blaming the
    method, with a message that says what was expected."""
    answer, since = await state(client, body)
    json_body = not isinstance(body, str)
    assert (answer.verdict, answer.error_type, answer.http_status, since) == (
        Verdict.FAILED if json_body else Verdict.FOREIGN,
        "unexpected_answer" if json_body else "not_json",
        200,
        None,
    )
    assert answer.blame is Blame.METHOD
    assert answer.message.startswith('expected {"date": "YYYY-MM-DD"} or a date-time, got')
    assert_answer_safe(answer)


# --- 9. the API root ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("https://api-metrica.yandex.net/", "https://api-metrica.yandex.net"),
        ("HTTPS://API-METRIKA.YANDEX.NET", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net:443", "https://api-metrika.yandex.net:443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.5.5.5", "http://127.5.5.5"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_safe_api_roots_are_accepted(url: str, root: str) -> None:
    """An https root, or plain http to loopback, is accepted and given back without a trailing slash."""
    assert check_api_base(url) == root


@pytest.mark.parametrize(
    ("url", "hint"),
    [  # a hint ending in a space: the root shown stops there (no path carried over)
        ("https://api-metrika.yandex.net/management/v1", "https://api-metrika.yandex.net "),
        ("https://api-metrika.yandex.net//", "https://api-metrika.yandex.net "),
        ("https://api-metrika.yandex.net?x=1", "https://api-metrika.yandex.net "),
        ("https://api-metrika.yandex.net/?", "https://api-metrika.yandex.net "),
        ("https://api-metrika.yandex.net#top", "https://api-metrika.yandex.net "),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080 "),
        ("http://u:s3cretpw@127.0.0.1", "http://127.0.0.1"),
        (" https://api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net ", "https://api-metrika.yandex.net"),
        ("https://api-metrika. yandex.net", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net\n", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net\x1b[2J", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net\u202e", "https://api-metrika.yandex.net"),
        ("ftp://api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("file:///etc/passwd", "https://api-metrika.yandex.net"),
        ("ws://127.0.0.1", "https://api-metrika.yandex.net"),
        ("api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("//api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("https://", "https://api-metrika.yandex.net"),
        ("", "https://api-metrika.yandex.net"),
        ("http://api-metrika.yandex.net", "https://api-metrika.yandex.net"),
        ("http://10.0.0.1", "https://10.0.0.1"),
        ("http://localhost.example.com", "https://localhost.example.com"),
        ("https://api-metrika.yandex.net:99999", "https://api-metrika.yandex.net"),
        ("https://api-metrika.yandex.net:http", "https://api-metrika.yandex.net"),
        ("http://127.0.0.1:0", "https://api-metrika.yandex.net"),
        ("https://[::1", "https://api-metrika.yandex.net"),
    ],
)
def test_unsafe_api_roots_are_refused(url: str, hint: str) -> None:
    """Anything but an https root or a loopback http root is refused on one line showing the right form."""
    with pytest.raises(UnsafeApiBase) as refused:
        check_api_base(url)
    message = str(refused.value)
    assert refused.value.exit_code == ExitCode.USAGE and hint in message + " "
    assert "\n" not in message and "\x1b" not in message and "\u202e" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://u:s3cretpw@127.0.0.1",
        "https://s3cretpw@api-metrika.yandex.net",
        "https://u:s3cretpw@api-metrika.yandex.net/management/v1",
        "http://u:s3cretpw@127.0.0.1 ",
        "ftp://u:s3cretpw@127.0.0.1",
        "http://u:s3cretpw@127.0.0.1:99999",
        "http://u:s3cretpw@10.0.0.1",
        "http://u:s3cretpw@a@127.0.0.1",
        "https://u:s3cretpw\x1b@api-metrika.yandex.net",
    ],
)
def test_a_password_in_the_api_root_is_never_echoed(url: str) -> None:
    """Whatever else is wrong with the root, the refusal never repeats its password."""
    with pytest.raises(UnsafeApiBase) as refused:
        check_api_base(url)
    assert "s3cretpw" not in str(refused.value)


# --- 10. transport faults -------------------------------------------------------------------------

Call = Callable[[MetricaClient], Awaitable[Answer]]


async def do_write(client: MetricaClient) -> Answer:
    return (await client.switch_window(123, Window.CALLS, enable=True))[0]


async def do_read(client: MetricaClient) -> Answer:
    return (await client.read_window_since(123, Window.CALLS))[0]


async def do_list(client: MetricaClient) -> Answer:
    return (await client.list_page(1))[0]


@pytest.mark.parametrize("call", [do_write, do_read, do_list])
@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (aiohttp.ClientConnectionError("reset"), "connection_error"),
        (aiohttp.ServerDisconnectedError(), "connection_error"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "connection_error"),
        (aiohttp.ClientPayloadError("truncated"), "connection_error"),
        (TimeoutError(), "client_timeout"),
    ],
)
async def test_transport_faults_are_transient(
    client: MetricaClient, call: Call, exc: Exception, error_type: str
) -> None:
    """Connection errors and client timeouts are NO_ANSWER (retried as transient), with no HTTP status."""
    with aioresponses() as m:
        m.add(ANYWHERE, "POST", exception=exc)
        m.add(ANYWHERE, "GET", exception=exc)
        answer = await call(client)
    assert (answer.verdict, answer.http_status, answer.error_type) == (Verdict.NO_ANSWER, None, error_type)
    assert answer.verdict.transient
    assert answer.message


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_transient() -> None:
    """Nobody listening on the API root: NO_ANSWER, with no HTTP status."""
    async with open_session(5, 4) as session:
        answer = await do_write(MetricaClient(session, f"http://127.0.0.1:{closed_port()}", TOKEN))
    assert (answer.verdict, answer.http_status, answer.error_type) == (
        Verdict.NO_ANSWER,
        None,
        "connection_error",
    )


async def test_a_body_cut_short_is_transient(serve: Serve) -> None:
    """The server closes the connection halfway through the body: NO_ANSWER, not a half-read answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"success": ')
        assert request.transport is not None
        request.transport.close()
        return response

    box = await serve(handler)
    async with open_session(5, 4) as session:
        answer = await do_write(MetricaClient(session, box.base, TOKEN))
    assert (answer.verdict, answer.http_status, answer.error_type) == (
        Verdict.NO_ANSWER,
        None,
        "connection_error",
    )


async def test_a_slow_server_is_a_client_timeout(serve: Serve) -> None:
    """No answer within --timeout: NO_ANSWER client_timeout."""
    gate = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), 5)
        return web.json_response({"success": True})

    box = await serve(handler)
    async with open_session(0.05, 4) as session:
        answer = await do_write(MetricaClient(session, box.base, TOKEN))
    gate.set()
    assert (answer.verdict, answer.http_status, answer.error_type) == (
        Verdict.NO_ANSWER,
        None,
        "client_timeout",
    )


# --- 11. any answer at all ------------------------------------------------------------------------

ERROR_TYPES = [
    "backend_error",
    "timeout",
    "quota_requests_by_ip",
    "quota_parallel_requests",
    "quota_requests_by_uid",
    "quota_requests_by_counter_id",
    "invalid_token",
    "unauthorized",
    "access_denied",
    "not_found",
]
KEYS = [
    "errors",
    "error_type",
    "message",
    "code",
    "success",
    "date",
    "rows",
    "counters",
    "id",
    "name",
    "site",
    "site2",
    "permission",
    "offline_options",
    "offline_calls_extended_threshold",
]
TRICKY = [*TOKEN, "\t", "\n", "\x1b", "\x9b", "\u202e", "\u2028", "\\"]
ANY_CHARACTER = st.one_of(st.characters(exclude_categories=()), st.sampled_from([*TRICKY, "\ud800"]))
HEADER_CHARACTER = st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY))


@st.composite
def echoing(draw: st.DrawFn, alphabet: st.SearchStrategy[str] = ANY_CHARACTER) -> str:
    """Arbitrary text (surrogates and controls included), often with the token or a piece of it inside."""
    text = draw(st.text(alphabet=alphabet, max_size=40))
    secret = draw(st.sampled_from(["", TOKEN, TOKEN[:8], TOKEN[-9:], TOKEN[4:16]]))
    at = draw(st.integers(0, len(text)))
    return text[:at] + secret + text[at:]


TEXT = st.one_of(echoing(), st.sampled_from([*ERROR_TYPES, TOKEN, "2026-11-01", "own", ""]))
HEADER_TEXT = echoing(HEADER_CHARACTER)  # the mock sends headers as UTF-8: no surrogates
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), TEXT)
JSON = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), inner, max_size=4),
    ),
    max_leaves=12,
)
ERROR_BODY = st.fixed_dictionaries(
    {
        "errors": st.lists(
            st.fixed_dictionaries({}, optional={"error_type": TEXT, "message": TEXT}), max_size=2
        )
    },
    optional={"code": st.integers(100, 599), "message": TEXT},
)
COUNTER = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-3, 2**31), st.booleans(), TEXT)},
    optional={
        "name": TEXT,
        "site": TEXT,
        "site2": st.one_of(st.fixed_dictionaries({"site": TEXT}), JSON),
        "permission": TEXT,
        "offline_options": st.dictionaries(
            st.sampled_from(["offline_calls_extended_threshold", "offline_conversion_extended_threshold"]),
            JSON,
        ),
    },
)
LISTING_BODY = st.fixed_dictionaries(
    {"counters": st.lists(st.one_of(COUNTER, JSON), max_size=5)},
    optional={"rows": st.one_of(st.integers(), JSON)},
)
DATE_BODY = st.fixed_dictionaries(
    {"date": st.one_of(st.dates().map(str), st.datetimes().map(dt.datetime.isoformat), TEXT, JSON)}
)
SUCCESS_BODY = st.fixed_dictionaries({"success": st.one_of(st.booleans(), JSON)})


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A body as the wire carries it: JSON of any of the shapes the client reads, or other bytes."""
    kind = draw(st.sampled_from(["json", "error", "listing", "date", "success", "bytes", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)) + draw(st.sampled_from([b"", TOKEN.encode()]))
    if kind == "text":
        return draw(echoing()).encode("utf-8", "surrogatepass")
    strategy = {"json": JSON, "error": ERROR_BODY, "listing": LISTING_BODY, "date": DATE_BODY}.get(
        kind, SUCCESS_BODY
    )
    value = draw(strategy)
    if draw(st.booleans()):
        return json.dumps(value).encode()  # surrogates as \ud800 escapes
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")  # and as invalid UTF-8


RETRY_AFTER = st.one_of(
    HEADER_TEXT,
    st.integers(-(10**6), 10**12).map(str),
    st.floats().map(str),
    st.sampled_from(
        ["1e400", "-1e400", "nan", "inf", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 +2359"]
    ),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: email.utils.format_datetime(d, usegmt=True)),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": RETRY_AFTER,
        "Location": HEADER_TEXT,
        "Content-Type": st.one_of(st.sampled_from(["application/json", "text/html", ""]), HEADER_TEXT),
    },
)


def says_success(body: bytes) -> bool:
    """Whether a body is a JSON object with "success": true."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("success") is True


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    status=st.integers(100, 599), headers=HEADERS, body=bodies(), ulogin=st.sampled_from([None, "client-x"])
)
async def test_any_answer_gives_safe_typed_results(
    status: int, headers: dict[str, str], body: bytes, ulogin: str | None
) -> None:
    """Any status, headers and body: no exception escapes, and every text is token-free, escaped UTF-8."""
    async with aiohttp.ClientSession() as session:
        client = MetricaClient(session, BASE, TOKEN, ulogin=ulogin)
        with aioresponses() as m:
            for method in ("POST", "GET"):
                m.add(ANYWHERE, method, status=status, body=body, headers=headers, repeat=True)
            written, _ = await client.switch_window(123, Window.CALLS, enable=True)
            read, since = await client.read_window_since(123, Window.CONVERSIONS)
            listed, page = await client.list_page(1)
    for answer in (written, read, listed):
        assert_answer_safe(answer)
        assert answer.http_status == status
    assert (since is not None) == (read.verdict is Verdict.DONE)
    assert (written.verdict is Verdict.DONE) == (200 <= status < 300 and says_success(body))
    for info in page.counters:
        assert isinstance(info.id, int) and not isinstance(info.id, bool) and info.id > 0
        for text in (info.name, info.site, info.permission):
            assert_safe(text)
        assert all(isinstance(v, bool) for v in info.states.values())
