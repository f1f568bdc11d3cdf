"""Presence over the bus: this node's heartbeats, and what it hears of the others.

A serving node publishes a heartbeat on the cluster subject every
``PRESENCE_INTERVAL`` and a goodbye when it shuts down; the format (totals
in every message, room counts as a full table or a delta, in chunks) is
described in :mod:`wshub_channels.core.presence`. Beats from the other nodes go
into a :class:`~wshub_channels.core.presence.PresenceTable`; a node that misses
three beats is evicted.

Three presence ops travel: ``beat``, ``bye`` and ``sync`` (a node asking
another for its full room table because it missed a delta). A newcomer is
answered at once with a full beat, so it need not wait a whole interval.
``node_joined`` and ``node_left`` fire as nodes come and go.

Two processes beating with one node id were forked after their layer was
built: each logs it as an error, counts it (``duplicate_node_id``) and sends
``hub_error`` with :class:`~wshub_channels.errors.DuplicateNodeId`, once per
process. Runs on the hub's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

from .. import signals
from ..core.membership import Registry
from ..core.names import current_pid
from ..core.presence import BeatPlanner, NodeInfo, PresenceTable
from ..core.wire import Kind, decode_presence, encode_presence
from ..errors import DuplicateNodeId
from ..layers import HubBus
from ..metrics import MetricsCollector
from ..tasks import spawn

__all__ = ["Heartbeat"]

logger = logging.getLogger("wshub_channels.presence")


class Heartbeat:
    """Publishes this node's beats and keeps the table of the other nodes."""

    def __init__(
        self,
        layer: HubBus,
        registry: Registry,
        sender: Any,
        metrics: Callable[[], MetricsCollector],
    ) -> None:
        self.layer = layer
        self.registry = registry
        self.table = PresenceTable()
        self.planner = BeatPlanner()
        self.listening_since: float | None = None  # loop time the table started to fill
        self.duplicates: set[tuple[str, int]] = set()  # (node id, pid) reported as twins
        self._sender = sender  # the sender of node_joined / node_left / hub_error
        self._metrics = metrics
        self._lock: asyncio.Lock | None = None
        self._soon = False  # a full beat is about to go out
        self._asked: dict[tuple[str, int], float] = {}  # when we last asked a node to sync
        self._interval = 5.0
        self.beating = False  # True once run() beats: a publisher hears beats, never sends

    # -- this node -----------------------------------------------------------------

    def head(self) -> dict[str, Any]:
        """This node's totals, as every heartbeat message carries them."""
        registry = self.registry
        return {
            "node_id": self.layer.node_id,
            "host": socket.gethostname(),
            "pid": current_pid(),
            "clients": len(registry),
            "users": registry.user_count(),
        }

    def describe(self) -> NodeInfo:
        """This node, with its full room table."""
        registry = self.registry
        rooms = {room: registry.room_size(room) for room in registry.room_names()}
        return NodeInfo(**self.head(), rooms=rooms, room_count=len(rooms))

    def touch(self, room: str) -> None:
        """Note that ``room``'s member count here changed (the next beat carries it)."""
        self.planner.touch(room)

    def listen(self, interval: float) -> None:
        """Start trusting time: the table fills from now on (the hub started)."""
        self.listening_since = asyncio.get_running_loop().time()
        self._interval = interval

    def evict(self) -> None:
        """Forget the nodes silent for three intervals (``run`` does it each beat; a
        publisher, which does not beat, before it reads the table)."""
        for info in self.table.expire(asyncio.get_running_loop().time(), self._interval):
            self._node_event(signals.node_left, info)

    async def publish(self, op: str) -> None:
        """Publish one ``"beat"`` (every part of it) or ``"bye"`` for this node."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # parts and deltas must not interleave with another beat
            head = self.head()
            if op != "beat":
                await self._send(op, head)
                return
            beat = self.planner.next_beat(self.registry.room_names)
            for part in range(beat.parts):  # counts read part by part: short loop steps
                await self._send(op, beat.message(head, part, self.registry.room_size))

    async def _send(self, op: str, body: dict[str, Any]) -> None:
        payload = encode_presence(op, body)
        await self.layer.publish(self.layer.cluster_subject, Kind.PRESENCE, op, payload)

    async def run(self, interval: float) -> None:
        """Beat every ``interval`` seconds and evict silent nodes, until cancelled."""
        self._interval = interval
        self.beating = True
        while True:
            try:
                await self.publish("beat")
            except Exception as exc:
                self._metrics().increment_errors("presence_publish")
                logger.warning("presence heartbeat failed: %r", exc)
            self.evict()
            await asyncio.sleep(interval)

    def _beat_soon(self) -> None:
        """Send a full beat now (coalescing requests that arrive together)."""
        if not self.beating:
            return  # a publisher is not a node: it never answers with a beat
        self.planner.want_full()
        if not self._soon:
            self._soon = True
            spawn(self._beat_now(), "presence answer")

    async def _beat_now(self) -> None:
        self._soon = False
        try:
            await self.publish("beat")
        except Exception as exc:
            self._metrics().increment_errors("presence_publish")
            logger.warning("presence answer failed: %r", exc)

    # -- the other nodes -------------------------------------------------------------

    def receive(self, payload: bytes) -> None:
        """Take a presence message from another node (the layer's hub sink calls this)."""
        try:
            op, body = decode_presence(payload)
            if op == "beat":
                self._on_beat(body)
            elif op == "bye":
                gone = self.table.leave(body["node_id"], body["pid"])
                if gone is not None:
                    self._node_event(signals.node_left, gone)
            elif op == "sync" and (body["target"], body["target_pid"]) == self._me():
                self._beat_soon()
        except (ValueError, TypeError, KeyError):
            self.layer.count_bad_envelope()

    def _on_beat(self, msg: dict[str, Any]) -> None:
        mine = msg.get("node_id") == self.layer.node_id
        if mine and msg.get("pid") == current_pid():
            return  # our own beat, back from the bus
        now = asyncio.get_running_loop().time()
        result = self.table.beat(msg, now)
        key = (msg["node_id"], msg["pid"])
        if mine:
            self._duplicate(key, msg["host"], current_pid())
        elif result.twin is not None:
            self._duplicate(key, msg["host"], result.twin.pid)
        if result.new:
            self._node_event(signals.node_joined, self.table_info(key))
            self._beat_soon()
        if result.want_full and now - self._asked.get(key, -1e9) >= self._interval:
            self._asked[key] = now
            body = {"node_id": self.layer.node_id, "pid": current_pid()}
            body.update(target=key[0], target_pid=key[1])
            spawn(self._send("sync", body), "presence sync request")

    def _me(self) -> tuple[str, int]:
        return (self.layer.node_id, current_pid())

    def table_info(self, key: tuple[str, int]) -> NodeInfo:
        return next(n for n in self.table.nodes(rooms=False) if (n.node_id, n.pid) == key)

    def _duplicate(self, key: tuple[str, int], host: str, other_pid: int) -> None:
        """Report, once, a second process beating with an id already in use."""
        if key in self.duplicates:
            return
        self.duplicates.add(key)
        self._metrics().increment_errors("duplicate_node_id")
        error = DuplicateNodeId(
            f"node id {key[0]} is used by two processes (pids {other_pid} and {key[1]} "
            f"on {host}): a process forked after its channel layer was built. Build the "
            "layer in each worker (with gunicorn, do not use --preload with a started hub)"
        )
        logger.error("%s", error)
        if signals.has_listeners(signals.hub_error, self._sender):
            fired = signals.fire(signals.hub_error, self._sender, client=None, error=error)
            spawn(fired, "duplicate node signal")

    def _node_event(self, signal: Signal, info: NodeInfo) -> None:
        joined = signal is signals.node_joined
        if not joined:
            self._asked.pop((info.node_id, info.pid), None)
            self.duplicates.discard((info.node_id, info.pid))
        logger.info("node %s %s", info.node_id, "joined" if joined else "left")
        if signals.has_listeners(signal, self._sender):
            spawn(signals.fire(signal, self._sender, node=info), "node signal")
