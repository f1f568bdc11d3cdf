"""``MemoryBus``: one node's publish/subscribe and requests on a process-local broker.

A publish is a synchronous call into every subscribed node's sink; a
request runs the request handlers of the other subscribed nodes and
gathers their replies. Nothing here is loop-bound.
"""

from __future__ import annotations

import asyncio
import logging

from ..bus import Bus, BusStatus, NoResponders
from .broker import MemoryBroker

__all__ = ["MemoryBus"]

logger = logging.getLogger("wshub_channels.layers")


class MemoryBus(Bus):
    """A bus whose publishes are synchronous calls into the subscribed nodes' sinks."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__()
        self.broker = broker
        self.shared = broker.shared
        self.subjects: set[str] = set()
        self.connected = False

    async def connect(self) -> None:
        self.broker.nodes[id(self)] = self
        self.connected = True

    async def close(self) -> None:
        for subject in list(self.subjects):
            await self.unsubscribe(subject)
        self.broker.nodes.pop(id(self), None)
        self.connected = False

    def status(self) -> BusStatus:
        return BusStatus(connected=self.connected)

    async def publish(self, subject: str, data: bytes) -> None:
        """Hand ``data`` to every subscriber; one that fails never stops the others."""
        for bus in tuple(self.broker.subscriptions.get(subject, ())):
            try:
                bus.sink(subject, data)
            except (ValueError, TypeError) as exc:
                bus.report("bad_frame", exc)
            except Exception:
                logger.exception("delivering a message from %s failed", subject)

    async def subscribe(self, subject: str) -> None:
        self.broker.subscriptions.setdefault(subject, set()).add(self)
        self.subjects.add(subject)

    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        subscribers = self.broker.subscriptions.get(subject)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self.broker.subscriptions[subject]

    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        handlers = [
            bus.request_handler
            for bus in tuple(self.broker.subscriptions.get(subject, ()))
            if bus is not self and bus.request_handler is not None
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
