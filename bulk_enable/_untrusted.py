"""Every text that comes from the network is untrusted; `Scrubber.clean` makes it safe to keep.

One function for every such text (error types, messages, listing fields, header values, exception
texts): invalid UTF-8 and lone surrogates are replaced, the run's tokens are removed (and any piece of
one 8 characters or longer) *before* the text is cut, control and invisible formatting characters are
escaped, and the length is capped. What it returns is safe for a terminal, a log line, the journal,
a CSV cell and a workbook.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import unquote

REPORT_LIMIT = 500  # characters of one untrusted text in a report or the journal
TERMINAL_LIMIT = 160  # on the terminal, where a line should stay a line
SECRET_PIECE = 8  # any run of this many characters of a token is a leak
MASK = "***"

SURROGATE = re.compile("[\ud800-\udfff]")  # lone halves of a UTF-16 pair: unprintable, unwritable
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet cell starting so is read as a formula
# C0, DEL, C1, and the invisible format characters that can reorder or hide text (bidi overrides,
# zero-width, line and paragraph separators, tags).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What a spreadsheet cell cannot carry as it is (the xlsx writer escapes the same): C0 controls other than
# tab and the line breaks, and the noncharacters U+FFFE and U+FFFF.
_NOT_IN_A_CELL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escaped(text: str) -> bool:
    """True when `text` has no character `Scrubber.clean` would escape: it may have come from it."""
    return _UNSAFE.search(text) is None


def cell_text(text: str) -> str:
    """`text` with what a spreadsheet cell cannot carry (a NUL, U+FFFF...) escaped as `clean` escapes it."""
    return _NOT_IN_A_CELL.sub(_escape, text)


class Scrubber:
    """Cleans untrusted text for one run, knowing the run's secrets (its tokens)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pieces = {
            s[i : i + SECRET_PIECE] for s in self._secrets for i in range(len(s) - SECRET_PIECE + 1)
        }

    def clean(self, value: object, limit: int = REPORT_LIMIT) -> str:
        """`value` (bytes, text or a JSON value) as safe text of at most `limit` characters."""
        text = _as_text(value)
        # Bound the work before scrubbing: what lies past this point is dropped, and a token piece cut
        # here keeps fewer than SECRET_PIECE characters. Masking can shorten the rest below the cap,
        # so `cut` remembers to end the text with the ellipsis all the same.
        cut = len(text) > limit * 4 + 64
        text = text[: limit * 4 + 64]
        text = SURROGATE.sub("\ufffd", _decoded(text))
        text = self.scrub(text)
        escaped = _UNSAFE.sub(_escape, text)
        if escaped != text:
            # An escape can complete a piece: a tab before "est-tok" reads "\\test-tok".
            text = self.scrub(escaped)
        if cut or len(text) > limit:
            text = text[: limit - 1].rstrip("\\") + "…" if limit > 0 else ""
        return text

    def scrub(self, text: str) -> str:
        """Replace every token, and every piece of one of SECRET_PIECE characters or more."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if not self._pieces or len(text) < SECRET_PIECE:
            return text
        marked = [False] * len(text)
        found = False
        for i in range(len(text) - SECRET_PIECE + 1):
            if text[i : i + SECRET_PIECE] in self._pieces:
                marked[i : i + SECRET_PIECE] = [True] * SECRET_PIECE
                found = True
        if not found:
            return text
        out: list[str] = []
        for i, ch in enumerate(text):
            if not marked[i]:
                out.append(ch)
            elif i == 0 or not marked[i - 1]:
                out.append(MASK)
        return "".join(out)


_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")


def _decoded(text: str) -> str:
    """Undo percent-encoding and \\u/\\x escapes (a few rounds), so an encoded token is seen, and scrubbed."""
    for _ in range(3):
        if not _ENCODED.search(text):
            break
        text = _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), unquote(text))
    return text


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
    except RecursionError:  # JSON nested about as deep as Python allows
        return f"<deeply nested {type(value).__name__}>"


PLAIN = Scrubber()  # for texts when no secret is known yet (still escaped and capped)
