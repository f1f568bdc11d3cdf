"""A channel-layer conformance suite, written once and run against every layer.

Subclass :class:`ChannelLayerConformance` and provide a ``layer_backend``
fixture returning a :class:`LayerBackend`. Layers made through the
``make_layer`` fixture are flushed and closed after each test. Cases that
need two instances sharing a broker (worker queues, cross-instance groups,
direct sends and forwarded ``group_add``) skip, with a reason, for backends
whose instances do not share one.

The cases live in one module per topic: :mod:`.channels`, :mod:`.groups`
(with a stock consumer), :mod:`.capacity` (and expiry), :mod:`.messages` and
:mod:`.cross_instance`. The suite needs pytest with an asyncio plugin in auto
mode (pytest-asyncio) and Django settings configured.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from channels.layers import BaseChannelLayer

from .capacity import CapacityCases
from .channels import ChannelCases
from .cross_instance import CrossInstanceCases
from .groups import GroupCases
from .io import LayerFactory, made_layers
from .messages import MessageCases

__all__ = ["ChannelLayerConformance", "LayerBackend"]


@dataclass(frozen=True)
class LayerBackend:
    """How to build one layer under test.

    ``factory(**config)`` returns a new layer instance; ``shared_broker`` says
    whether two instances made by it reach each other, as processes do.
    """

    name: str
    factory: LayerFactory
    shared_broker: bool


class ChannelLayerConformance(
    ChannelCases, GroupCases, CapacityCases, MessageCases, CrossInstanceCases
):
    """The Channels layer spec, as tests. Subclasses provide ``layer_backend``."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        raise NotImplementedError("provide a layer_backend fixture returning a LayerBackend")

    @pytest.fixture
    async def make_layer(self, layer_backend: LayerBackend) -> AsyncIterator[LayerFactory]:
        async for make in made_layers(layer_backend.factory):
            yield make

    @pytest.fixture
    def layer(self, make_layer: LayerFactory) -> BaseChannelLayer:
        return make_layer(capacity=3, channel_capacity={"tiny*": 1, re.compile(r"^re\."): 2})

    @pytest.fixture
    def shared(self, layer_backend: LayerBackend) -> None:
        if not layer_backend.shared_broker:
            pytest.skip(f"{layer_backend.name} instances do not share a broker")
