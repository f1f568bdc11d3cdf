"""The NATS backend: ``NatsHubLayer``, its bus and its store.

Importing this package imports nats-py (:mod:`.client` is the only module
that does); without it, the import raises ``ImproperlyConfigured`` with the
``pip install "wshub-channels[nats]"`` line. The modules:

- :mod:`.layer`: ``NatsHubLayer``, the configuration;
- :mod:`.bus`: the connection of one node: subjects, publishes, requests (the ``Bus``);
- :mod:`.store`: normal channels and stored group members (the ``BrokerStore``),
  over the three modules below;
- :mod:`.connection`: the supervised nats-py client;
- :mod:`.streams`: the JetStream streams and consumers of normal channels;
- :mod:`.queues`: pushes to and pops from those normal channels;
- :mod:`.members`: stored group members in JetStream key-value, mirrored locally;
- :mod:`.client`: nats-py, and the connect options built from CONFIG.
"""

from __future__ import annotations

from .bus import NatsBus
from .layer import NatsHubLayer
from .store import NatsStore

__all__ = ["NatsBus", "NatsHubLayer", "NatsStore"]
