"""Receivers of the hub's signals: keep the room list live, and log who comes and goes.

Signals fire on the hub's loop for clients of this node. The receivers are
``async def``, so they run on that loop (a sync receiver would run in a
thread). One that raised would be logged and would harm no connection.
"""

from __future__ import annotations

import logging
from typing import Any

from wshub_channels import signals

from .directory import directory_for

__all__ = ["connect"]

logger = logging.getLogger("demo_project.chat")


def _poke(client: Any) -> None:
    hub = getattr(client, "hub", None)
    if hub is not None and hub.running:
        directory_for(hub).poke()


async def room_changed(sender: Any, client: Any, room: str, **kwargs: Any) -> None:
    _poke(client)


async def connected(sender: Any, client: Any, **kwargs: Any) -> None:
    logger.info("%s connected as %r", client.id, client.user_id)


async def disconnected(sender: Any, client: Any, code: int, **kwargs: Any) -> None:
    logger.info("%s (%r) disconnected with code %s", client.id, client.user_id, code)
    _poke(client)


async def hub_error(sender: Any, error: Exception, client: Any = None, **kwargs: Any) -> None:
    if client is None:  # the hub's own trouble (a bus outage, ...); client errors reach on_error
        logger.warning("hub error: %s: %s", type(error).__name__, error)


def connect() -> None:
    """Connect the receivers (idempotent: each has a ``dispatch_uid``)."""
    signals.room_joined.connect(room_changed, dispatch_uid="chat.room_joined")
    signals.room_left.connect(room_changed, dispatch_uid="chat.room_left")
    signals.client_connected.connect(connected, dispatch_uid="chat.connected")
    signals.client_disconnected.connect(disconnected, dispatch_uid="chat.disconnected")
    signals.hub_error.connect(hub_error, dispatch_uid="chat.hub_error")
