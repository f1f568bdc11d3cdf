"""``InMemoryHubLayer``: the shared core over a process-local bus.

The embedded default: no server is needed. Each layer instance has a private
bus unless ``CONFIG["bus"]`` names one; instances naming the same bus share
it as if they were nodes of one cluster (subjects, requests, normal-channel
queues and stored memberships), which lets the multi-node logic of the core
run in a single process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .base import HubLayer
from .channelqueue import ChannelQueue
from .transport import BusStatus, NoResponders, Transport

__all__ = ["InMemoryHubLayer", "MemoryBus", "MemoryTransport"]

logger = logging.getLogger("wshub_channels.layers")


class MemoryBus:
    """Process-local pub/sub, request and queue store shared by its transports."""

    _named: dict[str, MemoryBus] = {}

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self.nodes: dict[int, MemoryTransport] = {}
        self.subscriptions: dict[str, set[MemoryTransport]] = {}
        self.queues: dict[str, ChannelQueue] = {}
        self.groups: dict[str, dict[str, float]] = {}

    @classmethod
    def named(cls, name: str) -> MemoryBus:
        """Return the process-wide bus called ``name``, creating it on first use."""
        bus = cls._named.get(name)
        if bus is None:
            bus = cls._named[name] = cls(shared=True)
        return bus


class MemoryTransport(Transport):
    """A transport whose publishes are synchronous calls into subscribed transports."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__()
        self.bus = bus
        self.shared = bus.shared
        self.subjects: set[str] = set()
        self.connected = False

    async def connect(self) -> None:
        self.bus.nodes[id(self)] = self
        self.connected = True

    async def close(self) -> None:
        for subject in list(self.subjects):
            await self.unsubscribe(subject)
        self.bus.nodes.pop(id(self), None)
        self.connected = False

    def status(self) -> BusStatus:
        return BusStatus(connected=self.connected)

    async def publish(self, subject: str, data: bytes) -> None:
        """Hand ``data`` to every subscriber; one that fails never stops the others."""
        for transport in tuple(self.bus.subscriptions.get(subject, ())):
            try:
                transport.sink(subject, data)
            except (ValueError, TypeError) as exc:
                transport.report("bad_frame", exc)
            except Exception:
                logger.exception("delivering a message from %s failed", subject)

    async def publish_group(self, subject: str, data: bytes, group: str) -> list[str]:
        await self.publish(subject, data)
        return await self.store_group_members(group)

    async def subscribe(self, subject: str) -> None:
        self.bus.subscriptions.setdefault(subject, set()).add(self)
        self.subjects.add(subject)

    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        subscribers = self.bus.subscriptions.get(subject)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self.bus.subscriptions[subject]

    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        handlers = [
            t.request_handler
            for t in tuple(self.bus.subscriptions.get(subject, ()))
            if t is not self and t.request_handler is not None
        ]
        if not handlers:
            raise NoResponders(subject)
        tasks = [asyncio.ensure_future(handler(subject, data)) for handler in handlers]
        replies: list[bytes] = []
        try:
            for next_done in asyncio.as_completed(tasks, timeout=timeout):
                reply = await next_done
                if reply is not None:
                    replies.append(reply)
                    if max_replies is not None and len(replies) >= max_replies:
                        break
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
        return replies

    def _queue(self, channel: str, capacity: int, expiry: float) -> ChannelQueue:
        queue = self.bus.queues.get(channel)
        if queue is None:
            queue = self.bus.queues[channel] = ChannelQueue(channel, capacity, expiry)
        else:
            queue.capacity = capacity
        return queue

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        return self._queue(channel, capacity, expiry).put(data, time.monotonic())

    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        queue = self.bus.queues.get(channel)  # capacity applies at push
        if queue is None:
            queue = self.bus.queues[channel] = ChannelQueue(channel, 1 << 30, 60.0)
        data: bytes = await queue.get()
        return data

    async def store_group_add(self, group: str, channel: str, expiry: float) -> None:
        self.bus.groups.setdefault(group, {})[channel] = time.monotonic() + expiry

    async def store_group_discard(self, group: str, channel: str) -> None:
        members = self.bus.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.bus.groups[group]

    async def store_group_members(self, group: str) -> list[str]:
        members = self.bus.groups.get(group)
        if not members:
            return []
        now = time.monotonic()
        for channel in [c for c, deadline in members.items() if deadline <= now]:
            del members[channel]
        return list(members)

    async def flush(self) -> None:
        for queue in self.bus.queues.values():
            queue.items.clear()
        self.bus.queues = {k: q for k, q in self.bus.queues.items() if q.waiters}
        self.bus.groups.clear()


class InMemoryHubLayer(HubLayer):
    """The hub layer on a process-local bus; the embedded default.

    Takes every :class:`~wshub_channels.layers.base.HubLayer` option plus
    ``bus``: the name of a process-wide bus to share with other instances
    (default: a private bus, like Channels' ``InMemoryChannelLayer``).
    """

    def __init__(self, bus: str | None = None, **kwargs: Any) -> None:
        self.bus = MemoryBus.named(bus) if bus else MemoryBus(shared=False)
        super().__init__(**kwargs)

    def make_transport(self) -> Transport:
        return MemoryTransport(self.bus)
