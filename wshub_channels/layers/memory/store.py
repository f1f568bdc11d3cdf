"""``MemoryStore``: normal-channel queues and stored group members on a process-local broker.

Each normal channel is one :class:`~wshub_channels.layers.channelqueue.ChannelQueue`
of the broker; stored members are kept with their deadlines and purged as
they are read. Nothing here is loop-bound.
"""

from __future__ import annotations

import time

from ..channelqueue import ChannelQueue
from ..store import BrokerStore
from .broker import MemoryBroker

__all__ = ["MemoryStore"]


class MemoryStore(BrokerStore):
    """The broker's queues and group members, as one node sees them."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__()
        self.broker = broker

    def _queue(self, channel: str, capacity: int, expiry: float) -> ChannelQueue:
        queue = self.broker.queues.get(channel)
        if queue is None:
            queue = self.broker.queues[channel] = ChannelQueue(channel, capacity, expiry)
        else:
            queue.capacity = capacity
        return queue

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        return self._queue(channel, capacity, expiry).put(data, time.monotonic())

    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        queue = self.broker.queues.get(channel)  # capacity applies at push
        if queue is None:
            queue = self.broker.queues[channel] = ChannelQueue(channel, 1 << 30, 60.0)
        data: bytes = await queue.get()
        return data

    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        self.broker.groups.setdefault(group, {})[channel] = time.monotonic() + expiry

    async def group_discard(self, group: str, channel: str) -> None:
        members = self.broker.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.broker.groups[group]

    async def group_members(self, group: str) -> list[str]:
        members = self.broker.groups.get(group)
        if not members:
            return []
        now = time.monotonic()
        for channel in [c for c, deadline in members.items() if deadline <= now]:
            del members[channel]
        return list(members)

    async def flush(self) -> None:
        for queue in self.broker.queues.values():
            queue.items.clear()
        self.broker.queues = {k: q for k, q in self.broker.queues.items() if q.waiters}
        self.broker.groups.clear()
