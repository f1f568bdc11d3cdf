"""A second in-memory backend, written only against the public contracts: a test fixture.

It shows what adding a backend takes: a :class:`~wshub_channels.layers.Bus`
(:class:`DictBus`, publish/subscribe over a dict of subscribers), a
:class:`~wshub_channels.layers.BrokerStore` (:class:`DictStore`, queues in
``asyncio.Queue`` and members in a dict), and a
:class:`~wshub_channels.layers.HubLayer` whose ``make_backend`` builds them.
Nothing outside this file changes for it; it imports only the layers' face.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from wshub_channels.layers import Backend, BrokerStore, Bus, BusStatus, HubLayer, NoResponders

__all__ = ["DictHubLayer", "DictNet"]


class DictNet:
    """What the nodes of one in-process cluster share: subscribers, queues and groups."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[DictBus]] = {}
        self.queues: dict[str, asyncio.Queue[tuple[float, bytes]]] = {}
        self.groups: dict[str, dict[str, float]] = {}


class DictBus(Bus):
    shared = True

    def __init__(self, net: DictNet) -> None:
        super().__init__()
        self.net = net
        self.up = False

    async def connect(self) -> None:
        self.up = True

    async def close(self) -> None:
        for subscribers in self.net.subscribers.values():
            if self in subscribers:
                subscribers.remove(self)
        self.up = False

    def status(self) -> BusStatus:
        return BusStatus(connected=self.up)

    async def publish(self, subject: str, data: bytes) -> None:
        for bus in list(self.net.subscribers.get(subject, ())):
            bus.sink(subject, data)

    async def subscribe(self, subject: str) -> None:
        subscribers = self.net.subscribers.setdefault(subject, [])
        if self not in subscribers:
            subscribers.append(self)

    async def unsubscribe(self, subject: str) -> None:
        subscribers = self.net.subscribers.get(subject, [])
        if self in subscribers:
            subscribers.remove(self)

    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        handlers = [
            bus.request_handler
            for bus in self.net.subscribers.get(subject, ())
            if bus is not self and bus.request_handler is not None
        ]
        if not handlers:
            raise NoResponders(subject)
        tasks = [asyncio.ensure_future(handler(subject, data)) for handler in handlers]
        replies: list[bytes] = []
        try:
            for done in asyncio.as_completed(tasks, timeout=timeout):
                reply = await done
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


class DictStore(BrokerStore):
    def __init__(self, net: DictNet) -> None:
        super().__init__()
        self.net = net

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, bytes]]:
        return self.net.queues.setdefault(channel, asyncio.Queue())

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        queue = self._queue(channel)
        if queue.qsize() >= capacity:
            return False
        queue.put_nowait((time.monotonic() + expiry, bytes(data)))
        return True

    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        queue = self._queue(channel)
        while True:
            deadline, data = await queue.get()  # a cancelled get takes nothing
            if deadline > time.monotonic():
                return data
            self.report("expired", None)

    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        self.net.groups.setdefault(group, {})[channel] = time.monotonic() + expiry

    async def group_discard(self, group: str, channel: str) -> None:
        self.net.groups.get(group, {}).pop(channel, None)

    async def group_members(self, group: str) -> list[str]:
        now = time.monotonic()
        return [c for c, until in self.net.groups.get(group, {}).items() if until > now]

    async def flush(self) -> None:
        self.net.queues.clear()
        self.net.groups.clear()


class DictHubLayer(HubLayer):
    """The hub layer over :class:`DictBus` and :class:`DictStore` on one :class:`DictNet`."""

    def __init__(self, net: DictNet, **kwargs: Any) -> None:
        self.net = net
        super().__init__(**kwargs)

    def make_backend(self) -> Backend:
        return Backend(DictBus(self.net), DictStore(self.net))
