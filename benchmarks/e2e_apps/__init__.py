"""Small servers for ``benchmarks/e2e_broadcast.py``.

Every server here speaks the same protocol, so one client drives them all:

- ``/ws/bench/``: a member. The server puts it in the room (or group) ``bench``
  and then sends it the text frame ``ready``. After that it only receives the
  broadcasts, each a text frame ``"<seq> <time.time() at broadcast> <padding>"``.
- ``/ws/control/``: the trigger, never a member. It takes text commands:

  - ``count`` -> ``count <n>``: members in the room as the server sees them
    (``-1`` where a stock channel layer cannot tell; on a cluster, this node's);
  - ``go <k> <size>`` -> k broadcasts back to back, each one call, each message
    padded to ``size`` characters; then ``done <seconds the k calls took> <errors>``;
  - ``go <k> <size> <pace ms>`` -> the same, paced when ``pace ms`` > 0 (see
    ``Pacer``): call i is due ``i * pace`` after the first, and the server sleeps
    (``asyncio.sleep``, its loop free meanwhile) until then; the reply then has a
    fourth field, the most seconds any call started behind its due time. A pace of
    0 is the same as leaving it out;
  - ``mark <word>`` -> ``marked``: the server writes ``MARK_PREFIX <word>`` to its
    stderr, so its log can be split into "during the run" and "teardown".

Modules: ``hub_asgi`` (a ``HubConsumer`` on ``InMemoryHubLayer``, settings in
``settings_hub``; on ``RedisHubLayer`` with ``settings_hub_redis``, on
``NatsHubLayer`` with ``settings_hub_nats``), ``stock_asgi``
(stock ``AsyncWebsocketConsumer`` on the layer ``E2E_LAYER`` names, settings in
``settings_stock``) and ``raw_server`` (a script on ``websockets.asyncio.server``
with ``broadcast()``).

Importing this package raises the soft limit of open files to the hard limit,
so every server process can hold thousands of sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable

ROOM = "bench"
BENCH_PATH = "ws/bench/"
CONTROL_PATH = "ws/control/"


def raise_nofile_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; return (soft, hard) after."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def payload(seq: int, size: int) -> str:
    """One broadcast message, stamped with the wall clock now."""
    head = f"{seq} {time.time():.6f} "
    return head + "x" * (size - len(head)) if size > len(head) else head


MARK_PREFIX = "=== e2e_broadcast mark:"


def mark(text: str) -> str:
    """Write a mark line to stderr (the server log); return the reply for the client."""
    import sys

    word = text.split(maxsplit=1)[1] if " " in text else ""
    print(f"{MARK_PREFIX} {word[:40]}", file=sys.stderr, flush=True)
    return "marked"


def parse_go(text: str) -> tuple[int, int, float] | None:
    """``(k, size, pace in seconds)`` from ``"go <k> <size> [<pace ms>]"``, or None."""
    parts = text.split()
    if len(parts) not in (3, 4) or parts[0] != "go":
        return None
    try:
        k, size = int(parts[1]), int(parts[2])
        pace = float(parts[3]) / 1000 if len(parts) == 4 else 0.0
    except ValueError:
        return None
    if not pace >= 0 or pace == float("inf"):  # NaN, negative or infinite
        return None
    return k, size, pace


class Pacer:
    """Start-to-start pacing of the k broadcast calls of one ``go``.

    The first call starts at once; call i is due ``i * pace`` seconds after it.
    ``await pacer.wait(i)`` before call i sleeps until then, so the event loop
    serves everything else meanwhile. A call that is due already (the previous
    one ran long) starts at once: a server that falls behind catches up rather
    than lowering the offered rate. ``late`` keeps the most any call started
    behind its due time, sleep overshoot included. Only await it when pacing:
    unpaced calls must run back to back, without yielding in between.
    """

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.first: float | None = None
        self.late = 0.0

    async def wait(self, seq: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            return
        due = self.first + seq * self.pace
        if now < due:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        self.late = max(self.late, now - due)

    def done(self, elapsed: float, errors: int) -> str:
        """The reply to ``go``: ``done <seconds> <errors>`` [``<late seconds>`` if paced]."""
        text = f"done {elapsed:.6f} {errors}"
        return f"{text} {self.late:.6f}" if self.pace > 0 else text


async def run_go(
    go: tuple[int, int, float], send: Callable[[str], Awaitable[object] | object]
) -> str:
    """Run a parsed ``go``: k calls of ``send(payload)``, paced if asked; return the reply.

    ``send`` is the server's one broadcast call; a plain function (``websockets``'
    ``broadcast``) runs without yielding, a coroutine function is awaited.
    """
    k, size, pace = go
    pacer = Pacer(pace)
    errors = 0
    started = time.perf_counter()
    for seq in range(k):
        if pace:
            await pacer.wait(seq)
        try:
            result = send(payload(seq, size))
            if inspect.isawaitable(result):
                await result
        except Exception:
            errors += 1
    return pacer.done(time.perf_counter() - started, errors)


raise_nofile_limit()
