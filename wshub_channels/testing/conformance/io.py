"""Reading a channel layer under a deadline: the conformance suite's assertions.

Every wait is in time units (:func:`~wshub_channels.testing.timing.scaled`).
These run on the caller's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from channels.layers import BaseChannelLayer

from ..timing import scaled

__all__ = ["LayerFactory", "made_layers", "nothing", "recv", "still_waiting"]

#: ``factory(**config)`` returns a new layer instance.
LayerFactory = Callable[..., BaseChannelLayer]


async def made_layers(factory: LayerFactory) -> AsyncIterator[LayerFactory]:
    """Yield a factory that remembers its layers, then flush and close each of them."""
    made: list[BaseChannelLayer] = []

    def make(**config: Any) -> BaseChannelLayer:
        layer = factory(**config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.flush()
        close = getattr(layer, "close", None)
        if close is not None:
            await close()


async def nothing(layer: BaseChannelLayer, channel: str, wait: float = 0.2) -> bool:
    """Return True if nothing arrives on ``channel`` within ``wait`` units."""
    try:
        await asyncio.wait_for(layer.receive(channel), scaled(wait))
    except TimeoutError:
        return True
    return False


async def still_waiting(task: asyncio.Future[Any], wait: float = 0.05) -> bool:
    """Return True if ``task`` is still running after ``wait`` units (it found nothing yet)."""
    done, _ = await asyncio.wait({task}, timeout=scaled(wait))
    return not done


async def recv(layer: BaseChannelLayer, channel: str, wait: float = 2) -> dict[str, Any]:
    """Return the next message on ``channel``; TimeoutError after ``wait`` units."""
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), scaled(wait))
    return message
