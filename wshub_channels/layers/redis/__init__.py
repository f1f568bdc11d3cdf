"""The Redis backend: ``RedisHubLayer`` and its transport.

Importing this package imports redis-py (:mod:`.client` is the only module
that does); without it, the import raises ``ImproperlyConfigured`` with the
``pip install "wshub-channels[redis]"`` line. The modules:

- :mod:`.layer`: ``RedisHubLayer``, the configuration;
- :mod:`.transport`: the connection of one node, pub/sub and requests;
- :mod:`.subscriber`: the supervised subscriber connection;
- :mod:`.store`: normal-channel queues and stored group members;
- :mod:`.client`: redis-py, and clients built from ``hosts``.
"""

from __future__ import annotations

from .layer import RedisHubLayer
from .transport import RedisTransport

__all__ = ["RedisHubLayer", "RedisTransport"]
