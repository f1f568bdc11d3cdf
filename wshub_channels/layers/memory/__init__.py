"""The in-memory backend: ``InMemoryHubLayer`` over a process-local broker.

The modules:

- :mod:`.layer`: ``InMemoryHubLayer``, the configuration;
- :mod:`.broker`: the process-local broker its nodes share (named or private);
- :mod:`.bus`: a node's pub/sub and requests on that broker (the ``Bus``);
- :mod:`.store`: normal-channel queues and stored group members there (the
  ``BrokerStore``).
"""

from __future__ import annotations

from .broker import MemoryBroker
from .bus import MemoryBus
from .layer import InMemoryHubLayer
from .store import MemoryStore

__all__ = ["InMemoryHubLayer", "MemoryBroker", "MemoryBus", "MemoryStore"]
