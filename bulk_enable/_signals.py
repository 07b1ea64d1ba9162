"""Every signal disposition of the process, in one place.

From the entry point's first instruction until a job starts, Ctrl-C, SIGTERM and SIGHUP end the
process as Ctrl-C does: one line, exit 130. While a job runs, the first signal sends nothing new and
lets the requests in flight finish; a second abandons them. A signal that the parent ignored when
it started us (`nohup` ignores SIGHUP, `cmd &` in a script SIGINT) stays ignored throughout: a
days-long `--until-done` job must outlive its terminal.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._interrupt import Interrupt

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_ENDING = (signal.SIGTERM, signal.SIGHUP)  # SIGINT raises KeyboardInterrupt by itself


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def end_like_ctrl_c() -> None:
    """For the life of the process: SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does."""
    for signum in _ENDING:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave it as it is
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, _interrupted)


@contextlib.contextmanager
def ended_like_ctrl_c() -> Iterator[None]:
    """`end_like_ctrl_c` for a block (an in-process caller gets its own handlers back after)."""
    before: dict[int, Callable[[int, Any], Any] | int | None] = {}
    for signum in _ENDING:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                before[signum] = signal.signal(signum, _interrupted)
    try:
        yield
    finally:
        for ending, handler in before.items():
            signal.signal(ending, handler)


@contextlib.contextmanager
def job_signals(interrupt: Interrupt) -> Iterator[None]:
    """Inside the running event loop: first signal, send nothing new; second, abandon what is in
    flight. The dispositions from before the job come back after it."""
    import asyncio

    loop = asyncio.get_running_loop()
    received = 0

    def on_signal() -> None:
        nonlocal received
        received += 1
        if received == 1:
            interrupt.request()
            fresh_line = "\n" if sys.stderr.isatty() else ""  # off the progress bar's line
            print(
                f"{fresh_line}bulk-enable: interrupted: finishing the requests in flight "
                "(again to abandon them)",
                file=sys.stderr,
            )
        elif received == 2:
            print("bulk-enable: abandoning the requests in flight; writing the report", file=sys.stderr)
            interrupt.abandon()

    installed: dict[int, Any] = {}
    for signum in SIGNALS:
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN:
            continue  # ignored by whoever started us: keep it so
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal)
            installed[signum] = previous
    try:
        yield
    finally:
        for handled, previous in installed.items():
            loop.remove_signal_handler(handled)
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(handled, previous if previous is not None else signal.SIG_DFL)
