"""Public test helpers: the layer conformance suite, the time unit and a bounded poll.

Third-party layers can reuse the conformance suite::

    from wshub_channels.testing import ChannelLayerConformance, LayerBackend

    class TestMyLayer(ChannelLayerConformance):
        @pytest.fixture
        def layer_backend(self):
            return LayerBackend("mine", lambda **cfg: MyLayer(**cfg), shared_broker=True)
"""

from __future__ import annotations

from .conformance import ChannelLayerConformance, LayerBackend
from .timing import UNIT, async_wait_until, scaled

__all__ = ["UNIT", "ChannelLayerConformance", "LayerBackend", "async_wait_until", "scaled"]
