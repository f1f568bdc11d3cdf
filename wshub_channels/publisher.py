"""Publisher mode: one background event loop for processes with no server.

A WSGI worker, a management command, a Celery task or the shell reaches the
hub through ``async_to_sync``, which runs each call on a new, short-lived
event loop. Bus clients belong to a loop, so without help every call would
open (and leak) a connection. Instead, a call that arrives on such a
temporary loop while nothing else owns the hub is forwarded to one
process-wide daemon thread running its own loop: the publisher loop. It
owns the bus connection for the life of the process.

A loop counts as temporary when asgiref's ``AsyncToSync`` created it for one
call. Serving processes never get here: daphne and uvicorn run the hub on
their own loop, and ``async_to_sync`` in a sync view running under them
goes back to that loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from asgiref.sync import AsyncToSync

__all__ = [
    "HasHomeLoop",
    "forward",
    "is_publisher_loop",
    "is_temporary",
    "on_home_loop",
    "publisher_loop",
    "target_loop",
]

R = TypeVar("R")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def is_temporary(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop`` was made by ``async_to_sync`` for a single call."""
    executors = getattr(AsyncToSync, "loop_thread_executors", None)
    return executors is not None and loop in executors


def is_publisher_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop`` is this process's publisher loop."""
    return loop is _loop


def publisher_loop() -> asyncio.AbstractEventLoop:
    """Return the process's publisher loop, starting its thread on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="wshub-publisher", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def target_loop(
    bound: asyncio.AbstractEventLoop | None, here: asyncio.AbstractEventLoop
) -> asyncio.AbstractEventLoop:
    """Return the loop a call made on ``here`` should run on.

    ``bound`` is the loop that owns the caller's clients (None: none yet).
    A live owner wins; otherwise a temporary loop defers to the publisher
    loop, and any other loop takes ownership itself.
    """
    if bound is not None and bound.is_running() and not bound.is_closed():
        return bound
    if is_temporary(here):
        return publisher_loop()
    return here


async def forward(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on ``loop`` (another thread's) and wait for its result here."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise


def _after_fork() -> None:
    """A forked child has no publisher thread; it starts its own when needed."""
    global _loop, _lock
    _loop = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


class HasHomeLoop(Protocol):
    """An object whose coroutines belong to one event loop (None until it starts)."""

    @property
    def home_loop(self) -> asyncio.AbstractEventLoop | None: ...


S = TypeVar("S", bound=HasHomeLoop)
P = ParamSpec("P")


def on_home_loop(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Run an async method on the loop that owns its object (``self.home_loop``).

    That is the server's loop in a serving process; in a process with no
    server, calls from ``async_to_sync`` go to the publisher loop. A call made
    on the owning loop runs directly.
    """

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        here = asyncio.get_running_loop()
        home = target_loop(self.home_loop, here)
        if home is here:
            return await method(self, *args, **kwargs)
        return await forward(home, method(self, *args, **kwargs))

    functools.update_wrapper(wrapper, method)
    return wrapper
