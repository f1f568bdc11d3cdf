"""The hub: one per process (per event loop for bus clients), and ``get_hub``.

``Hub`` is the public façade of the API in the README; its parts (delivery,
membership, lifecycle, drain and shutdown, cluster queries, heartbeat, room
events, events) live in the modules beside it.
"""

from __future__ import annotations

from .hub import Hub, get_hub

__all__ = ["Hub", "get_hub"]
