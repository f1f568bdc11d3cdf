"""Hub channel layers: one shared core (``base``) and one thin transport per bus.

``InMemoryHubLayer`` needs no server. ``RedisHubLayer`` lives in the
:mod:`.redis` package and is imported on first use, so the core never needs
redis-py; a missing redis-py raises ``ImproperlyConfigured`` then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HubLayer
from .memory import InMemoryHubLayer

if TYPE_CHECKING:
    from .redis import RedisHubLayer

__all__ = ["HubLayer", "InMemoryHubLayer", "RedisHubLayer"]


def __getattr__(name: str) -> Any:
    if name == "RedisHubLayer":
        from .redis import RedisHubLayer

        return RedisHubLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
