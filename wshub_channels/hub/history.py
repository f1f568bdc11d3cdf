"""Rooms with history: append then publish, offset order, and recovery on join.

A room whose name matches ``WSHUB["HISTORY"]`` keeps its last messages in the
layer's history store (:mod:`wshub_channels.layers.historystore`). For such a
room :class:`RoomHistory`:

- **sends**: appends the message to the store first (the store gives it its
  offset), then publishes it with its offset and epoch, and delivers it
  here. A store that cannot be reached raises ``BusUnavailable`` to the
  caller and nothing is sent: a message is never live without being in the
  history. (Delivery does not wait for full queues on history rooms: the
  drop policy applies at once, whatever ``timeout`` says.)
- **delivers in offset order**: messages of one room reach this node from
  every sender, so each room has a
  :class:`~wshub_channels.core.historyorder.RoomSequence`. A message that
  arrives ahead of a missing one waits up to :data:`GAP_WAIT` seconds; then
  the missing offsets are read from the store, and what the store no longer
  has is skipped (counted as the ``gap_skipped`` history event).
- **recovers on join** (``join_room(room, since=Position(...))``): the
  client is subscribed first, while its live messages of the room are held
  aside (a tap); then what it missed is read and pushed, in order; then the
  held live messages with an offset above the last replayed one; and only
  then does it take live messages directly. Nothing is lost in between
  and nothing comes twice. The :class:`~wshub_channels.core.history.Recovery`
  says whether the gap was filled.

Runs on the hub's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..core.history import (
    HistoryMessage,
    HistoryPage,
    HistoryRule,
    Position,
    Recovery,
)
from ..core.historyorder import RoomSequence
from ..core.membership import ROOMS, Registry
from ..core.wire import Kind, decode_hub_payload, encode_hub_payload
from ..layers import HubBus
from ..tasks import spawn
from ..types import Data
from .policy import Policy

__all__ = ["GAP_WAIT", "RoomHistory"]

logger = logging.getLogger("wshub_channels.hub")

#: How long a message that arrived ahead of a missing one waits, in seconds.
GAP_WAIT = 0.25

#: One room message on its way: the data, and the client ids it skips.
Item = tuple[Data, frozenset[str]]
#: What a tap holds for a recovering client: data and (offset, epoch).
Tapped = tuple[Data, tuple[int, str] | None]
#: Delivery's push of one message to a room's local members.
PushRoom = Callable[[str, str, Data, frozenset[str], tuple[int, str] | None], Any]
#: Delivery's push of one message to one local client.
PushOne = Callable[[str, str, Data, tuple[int, str] | None], bool]
#: Runs a function once every fan-out in progress is over (now when none is).
InTurn = Callable[[Callable[[], None]], Any]


class RoomHistory:
    """Sends, ordered delivery and recovery of the history rooms of this node."""

    def __init__(
        self,
        layer: HubBus,
        policy: Policy,
        registry: Registry,
        push: PushRoom,
        push_one: PushOne,
        in_turn: InTurn,
    ) -> None:
        self.layer = layer
        self.policy = policy
        self.registry = registry
        self._push = push
        self._push_one = push_one
        self._in_turn = in_turn
        self._sequences: dict[str, RoomSequence[Item]] = {}
        self._fills: dict[str, asyncio.Task[None]] = {}
        #: room -> recovering client id -> what arrived live while it recovers.
        self.taps: dict[str, dict[str, list[Tapped]]] = {}

    def rule_for(self, room: str) -> HistoryRule | None:
        """The history rule of ``room`` (None: it keeps no history)."""
        return self.policy.settings.history.rule_for(room)

    # -- sends ---------------------------------------------------------------------------

    async def send(
        self, room: str, subject: str, data: Data, excluded: set[str], rule: HistoryRule
    ) -> Position:
        """Append ``data`` to the room's history, publish it, deliver it here."""
        layer = self.layer
        stored = encode_hub_payload(data, excluded)
        position = await layer.history_append(room, stored, rule)
        self.policy.metrics.increment_history("append")
        at = (position.offset, position.epoch)
        payload = encode_hub_payload(data, excluded, at) if layer.shared else b""
        skip = frozenset(excluded)

        async def deliver() -> None:
            self.offer(room, at, data, skip)

        await layer.publish_and_deliver(subject, Kind.ROOM, room, payload, deliver)
        return position

    def offer(
        self, room: str, position: tuple[int, str], data: Data, excluded: frozenset[str]
    ) -> None:
        """Take one message of a history room (local or from another node), in any order."""
        if not self.registry.room_size(room):
            self._forget(room)  # nobody here: nothing to order
            return
        sequence = self._sequences.get(room)
        if sequence is None:
            sequence = self._sequences[room] = RoomSequence()
        offset, epoch = position
        self._deliver(room, epoch, sequence.offer(offset, epoch, (data, excluded)))
        self._watch_gap(room, sequence)

    def _deliver(self, room: str, epoch: str, ready: list[tuple[int, Item]]) -> None:
        for offset, (data, excluded) in ready:
            self._push(ROOMS, room, data, excluded, (offset, epoch))

    def _watch_gap(self, room: str, sequence: RoomSequence[Item]) -> None:
        if sequence.held and room not in self._fills:
            self._fills[room] = spawn(self._fill(room), f"history gap fill of {room!r}")

    async def _fill(self, room: str) -> None:
        """After :data:`GAP_WAIT`, read the missing offsets from the store, skip the rest."""
        try:
            await asyncio.sleep(GAP_WAIT)
            sequence = self._sequences.get(room)
            gap = sequence.missing() if sequence is not None else None
            if sequence is None or gap is None:
                return
            first, last = gap
            epoch = sequence.epoch or ""
            try:
                page = await self.layer.history_read(
                    room, Position(first - 1, epoch), last - first + 1
                )
            except Exception as exc:  # the store is down: skip the gap rather than stall
                logger.warning("could not read the history of room %r: %s", room, exc)
                page = None
            if self._sequences.get(room) is not sequence:
                return
            found: list[tuple[int, Item]] = []
            if page is not None and page.position.epoch == epoch:
                for entry in page.entries:
                    data, excluded, _ = decode_hub_payload(entry.payload)
                    found.append((entry.offset, (data, frozenset(excluded))))
            metrics = self.policy.metrics
            self._deliver(room, epoch, sequence.fill(found))
            if found:
                metrics.increment_history("gap_filled")
            if sequence.missing() is not None:
                metrics.increment_history("gap_skipped")
                logger.warning("room %r: offsets %d-%d are lost; skipped", room, first, last)
                self._deliver(room, epoch, sequence.skip_gap())
        finally:
            self._fills.pop(room, None)
        again = self._sequences.get(room)
        if again is not None:
            self._watch_gap(room, again)

    def _forget(self, room: str) -> None:
        self._sequences.pop(room, None)
        fill = self._fills.pop(room, None)
        if fill is not None:
            fill.cancel()

    # -- joins ---------------------------------------------------------------------------

    def before_join(self, room: str, client_id: str, first: bool, since: Position | None) -> None:
        """Before the client is subscribed: a first member starts the room's order again,
        and a client with a position gets a tap for the live messages of its recovery."""
        if first:
            self._forget(room)
        if since is not None:
            self.taps.setdefault(room, {})[client_id] = []

    def cancel_join(self, room: str, client_id: str) -> None:
        """The join failed after :meth:`before_join`: drop the client's tap."""
        self._untap(room, client_id)

    async def recover(self, room: str, client_id: str, since: Position | None) -> Recovery:
        """Once subscribed: replay what the client missed after ``since``, then its tap."""
        metrics = self.policy.metrics
        sequence = self._sequences.get(room)
        if since is None and sequence is not None and sequence.position is not None:
            return Recovery(False, sequence.position)
        page = await self.layer.history_read(room, since, None if since is not None else 0)
        metrics.increment_history("read")
        sequence = self._sequences.get(room)
        if sequence is None:
            sequence = self._sequences[room] = RoomSequence()
        self._deliver(room, page.position.epoch, sequence.seed(page.position))
        if since is None:
            return Recovery(False, page.position)
        recovered = page.complete
        epoch, last = page.position.epoch, page.position.offset
        replay: list[Tapped] = []
        for entry in page.entries if recovered else ():
            data, excluded, _ = decode_hub_payload(entry.payload)
            if client_id not in excluded:
                replay.append((data, (entry.offset, epoch)))

        def finish() -> None:
            """Replay, then what the tap held after the replay, then live messages direct.

            Run in turn with the fan-outs (after any still in progress), with
            no await inside, so nothing overtakes and nothing is lost between.
            Tapped messages up to the read's position were replayed (or are in
            the state the app reloads).
            """
            tapped = self._untap(room, client_id)
            for data, at in replay:
                self._push_one(client_id, room, data, at)
            for data, at in tapped:
                if at is None or at[1] != epoch or at[0] > last:
                    self._push_one(client_id, room, data, at)

        self._in_turn(finish)
        metrics.increment_history("recovered" if recovered else "not_recovered")
        return Recovery(recovered, page.position, len(replay))  # since + replayed, in step

    def _untap(self, room: str, client_id: str) -> list[Tapped]:
        taps = self.taps.get(room)
        if taps is None:
            return []
        tapped = taps.pop(client_id, [])
        if not taps:
            del self.taps[room]
        return tapped

    def left(self, room: str) -> None:
        """A client left ``room``: forget its order once nobody here is in it."""
        if not self.registry.room_size(room):
            self._forget(room)

    # -- reads ---------------------------------------------------------------------------

    async def read(self, room: str, since: Position | None, limit: int | None) -> HistoryPage:
        """``hub.history``: what the room keeps after ``since``."""
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
        ):
            raise ValueError(f"limit is None or an int >= 0, not {limit!r}")
        if since is not None and not isinstance(since, Position):
            raise TypeError(f"since is a Position or None, not {type(since).__name__}")
        page = await self.layer.history_read(room, since, limit)
        self.policy.metrics.increment_history("read")
        messages = [
            HistoryMessage(entry.offset, decode_hub_payload(entry.payload).data)
            for entry in page.entries
        ]
        return HistoryPage(messages, page.position, page.complete)
