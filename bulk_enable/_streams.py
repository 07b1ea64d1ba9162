"""stdout and stderr, hardened: data and the summary go to stdout, diagnostics to stderr, and a
stream that is closed, full or gone never turns a finished job into a crash or a wrong exit code.

With `--json`, every exit prints exactly one JSON object on stdout: the summary, or, when the
command ends before it has one, `{"command", "exit_code", "error"}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

PREFIX = "bulk-enable: "
_json_written = False


def say(text: str) -> None:
    """Diagnostic lines on stderr, each with the tool's name."""
    for line in text.splitlines() or [""]:
        print(f"{PREFIX}{line}", file=sys.stderr)


def standard_streams() -> None:
    """A stream closed before the start (`>&-`, `2>&-`) is None in Python: write those to nowhere
    rather than fail on the first print after the job is done. And stderr only carries diagnostics:
    one that cannot be written (a full disk, a reader gone) is dropped, never turned into a crash."""
    global _json_written
    _json_written = False
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    if not isinstance(sys.stderr, _Diagnostics):
        sys.stderr = _Diagnostics(sys.stderr)


class _Diagnostics:
    """stderr, best effort: writes that fail are dropped (the exit code and the report say it all)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):  # ValueError: written after a close
            return int(self._stream.write(text))
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


def quiet_stdout() -> None:
    """stdout to /dev/null from now on (so the interpreter's last flush cannot fail either)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def write_stdout(text: str) -> OSError | None:
    """Write `text` to stdout; a reader gone or a full disk is returned, not raised."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        quiet_stdout()
        return e
    return None


def write_json(document: dict[str, object]) -> OSError | None:
    """The one JSON object of this exit, on stdout."""
    global _json_written
    _json_written = True
    return write_stdout(json.dumps(document, ensure_ascii=False) + "\n")


def tell(line: str) -> None:
    """Lines on stdout that only confirm what is done on disk: losing them loses nothing (the first is
    said on stderr instead)."""
    lost = write_stdout(line + "\n")
    if lost is not None and not isinstance(lost, BrokenPipeError):
        first = line.splitlines()[0] if line else ""
        say(f"cannot write to stdout ({lost.strerror or lost}); done all the same: {first}")


def wants_json(argv: list[str]) -> bool:
    """`--json` among the options (before a `--`)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def command_of(argv: list[str]) -> str | None:
    """The first word that is not an option: the command, as far as one can tell without a parser."""
    return next((a for a in argv if not a.startswith("-")), None)


def fail(argv: list[str], code: int, lines: list[str], command: str | None = None) -> int:
    """An exit without a summary: the lines on stderr and, with `--json`, the one JSON object. A line
    that already names the program (`bulk-enable run: ...`) is not named again."""
    for line in lines:
        if line.startswith("bulk-enable"):
            print(line, file=sys.stderr)
        else:
            say(line)
    if wants_json(argv) and not _json_written:
        shown = command or command_of(argv)
        write_json({"command": shown, "exit_code": int(code), "error": "\n".join(lines)})
    return code
