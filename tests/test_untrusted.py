"""Scrubber.clean: network text loses the token (and any 8-character piece of it), is valid UTF-8, shows
control and invisible characters as visible escapes, and stays within its length cap."""

from __future__ import annotations

import functools
import os
import sys
import unicodedata
import urllib.parse
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_enable._untrusted import MASK, PLAIN, REPORT_LIMIT, SECRET_PIECE, Scrubber

from .conftest import TOKEN

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FUZZ = settings(
    max_examples=int(os.environ.get("BULK_ENABLE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SCRUB = Scrubber([TOKEN])


def pieces(secret: str = TOKEN, size: int = SECRET_PIECE) -> list[str]:
    """Every run of `size` characters of the secret."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def leaks(text: str) -> list[str]:
    """The pieces of TOKEN (8 characters or more) that `text` still holds."""
    return [p for p in pieces() if p in text]


def unsafe(text: str) -> list[str]:
    """Characters a terminal, log or cell would act on or hide: controls, format, separators, surrogates."""
    return [ch for ch in text if unicodedata.category(ch) in UNSAFE_CATEGORIES]


@functools.cache
def every_unsafe_code_point() -> str:
    """Each code point of the categories above that this Python's Unicode database knows."""
    return "".join(
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in UNSAFE_CATEGORIES
    )


# --- the token --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        TOKEN,
        f"Invalid oauth_token {TOKEN}.",
        f"{TOKEN}{TOKEN}",
        f"a={TOKEN}&b={TOKEN}",
        f"prefix {TOKEN[:8]} only",
        f"suffix {TOKEN[-8:]} only",
        f"middle {TOKEN[6:14]} only",
        f"long middle {TOKEN[3:19]} piece",
        f"{TOKEN[:10]}\x00{TOKEN[10:]}",  # split by a control character: both halves are 8+
        f"{TOKEN[:12]}\ud800{TOKEN[12:]}",  # split by a lone surrogate
        f"{TOKEN[:-1]}",
    ],
)
def test_the_token_and_every_piece_of_it_are_removed(text: str) -> None:
    """The whole token, and any prefix, suffix or middle piece of 8+ characters, leaves the text."""
    out = SCRUB.clean(text)
    assert leaks(out) == [] and MASK in out


@pytest.mark.parametrize("start", [*range(480, 512, 3), 498, 499, 500, 501])
@pytest.mark.parametrize("limit", [REPORT_LIMIT, 200])
def test_the_token_is_removed_before_the_text_is_cut(start: int, limit: int) -> None:
    """A token straddling the length cap does not leave its first 8+ characters behind the cut."""
    text = "x" * (start - (REPORT_LIMIT - limit)) + TOKEN + "y" * 600
    out = SCRUB.clean(text, limit)
    assert leaks(out) == [] and len(out) <= limit and out.endswith("…")


def test_a_seven_character_piece_may_remain() -> None:
    """The documented limit: a run shorter than SECRET_PIECE is not a recognisable piece and stays."""
    short = TOKEN[: SECRET_PIECE - 1]
    assert SCRUB.clean(f"[{short}]") == f"[{short}]"


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("\t" + TOKEN[1:8], TOKEN[:8]),  # a tab escapes to "\t": its "t" completes "test-tok"
        ("\n" + TOKEN[10:17], TOKEN[9:17]),  # a newline escapes to "\n": its "n" completes "n-7f3a9c"
    ],
)
def test_an_escape_cannot_complete_a_piece_of_the_token(text: str, piece: str) -> None:
    """Seven characters of the token after a control character whose escape ends in the eighth: no leak."""
    out = SCRUB.clean(text)
    assert piece not in out and leaks(out) == [] and "\\" in out


@pytest.mark.parametrize("secrets", [[TOKEN, "second-secret-token"], ["second-secret-token", TOKEN]])
def test_every_secret_of_the_run_is_removed(secrets: list[str]) -> None:
    """A scrubber knows all the run's tokens, whatever their order."""
    out = Scrubber(secrets).clean(f"{secrets[0]} and {secrets[1][2:12]}")
    assert out == f"{MASK} and {MASK}"


def test_a_short_secret_is_removed_whole() -> None:
    """A secret shorter than SECRET_PIECE has no pieces, but the whole of it is still removed."""
    assert Scrubber(["abc", ""]).clean("x abc y") == f"x {MASK} y"


# --- encoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bad \ud800", "bad \ufffd"),
        ("bad \udfff end", "bad \ufffd end"),
        (b"bad \xff\xfe", "bad \ufffd\ufffd"),
        (b"half \xd0", "half \ufffd"),
        ({"message": "bad \udc80"}, '{"message": "bad \ufffd"}'),
    ],
)
def test_invalid_text_becomes_the_replacement_character(value: object, expected: str) -> None:
    """Lone surrogates and invalid UTF-8 become U+FFFD, and the result encodes as UTF-8."""
    out = SCRUB.clean(value)
    assert out == expected
    out.encode("utf-8")


