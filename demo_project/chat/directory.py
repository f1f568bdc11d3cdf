"""The room list with live counts, for the whole cluster, pushed to this node's pages.

Room names come from every node's presence heartbeat (``hub.nodes()``), the
counts from the same table (or ``hub.global_room_count`` while the table is
still filling), so rooms made on another node appear here too. Joins and
leaves on this node poke the directory through the ``room_joined``,
``room_left`` and ``client_disconnected`` signals (``receivers.py``) and the
new list goes out at once; other nodes' changes arrive with their next
heartbeat, so they show within one ``PRESENCE_INTERVAL``.

One directory per hub, running on the hub's loop; its list is encoded once
and sent to each local connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from wshub_channels import Hub, HubError
from wshub_channels.connection.consumer import dump_json

from .protocol import DEFAULT_ROOMS, MEMBERS_ROOM

__all__ = ["RoomDirectory", "directory_for", "room_listing"]

logger = logging.getLogger("demo_project.chat")

#: How often the list is looked at again without a poke (other nodes' changes).
REFRESH = 1.0
#: How long a poke waits for more changes, so a burst of joins is one push.
SETTLE = 0.05
#: The most rooms listed.
MAX_LISTED = 50


async def room_listing(hub: Hub) -> list[dict[str, Any]]:
    """``[{"name", "count", "login"}]``: the default rooms and every room with members."""
    infos = await hub.nodes()
    names = set(DEFAULT_ROOMS) | set(hub.room_names())
    for info in infos:
        names.update(info.rooms)
    others = [info for info in infos if info.node_id != hub.node_id]
    if all(len(info.rooms) >= info.room_count for info in others):  # every table complete
        counts = {
            name: hub.room_count(name) + sum(info.rooms.get(name, 0) for info in others)
            for name in names
        }
    else:  # the table is still filling (a gathered node lists only its largest rooms)
        counts = {name: await hub.global_room_count(name) for name in names}
    ordered = sorted(names, key=lambda name: (name not in DEFAULT_ROOMS, -counts[name], name))
    return [
        {"name": name, "count": counts[name], "login": name == MEMBERS_ROOM}
        for name in ordered[:MAX_LISTED]
    ]


class RoomDirectory:
    """Keeps the room list of one hub and pushes it to the hub's clients when it changes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.loop = asyncio.get_running_loop()
        self.listing: list[dict[str, Any]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="chat room directory")

    def poke(self) -> None:
        """Something changed on this node: look again now."""
        self._wake.set()

    async def current(self) -> list[dict[str, Any]]:
        """The list as last pushed (computed now if there is none yet)."""
        if self.listing is None:
            self.listing = await room_listing(self.hub)
        return self.listing

    async def _run(self) -> None:
        while self.hub.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), REFRESH)
            if self._wake.is_set():
                await asyncio.sleep(SETTLE)
                self._wake.clear()
            try:
                listing = await room_listing(self.hub)
            except HubError as exc:  # a bus outage: keep the last list, try again later
                logger.warning("room list not refreshed: %s", exc)
                continue
            if listing != self.listing:
                self.listing = listing
                await self._push(listing)

    async def _push(self, listing: list[dict[str, Any]]) -> None:
        payload = dump_json({"type": "rooms", "rooms": listing})
        for client in self.hub.clients():
            with contextlib.suppress(HubError):
                await client.send_text(payload)


_directories: weakref.WeakKeyDictionary[Hub, RoomDirectory] = weakref.WeakKeyDictionary()


def directory_for(hub: Hub) -> RoomDirectory:
    """The directory of ``hub`` on the running loop (made, and started, on first use)."""
    directory = _directories.get(hub)
    if directory is None or directory.loop is not asyncio.get_running_loop():
        directory = _directories[hub] = RoomDirectory(hub)
    directory.ensure_running()
    return directory
