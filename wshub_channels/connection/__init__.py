"""One WebSocket connection: the consumer (ASGI events), the client side
(identity, metadata, rooms, sends, close) and the outbound write driver.

``HubConsumer`` and ``JsonHubConsumer`` are exported at the package root.
"""

from __future__ import annotations

__all__: list[str] = []
