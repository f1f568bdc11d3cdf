"""The Redis backend: ``RedisHubLayer``, its bus and its store.

Importing this package imports redis-py (:mod:`.client` is the only module
that does); without it, the import raises ``ImproperlyConfigured`` with the
``pip install "wshub-channels[redis]"`` line. The modules:

- :mod:`.layer`: ``RedisHubLayer``, the configuration;
- :mod:`.bus`: the connection of one node, pub/sub and requests (the ``Bus``);
- :mod:`.subscriber`: the supervised subscriber connection;
- :mod:`.store`: normal-channel queues and stored group members (the
  ``BrokerStore``), with :mod:`.holds`, the receive holds;
- :mod:`.client`: redis-py, and clients built from ``hosts``.
"""

from __future__ import annotations

from .bus import RedisBus
from .layer import RedisHubLayer
from .store import RedisStore

__all__ = ["RedisBus", "RedisHubLayer", "RedisStore"]
