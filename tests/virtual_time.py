"""Virtual time for asyncio tests: a wait takes no real time, and no busy machine can stretch one.

`VirtualTimeLoop` is an event loop whose clock moves only when the loop has nothing to do: then it
jumps to the next timer, plus LATE (a real timer wakes about a millisecond late, and code that keeps a
rate must not lose it to that). Work handed to a thread (`run_in_executor`) takes no virtual time:
while some runs, the loop waits for it in real time and its clock stands still. So a test measures
what the code under test decided (how long it waited, how far apart it sent) on the loop's own clock,
exactly, however slow the machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")
LATE = 0.001  # seconds: how late every timer wakes, as epoll's millisecond rounding makes real ones


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that starts at 0 (see the module's docstring)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.threads = 0  # executor jobs running: the clock waits for them
        super().__init__(_Selector(self))

    def time(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        """Work in an executor job or on the loop itself that takes `seconds` of virtual time (while a
        job runs, the loop only waits for it and never moves the clock itself)."""
        self.now += seconds

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.threads += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self.threads -= 1


class _Selector(selectors.BaseSelector):
    """The loop's selector: real file descriptors, but an idle wait is a jump of the virtual clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._real = selectors.DefaultSelector()

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._loop.threads:  # only another thread can wake the loop now
            return self._real.select(None)
        self._loop.now += timeout + LATE
        return []


def virtual_time(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on a `VirtualTimeLoop`; its fixtures and parameters stay as they are."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
            runner.run(test(*args, **kwargs))

    return run