# --- escaping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\tend", "tab\\tend"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b2J", "csi\\x9b2J"),
        ("abc\u202edef", "abc\\u202edef"),
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("\u2067\u2068", "\\u2067\\u2068"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("para\u2029sep", "para\\u2029sep"),
        ("bom\ufeff", "bom\\ufeff"),
        ("soft\u00adhyphen", "soft\\xadhyphen"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("pound\u0890", "pound\\u0890"),
        ("kaithi\U000110cd", "kaithi\\U000110cd"),
        ("hieroglyph\U00013430", "hieroglyph\\U00013430"),
        ("Счётчик №1 — ok", "Счётчик №1 — ok"),
    ],
)
def test_control_and_invisible_characters_are_shown_escaped(raw: str, shown: str) -> None:
    """Terminal escapes, line breaks, bidi overrides, zero-width and separators appear as visible text."""
    out = SCRUB.clean(raw)
    assert out == shown and unsafe(out) == []


def test_no_unsafe_code_point_passes_raw() -> None:
    """Every Cc, Cf, Zl, Zp and Cs code point this Python knows comes out escaped or replaced."""
    everything = every_unsafe_code_point()
    out = PLAIN.clean(everything, 20 * len(everything))
    assert unsafe(out) == [] and not out.endswith("…")


# --- length ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 2, 8, 40, 160, 500])
@pytest.mark.parametrize(
    "text",
    ["a" * 2000, "\x1b" * 2000, "\U000e0041" * 2000, "ab\\" * 700, f"{TOKEN} " * 200, "é" * 900],
)
def test_the_length_cap_holds_after_escaping(text: str, limit: int) -> None:
    """However much escaping lengthens the text, the result fits the cap and a cut ends with an ellipsis."""
    out = SCRUB.clean(text, limit)
    assert len(out) <= limit
    assert out.endswith("…") if limit else out == ""


@pytest.mark.parametrize(
    ("text", "shown"), [("", ""), ("short", "short"), ("x" * 500, "x" * 500), ("\x1b" * 125, "\\x1b" * 125)]
)
def test_text_within_the_cap_is_not_cut(text: str, shown: str) -> None:
    """Text that fits (after escaping) comes back whole, without an ellipsis."""
    assert SCRUB.clean(text, 500) == shown


# --- input types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"bytes", "bytes"),
        (bytearray(b"array"), "array"),
        ("text", "text"),
        ({"error": TOKEN, "n": 1}, f'{{"error": "{MASK}", "n": 1}}'),
        (["Счётчик", 2, None], '["Счётчик", 2, null]'),
        (None, ""),
        (42, "42"),
        (frozenset({3}), "frozenset({3})"),  # not JSON: shown as Python text
    ],
)
def test_every_kind_of_input_becomes_text(value: object, expected: str) -> None:
    """bytes, str, JSON values (dict, list) and None all become safe text."""
    assert SCRUB.clean(value) == expected


# --- properties -----------------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates and controls included
TRICKY = st.sampled_from([*TOKEN, "\t", "\n", "\r", "\x1b", "\x9b", "\u202e", "\u2028", "\\", "\ud800", "*"])
TEXT = st.text(alphabet=st.one_of(ANY_CHARACTER, TRICKY), max_size=700)


@FUZZ
@given(
    before=TEXT,
    after=TEXT,
    piece=st.sampled_from([TOKEN, *pieces(), *pieces(size=SECRET_PIECE + 3)]),
    limit=st.integers(1, 600),
)
def test_any_text_with_the_token_comes_out_safe(before: str, after: str, piece: str, limit: int) -> None:
    """Any text with the token (or a piece) inside: no 8-char piece, nothing unsafe, UTF-8, within the cap."""
    out = SCRUB.clean(before + piece + after, limit)
    assert leaks(out) == []
    assert unsafe(out) == []
    out.encode("utf-8")
    assert len(out) <= limit


@FUZZ
@given(before=st.binary(max_size=700), after=st.binary(max_size=700), limit=st.integers(1, 600))
def test_any_bytes_with_the_token_come_out_safe(before: bytes, after: bytes, limit: int) -> None:
    """The same for raw bytes, as a body arrives: no piece of the token, nothing unsafe, within the cap."""
    out = SCRUB.clean(before + TOKEN.encode() + after, limit)
    assert leaks(out) == [] and unsafe(out) == [] and len(out) <= limit
    out.encode("utf-8")


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: urllib.parse.quote(t, safe=""),
        lambda t: "".join(f"%{ord(c):02X}" for c in t),
        lambda t: "".join(f"%25{ord(c):02X}" for c in t),  # encoded twice
        lambda t: "".join(f"\\u{ord(c):04x}" for c in t),
        lambda t: "".join(f"\\x{ord(c):02x}" for c in t),
    ],
)
def test_an_encoded_token_is_decoded_then_scrubbed(encode: Callable[[str], str]) -> None:
    """A token percent-encoded (once or twice) or written in \\u/\\x escapes cannot be read back either."""
    out = Scrubber([TOKEN]).clean(f"http://evil.example/?t={encode(TOKEN)}&x=1")
    assert TOKEN[:8] not in urllib.parse.unquote(urllib.parse.unquote(out))
    assert MASK in out
