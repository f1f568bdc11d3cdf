"""``InMemoryHubLayer``: the shared core over a process-local broker.

The embedded default: no server is needed. Each layer instance has a private
broker unless ``CONFIG["bus"]`` names one; instances naming the same bus
share it as if they were nodes of one cluster (subjects, requests,
normal-channel queues and stored memberships), which lets the multi-node
logic of the core run in a single process.
"""

from __future__ import annotations

from typing import Any

from ..base import HubLayer
from ..node import Backend
from .broker import MemoryBroker
from .bus import MemoryBus
from .history import MemoryHistory
from .store import MemoryStore

__all__ = ["InMemoryHubLayer"]


class InMemoryHubLayer(HubLayer):
    """The hub layer on a process-local broker; the embedded default.

    Takes every :class:`~wshub_channels.layers.base.HubLayer` option plus
    ``bus``: the name of a process-wide bus to share with other instances
    (default: a private bus, like Channels' ``InMemoryChannelLayer``).
    """

    def __init__(self, bus: str | None = None, **kwargs: Any) -> None:
        self.broker = MemoryBroker.named(bus) if bus else MemoryBroker(shared=False)
        super().__init__(**kwargs)

    def make_backend(self) -> Backend:
        return Backend(MemoryBus(self.broker), MemoryStore(self.broker), MemoryHistory(self.broker))
