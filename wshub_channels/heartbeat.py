"""Presence over the bus: this node's heartbeat, and what it hears of the others.

A serving node publishes a heartbeat on the cluster subject every
``PRESENCE_INTERVAL`` and a goodbye when it shuts down. Beats from the other
nodes go into a :class:`~wshub_channels.presence.PresenceTable`; a node that
misses three beats is evicted. A newcomer is answered with a beat at once,
so it need not wait a whole interval. ``node_joined`` and ``node_left`` fire
as nodes come and go. Runs on the hub's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

from . import signals
from .layers.base import HubLayer
from .layers.envelope import Kind, decode_presence, encode_presence
from .metrics import MetricsCollector
from .presence import NodeInfo, PresenceTable
from .tasks import spawn

__all__ = ["Heartbeat"]

logger = logging.getLogger("wshub_channels.presence")


class Heartbeat:
    """Publishes this node's beats and keeps the table of the other nodes."""

    def __init__(
        self,
        layer: HubLayer,
        describe: Callable[[], NodeInfo],
        sender: Any,
        metrics: Callable[[], MetricsCollector],
    ) -> None:
        self.layer = layer
        self.table = PresenceTable()
        self._describe = describe
        self._sender = sender  # the sender of node_joined / node_left
        self._metrics = metrics

    async def publish(self, op: str) -> None:
        """Publish one ``"beat"`` or ``"bye"`` for this node."""
        payload = encode_presence(op, self._describe().to_wire())
        await self.layer.publish(self.layer.cluster_subject, Kind.PRESENCE, op, payload)

    async def run(self, interval: float) -> None:
        """Beat every ``interval`` seconds and evict silent nodes, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.publish("beat")
            except Exception as exc:
                self._metrics().increment_errors("presence_publish")
                logger.warning("presence heartbeat failed: %r", exc)
            for info in self.table.expire(loop.time(), interval):
                self._node_event(signals.node_left, info)
            await asyncio.sleep(interval)

    def receive(self, payload: bytes) -> None:
        """Take a beat or goodbye from another node (the layer's hub sink calls this)."""
        try:
            op, body = decode_presence(payload)
            info = NodeInfo.from_wire(body)
        except (ValueError, TypeError, KeyError):
            self.layer.stats.bad_envelopes += 1
            return
        if op == "bye":
            gone = self.table.leave(info.node_id)
            if gone is not None:
                self._node_event(signals.node_left, gone)
        elif self.table.beat(info, asyncio.get_running_loop().time()):
            self._node_event(signals.node_joined, info)
            spawn(self.publish("beat"), "presence answer")

    def _node_event(self, signal: Signal, info: NodeInfo) -> None:
        joined = signal is signals.node_joined
        logger.info("node %s %s", info.node_id, "joined" if joined else "left")
        if signals.has_listeners(signal, self._sender):
            spawn(signals.fire(signal, self._sender, node=info), "node signal")
