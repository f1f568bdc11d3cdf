"""In-process helpers: HubConsumers driven by HubCommunicator on a private layer.

Connections are ``HubCommunicator`` objects. A consumer under test sends
``id:<client id>`` as its first frame (at the end of ``on_connect``), so
:meth:`Clients.connect` returns once ``on_connect`` ran. :func:`private_layer`
installs a fresh ``InMemoryHubLayer`` under an alias of its own, so each test
gets its own hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.layers import channel_layers
from django.test import override_settings

from wshub_channels import HubConsumer
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import HubCommunicator, scaled

__all__ = ["WAIT", "Clients", "Conn", "hub_clients", "private_layer"]

WAIT = scaled(2)
C = TypeVar("C", bound="Clients")


@dataclass
class Conn:
    """One connected communicator and the client id it announced."""

    comm: HubCommunicator
    id: str

    async def next(self) -> Any:
        return await self.comm.receive_from(timeout=WAIT)

    async def ask(self, text: str) -> Any:
        await self.comm.send_to(text_data=text)
        return await self.next()


class Clients:
    """Connects consumers and disconnects whatever is still open at teardown."""

    def __init__(self) -> None:
        self.comms: list[HubCommunicator] = []

    def communicator(
        self, consumer: type[HubConsumer], query: str = "", **scope: Any
    ) -> HubCommunicator:
        comm = HubCommunicator(consumer.as_asgi(), f"/ws/?{query}")
        comm.scope.update(scope)
        self.comms.append(comm)
        return comm

    async def connect(self, consumer: type[HubConsumer], query: str = "", **scope: Any) -> Conn:
        comm = self.communicator(consumer, query, **scope)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        assert comm.client is not None
        assert await comm.receive_from(timeout=WAIT) == f"id:{comm.client.id}"
        return Conn(comm, comm.client.id)

    async def close_all(self) -> None:
        for comm in self.comms:
            if comm._future is not None and not comm.future.done():
                await comm.disconnect(timeout=WAIT)


@asynccontextmanager
async def private_layer(alias: str) -> AsyncIterator[InMemoryHubLayer]:
    """A fresh in-memory hub layer under ``alias`` for the duration of the block."""
    layer = InMemoryHubLayer()
    previous = channel_layers.set(alias, layer)
    try:
        yield layer
    finally:
        await layer.close()
        if previous is None:
            channel_layers.backends.pop(alias, None)
        else:
            channel_layers.set(alias, previous)


@asynccontextmanager
async def hub_clients(
    alias: str, wshub: dict[str, Any] | None = None, kind: type[C] | None = None
) -> AsyncIterator[C]:
    """A private layer under ``alias`` (and ``WSHUB`` overridden by ``wshub``), and a
    :class:`Clients` of ``kind`` whose connections are closed at the end."""
    settings = nullcontext() if wshub is None else override_settings(WSHUB=wshub)
    with settings:
        async with private_layer(alias):
            made = (kind or Clients)()
            try:
                yield made
            finally:
                await made.close_all()
