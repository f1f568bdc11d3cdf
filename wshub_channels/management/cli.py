"""What the hub's management commands share: the hub on the bus, and clear failures.

A command runs in a process with no server, so its hub runs in publisher mode
on the process's publisher loop (see :mod:`wshub_channels.publisher`): it
sends and asks the nodes, but never shows up as a node. :func:`run` waits a
bounded time for a coroutine there; :func:`connected_hub` starts the hub and
turns an unreachable bus into a ``CommandError`` (exit status 1 with its
message); :func:`bus_errors` does the same for what a call raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from django.core.management.base import CommandError

from ..errors import BusUnavailable, HubTimeout
from ..hub.hub import Hub, get_hub
from ..publisher import publisher_loop

__all__ = ["SLACK", "bus_errors", "connected_hub", "run"]

T = TypeVar("T")

#: Seconds a command waits on top of the hub's own timeouts before it gives up.
SLACK = 10.0


def run(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on the publisher loop; raise ``CommandError`` if it takes over ``timeout``."""
    future = asyncio.run_coroutine_threadsafe(coro, publisher_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise CommandError(f"no answer from the bus within {timeout:g}s") from None


@contextlib.contextmanager
def bus_errors() -> Iterator[None]:
    """Turn the bus failing, or a node not answering, into a ``CommandError``."""
    try:
        yield
    except BusUnavailable as exc:
        raise CommandError(f"the bus is unreachable: {exc}") from None
    except HubTimeout as exc:
        raise CommandError(f"no answer in time: {exc}") from None


async def connected_hub() -> Hub:
    """Start this process's hub; raise ``CommandError`` unless its bus is connected."""
    hub = get_hub()
    with bus_errors():
        try:
            await hub.start()
        except (ConnectionError, OSError) as exc:
            raise CommandError(f"the bus is unreachable: {exc}") from None
    status = hub.layer.bus_status()
    if hub.layer.shared and not status.connected:
        raise CommandError(f"the bus is unreachable: {status.last_error or 'not connected'}")
    return hub
