"""Hub channel layers: one shared core (``base``) and one thin transport per bus.

``RedisHubLayer`` and ``NatsHubLayer`` import their client libraries only when
used, so the core needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HubLayer
from .memory import InMemoryHubLayer

if TYPE_CHECKING:
    from .redisbus import RedisHubLayer

__all__ = ["HubLayer", "InMemoryHubLayer", "RedisHubLayer"]


def __getattr__(name: str) -> Any:
    if name == "RedisHubLayer":
        from .redisbus import RedisHubLayer

        return RedisHubLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
