"""``HubCommunicator``: Channels' ``WebsocketCommunicator``, for ``HubConsumer``.

Test a consumer the way Channels users already do, with three additions:

- ``connect()`` starts the hub first (as ``HubApplication`` would under a
  server), so the consumer is reachable through ``get_hub()``;
- once connected, ``communicator.client`` is the consumer itself as the hub
  knows it (a :class:`~wshub_channels.types.Client`): call ``join_room``,
  ``set_user_id``, ``rooms`` or ``get_metadata`` on it directly;
- ``receive_from()`` (and so ``receive_json_from()``) gives back coalesced
  text frames one message at a time when ``Config.coalesce_writes`` is on,
  so a test reads what the consumer sent, not how it was batched.

Runs on the test's event loop, like ``WebsocketCommunicator``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

from channels.testing import WebsocketCommunicator

from ..core.names import random_token
from ..hub.hub import Hub, get_hub
from ..types import Client
from .timing import scaled

__all__ = ["HubCommunicator"]

#: The scope key that tells a communicator's connection apart from every other.
SCOPE_KEY = "wshub.communicator"


class HubCommunicator(WebsocketCommunicator):
    """A ``WebsocketCommunicator`` that knows the hub.

    ``alias`` picks the hub's channel layer; by default it is the consumer's
    ``channel_layer_alias`` when ``application`` comes from ``as_asgi()``,
    else ``WSHUB["CHANNEL_LAYER"]``.
    """

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        *,
        alias: str | None = None,
    ) -> None:
        super().__init__(application, path, headers, subprotocols)
        consumer = getattr(application, "consumer_class", None)
        self.alias: str | None = alias or getattr(consumer, "channel_layer_alias", None)
        self.client: Client | None = None
        self._token = random_token(16)
        cast(dict[str, Any], self.scope)[SCOPE_KEY] = self._token
        self._split: deque[str] = deque()

    @property
    def hub(self) -> Hub:
        return get_hub(self.alias)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """Start the hub, then connect; once accepted, :attr:`client` is set."""
        hub = self.hub
        await hub.start()
        connected, detail = await super().connect(timeout)
        if connected:
            self.client = await self._registered(hub, timeout)
        return connected, detail

    async def _registered(self, hub: Hub, timeout: float) -> Client:
        """The client registers just after accept; wait for it, up to ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for client in hub.clients():
                if getattr(client, "scope", {}).get(SCOPE_KEY) == self._token:
                    return client
            if loop.time() >= deadline:
                raise TimeoutError("the consumer accepted but never registered with the hub")
            await asyncio.sleep(scaled(0.005))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The next message sent to the client, one message per coalesced line."""
        if self._split:
            return self._split.popleft()
        data: str | bytes = await super().receive_from(timeout)
        if isinstance(data, str) and "\n" in data and self.hub.config.coalesce_writes:
            first, *rest = data.split("\n")
            self._split.extend(rest)
            return first
        return data

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        """True when nothing (not even a held-back coalesced message) is waiting."""
        if self._split:
            return False
        result: bool = await super().receive_nothing(timeout, interval)
        return result
