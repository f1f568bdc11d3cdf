"""The NATS backend: ``NatsHubLayer`` and its transport.

Importing this package imports nats-py (:mod:`.client` is the only module
that does); without it, the import raises ``ImproperlyConfigured`` with the
``pip install "wshub-channels[nats]"`` line. The modules:

- :mod:`.layer`: ``NatsHubLayer``, the configuration;
- :mod:`.transport`: the connection of one node: subjects, publishes, requests;
- :mod:`.connection`: the supervised nats-py client;
- :mod:`.streams`: the JetStream streams and consumers of normal channels;
- :mod:`.queues`: pushes to and pops from those normal channels;
- :mod:`.members`: stored group members in JetStream key-value, mirrored locally;
- :mod:`.client`: nats-py, and the connect options built from CONFIG.
"""

from __future__ import annotations

from .layer import NatsHubLayer
from .transport import NatsTransport

__all__ = ["NatsHubLayer", "NatsTransport"]
