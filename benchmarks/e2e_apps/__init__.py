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
  - ``mark <word>`` -> ``marked``: the server writes ``MARK_PREFIX <word>`` to its
    stderr, so its log can be split into "during the run" and "teardown".

Modules: ``hub_asgi`` (a ``HubConsumer`` on ``InMemoryHubLayer``, settings in
``settings_hub``; on ``RedisHubLayer`` with ``settings_hub_redis``), ``stock_asgi``
(stock ``AsyncWebsocketConsumer`` on the layer ``E2E_LAYER`` names, settings in
``settings_stock``) and ``raw_server`` (a script on ``websockets.asyncio.server``
with ``broadcast()``).

Importing this package raises the soft limit of open files to the hard limit,
so every server process can hold thousands of sockets.
"""

from __future__ import annotations

import contextlib
import time

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


def parse_go(text: str) -> tuple[int, int] | None:
    """``(k, size)`` from ``"go <k> <size>"``, or None."""
    parts = text.split()
    if len(parts) == 3 and parts[0] == "go":
        try:
            return int(parts[1]), int(parts[2])
        except ValueError:
            return None
    return None


raise_nofile_limit()
