"""The process-local broker that in-memory nodes share: subscriptions, queues and groups.

A :class:`MemoryBroker` is private to one layer, or named and shared by
every layer that names it (``CONFIG["bus"]``), which then behave as nodes of
one cluster inside a single process. It only holds state; the node's
:class:`~.bus.MemoryBus` and :class:`~.store.MemoryStore` act on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.historyring import HistoryRing
from ..channelqueue import ChannelQueue

if TYPE_CHECKING:
    from .bus import MemoryBus

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Process-local subscriptions, normal-channel queues and stored group members."""

    _named: dict[str, MemoryBroker] = {}

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self.nodes: dict[int, MemoryBus] = {}
        self.subscriptions: dict[str, set[MemoryBus]] = {}
        self.queues: dict[str, ChannelQueue] = {}
        self.groups: dict[str, dict[str, float]] = {}
        self.history: dict[str, HistoryRing] = {}

    @classmethod
    def named(cls, name: str) -> MemoryBroker:
        """Return the process-wide broker called ``name``, creating it on first use."""
        broker = cls._named.get(name)
        if broker is None:
            broker = cls._named[name] = cls(shared=True)
        return broker
