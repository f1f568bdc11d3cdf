"""The buses a cluster of test servers can share: how each node's layer is configured.

A :class:`Bus` names a hub layer backend and the server URL each node connects
to. ``nodes`` may hold several URLs (the servers of a NATS cluster): node ``i``
connects to ``urls[i % len(urls)]``, so the hub nodes of one test sit on
different servers of the broker cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wshub_channels.testing import scaled

__all__ = ["INTERVAL", "Bus", "node_env"]

#: The presence interval of test servers, in test units.
INTERVAL = 0.5

_BACKENDS = {
    "redis": ("wshub_channels.layers.RedisHubLayer", "hosts"),
    "nats": ("wshub_channels.layers.NatsHubLayer", "servers"),
}


@dataclass(frozen=True)
class Bus:
    """One bus under test: ``kind`` is "redis" or "nats"; ``urls`` its server(s)."""

    name: str
    kind: str
    urls: tuple[str, ...]

    def layer_config(self, prefix: str, node: int = 0) -> dict[str, Any]:
        """``CHANNEL_LAYERS`` for node number ``node`` of a cluster under ``prefix``."""
        backend, key = _BACKENDS[self.kind]
        url = self.urls[node % len(self.urls)]
        config = {key: [url], "prefix": prefix, "request_timeout": scaled(1)}
        return {"default": {"BACKEND": backend, "CONFIG": config}}


def node_env(bus: Bus, prefix: str, node: int = 0, **wshub: Any) -> dict[str, str]:
    """Environment for a test-app server process: node ``node`` of ``bus`` under ``prefix``."""
    settings = {"PRESENCE_INTERVAL": scaled(INTERVAL), **wshub}
    return {
        "WSHUB_TEST_LAYERS": json.dumps(bus.layer_config(prefix, node)),
        "WSHUB_TEST_SETTINGS": json.dumps(settings),
    }
