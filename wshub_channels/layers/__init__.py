"""Hub channel layers: one shared core (``base``) and one thin transport per bus.

``RedisHubLayer`` and ``NatsHubLayer`` import their client libraries only when
used, so the core needs neither.
"""

from __future__ import annotations

from .base import HubLayer
from .memory import InMemoryHubLayer

__all__ = ["HubLayer", "InMemoryHubLayer"]
