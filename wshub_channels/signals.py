"""Django signals the hub sends. The sender is the consumer class.

Keyword arguments are named after what they carry: ``client``, ``message``,
``room``, ``data``, ``code``, ``error``, ``node``, ``state``. Sync and async
receivers both work. A receiver that raises is logged and never harms a
connection (see :func:`fire`). Signals are sent only when they have
listeners, so an unused signal costs one check.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "client_connected",
    "client_disconnected",
    "fire",
    "has_listeners",
    "hub_error",
    "hub_state_changed",
    "message_received",
    "node_joined",
    "node_left",
    "room_joined",
    "room_left",
    "send_dropped",
]

logger = logging.getLogger("wshub_channels.signals")

client_connected = Signal()  # client
client_disconnected = Signal()  # client, code
message_received = Signal()  # client, message
room_joined = Signal()  # client, room
room_left = Signal()  # client, room
send_dropped = Signal()  # client, data
hub_error = Signal()  # client (or None), error
node_joined = Signal()  # node
node_left = Signal()  # node
hub_state_changed = Signal()  # state


def has_listeners(signal: Signal, sender: Any) -> bool:
    """Return True if ``signal`` has receivers for ``sender``.

    Cheap when nothing is connected (one attribute check); Django's own
    ``has_listeners`` takes a lock and costs close to a microsecond.
    """
    return bool(signal.receivers) and signal.has_listeners(sender)


async def fire(signal: Signal, sender: Any, **kwargs: Any) -> int:
    """Send ``signal`` if it has listeners; log receivers that raise.

    Returns the number of receivers that raised, so callers can count them.
    """
    if not has_listeners(signal, sender):
        return 0
    failures = 0
    for receiver, result in await signal.asend_robust(sender, **kwargs):
        if isinstance(result, Exception):
            failures += 1
            logger.error(
                "signal receiver %r raised", receiver, exc_info=(type(result), result, None)
            )
    return failures
