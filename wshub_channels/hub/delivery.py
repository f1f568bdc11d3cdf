"""Delivery: broadcasts, room and user sends, and the one local delivery loop.

A send validates its data, then hands the layer one envelope for the other
nodes (encoded once, only when the bus is shared) together with the local
delivery, which the layer runs in order with what it receives. The local
delivery reads the recipients' queues straight from the
:class:`~wshub_channels.core.membership.Registry` and builds one ASGI message
shared by every recipient: without ``timeout`` each queue is pushed to (the
drop policy applies, nothing waits); with ``timeout`` each full queue is
waited for up to that long, then the drop policy applies. Beyond
``Config.broadcast_batch_size`` recipients the pushes go in batches with a
yield to the loop between them, in order with every other fan-out
(:class:`~wshub_channels.hub.fanout.FanOut`).

:meth:`Delivery.receive` is the layer's hub sink: room, user and broadcast
envelopes from other nodes go through the same loop; heartbeats and room
events go to their components. Runs on the hub's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..core.clientframes import msg_frame
from ..core.frames import binary_message, data_message, text_message
from ..core.membership import ROOMS, USERS, OutboundQueue, Registry
from ..core.wire import Envelope, Kind, decode_hub_payload, encode_hub_payload
from ..layers import HubBus
from ..message import check_text
from ..types import AsgiMessage, Client, Data
from ..utf8 import frame_size
from .fanout import FanOut
from .heartbeat import Heartbeat
from .history import RoomHistory
from .policy import Policy
from .roomevents import RoomEvents

__all__ = ["Delivery"]

#: Where each kind of hub envelope is delivered: an interest namespace, or everyone.
_NAMESPACE: dict[int, str | None] = {Kind.ROOM: ROOMS, Kind.USER: USERS, Kind.BROADCAST: None}


class Delivery:
    """Sends to everyone, a room or a user, on every node."""

    def __init__(
        self,
        layer: HubBus,
        policy: Policy,
        registry: Registry,
        heartbeat: Heartbeat,
        room_events: RoomEvents,
    ) -> None:
        self.layer = layer
        self.policy = policy
        self.registry = registry
        self._heartbeat = heartbeat
        self._room_events = room_events
        self.fanout = FanOut(lambda: policy.config.broadcast_batch_size)
        #: Rooms that keep history (``WSHUB["HISTORY"]``): their sends and recoveries.
        self.history = RoomHistory(
            layer, policy, registry, self._push, self.push_one, self.fanout.call
        )

    async def send(
        self,
        kind: Kind,
        target: str,
        subject: str,
        data: Data,
        exclude: Iterable[Client | str],
        timeout: float | None,
    ) -> None:
        """Publish ``data`` for the other nodes and deliver it here (the hub started)."""
        if isinstance(data, str):
            check_text(data)  # InvalidFrame before anyone gets anything
        elif not isinstance(data, bytes):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        excluded = {c if isinstance(c, str) else c.id for c in exclude}
        if kind == Kind.ROOM:
            rule = self.history.rule_for(target)
            if rule is not None:
                await self.history.send(target, subject, data, excluded, rule)
                return
        layer = self.layer
        payload = encode_hub_payload(data, excluded) if layer.shared else b""
        ns = _NAMESPACE[kind]

        async def deliver() -> None:
            if timeout is None:
                pending = self._push(ns, target, data, excluded)
                if pending is not None:
                    await pending  # a large fan-out: served in batches
            else:
                await self._push_within(ns, target, data, excluded, timeout)

        await layer.publish_and_deliver(subject, kind, target, payload, deliver)

    async def send_local(self, ns: str | None, target: str, data: Data) -> None:
        """Deliver ``data`` here only, without a publish (a bus nobody else shares)."""
        if isinstance(data, str):
            check_text(data)
        elif not isinstance(data, bytes):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        pending = self._push(ns, target, data, frozenset())
        if pending is not None:
            await pending

    def _recipients(
        self, ns: str | None, name: str, excluded: set[str] | frozenset[str]
    ) -> Iterator[OutboundQueue]:
        """The one local delivery loop: the open queues of a room, a user or everyone."""
        for client_id, queue in self.registry.queues(ns, name):
            if client_id not in excluded and not queue.closed:
                yield queue

    def _push(
        self,
        ns: str | None,
        name: str,
        data: Data,
        excluded: set[str] | frozenset[str],
        position: tuple[int, str] | None = None,
    ) -> asyncio.Future[Any] | None:
        """Push to every recipient; None once done, else a future for the batches left.

        Clients that speak the client protocol get the ``msg`` frame of the
        send; a client recovering in a history room gets it after its replay.
        """
        started = time.perf_counter()
        message = data_message(data)  # one dict (and one frame) shared by every recipient
        framed = self.registry.framed
        taps = self.history.taps.get(name) if position is not None else None
        if not framed and taps is None:
            return self.fanout.push(
                self._recipients(ns, name, excluded),
                message,
                lambda sent: self._count_sent(sent, data, started),
            )
        plain: list[OutboundQueue] = []
        speaking: list[OutboundQueue] = []
        for client_id, queue in self.registry.queues(ns, name):
            if client_id in excluded or queue.closed:
                continue
            if taps is not None and client_id in taps:
                taps[client_id].append((data, position))  # a recovering client: after replay
            else:
                (speaking if client_id in framed else plain).append(queue)
        count = self._count_sent
        pending = [self.fanout.push(iter(plain), message, lambda sent: count(sent, data, started))]
        if speaking:
            as_frame = _framed(ns, name, data, position)
            pending.append(
                self.fanout.push(iter(speaking), as_frame, lambda sent: count(sent, data, None))
            )
        waiting = [future for future in pending if future is not None]
        return asyncio.gather(*waiting) if waiting else None

    def push_one(
        self, client_id: str, room: str, data: Data, position: tuple[int, str] | None
    ) -> bool:
        """Push one room message to one local client (a replay); False if not taken."""
        queue = self.registry.queue_of(client_id)
        if queue is None or queue.closed:
            return False
        if client_id in self.registry.framed:
            return queue.push(_framed(ROOMS, room, data, position))
        return queue.push(data_message(data))

    async def _push_within(
        self,
        ns: str | None,
        name: str,
        data: Data,
        excluded: set[str] | frozenset[str],
        timeout: float,
    ) -> None:
        started = time.perf_counter()
        message = data_message(data)
        framed = self.registry.framed
        as_frame = _framed(ns, name, data, None) if framed else message
        waits = [
            queue.push_within(as_frame if client_id in framed else message, timeout)
            for client_id, queue in self.registry.queues(ns, name)
            if client_id not in excluded and not queue.closed
        ]
        accepted = sum(await asyncio.gather(*waits)) if waits else 0
        self._count_sent(accepted, data, started)

    def _count_sent(self, sent: int, data: Data, started: float | None) -> None:
        """Count one fan-out (``started`` None: the second part of one, not timed again)."""
        policy = self.policy
        metrics = policy.metrics
        metrics.increment_messages_sent(sent)
        if sent and policy.counts_bytes:
            metrics.record_bytes_sent(sent * frame_size(data))
        if started is not None:
            metrics.record_broadcast_duration(time.perf_counter() - started)

    def receive(self, env: Envelope) -> None:
        """Deliver a room, user or broadcast envelope (or a heartbeat) from another node."""
        kind = env.kind
        if kind == Kind.PRESENCE:
            self._heartbeat.receive(env.payload)
            return
        if kind == Kind.ROOM_EVENT:
            self._room_events.receive(env)
            return
        if kind not in _NAMESPACE:
            self.layer.count_bad_envelope()
            return
        try:
            data, excluded, position = decode_hub_payload(env.payload)
        except ValueError:
            self.layer.count_bad_envelope()
            return
        if position is not None and kind == Kind.ROOM:
            self.history.offer(env.target, position, data, frozenset(excluded))
            return
        self._push(_NAMESPACE[kind], env.target, data, frozenset(excluded))


def _framed(ns: str | None, name: str, data: Data, position: tuple[int, str] | None) -> AsgiMessage:
    """The protocol form of one hub send (binary data stays a binary frame)."""
    if isinstance(data, bytes):
        return binary_message(data)
    return text_message(msg_frame(name if ns == ROOMS else None, data, position))
