"""Hub channel layers: one shared core (``base``), and per backend a bus and a store.

This package's own names are the layers' face: the hub and the other surfaces
import only these, never a module inside ``layers/``. ``HubBus`` is all the
hub uses of a layer; ``Bus`` and ``BrokerStore`` are the two contracts a
backend implements, and ``HubLayer.make_backend`` is where it plugs in.

``InMemoryHubLayer`` needs no server. ``RedisHubLayer`` and ``NatsHubLayer``
live in the :mod:`.redis` and :mod:`.nats` packages and are imported on
first use, so the core never needs redis-py or nats-py; a missing client
library raises ``ImproperlyConfigured`` then, with its install line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HubLayer
from .bus import Bus, BusStatus, NoResponders
from .face import HubBus
from .memory import InMemoryHubLayer
from .node import Backend
from .store import BrokerStore

if TYPE_CHECKING:
    from .nats import NatsHubLayer
    from .redis import RedisHubLayer

__all__ = [
    "Backend",
    "BrokerStore",
    "Bus",
    "BusStatus",
    "HubBus",
    "HubLayer",
    "InMemoryHubLayer",
    "NatsHubLayer",
    "NoResponders",
    "RedisHubLayer",
]


def __getattr__(name: str) -> Any:
    if name == "RedisHubLayer":
        from .redis import RedisHubLayer

        return RedisHubLayer
    if name == "NatsHubLayer":
        from .nats import NatsHubLayer

        return NatsHubLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
