"""The layers' face: ``HubBus``, everything the hub uses of a hub layer.

The hub (``wshub_channels.hub``) talks to its layer only through these
members; every :class:`~wshub_channels.layers.base.HubLayer` satisfies the
protocol. It is what the hub may rely on, and all it may rely on: the
Channels API (``send``, ``group_send`` ...) is the consumers', and the
bus, the store and their counters stay behind the face.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from ..core.history import HistoryRule, Position, StoredPage
from ..core.membership import Interest
from ..core.wire import Envelope
from .bus import BusStatus
from .rpc import Op

__all__ = ["BusListener", "Deliver", "HubBus", "HubSink"]

#: Takes every room, user, broadcast and presence envelope from another node.
HubSink = Callable[[Envelope], None]
#: Takes every bus event (``event``, ``error``); see :meth:`HubBus.set_bus_listener`.
BusListener = Callable[[str, BaseException | None], None]
#: This node's own delivery of a send, run while the publish is in flight.
Deliver = Callable[[], Awaitable[None]]


@runtime_checkable
class HubBus(Protocol):
    """What the hub uses of its layer: identity, lifecycle, interest, sends and calls."""

    # -- identity and limits --

    @property
    def node_id(self) -> str:
        """This node's id, unique in the cluster."""

    @property
    def shared(self) -> bool:
        """True when other processes may share the bus, so every send must publish."""

    @property
    def request_timeout(self) -> float:
        """The default bound of :meth:`remote_call` and :meth:`gather_call`."""

    @property
    def max_payload(self) -> int | None:
        """The most bytes one bus message may carry; None when unlimited or not yet known."""

    # -- lifecycle and health --

    async def start(self) -> None:
        """Connect and subscribe to this node's own subjects (idempotent)."""

    async def close(self) -> None:
        """Close the layer; it starts again on the next call."""

    def bus_status(self) -> BusStatus:
        """Whether the bus connection is up, and its last error; no I/O."""

    def stats_snapshot(self) -> dict[str, int]:
        """The layer's counters (publishes, errors, drops ...), copied."""

    def count_bad_envelope(self) -> None:
        """Count one envelope the hub could not read (``bad_envelopes``)."""

    def set_hub_sink(self, sink: HubSink | None) -> None:
        """Install the hub's handler of envelopes from other nodes."""

    def set_bus_listener(self, listener: BusListener | None) -> None:
        """Install the hub's handler of bus events."""

    # -- subjects and interest --

    def subject(self, ns: str, name: str) -> str:
        """The bus subject of ``name`` in namespace ``ns``."""

    @property
    def cluster_subject(self) -> str:
        """The subject every node listens on."""

    @property
    def interest(self) -> Interest:
        """This node's membership table; change it only through the methods below."""

    async def add_interest(self, ns: str, name: str, member: str) -> None:
        """Make ``member`` a local member of ``name``; subscribe on the first one."""

    async def discard_interest(self, ns: str, name: str, member: str) -> None:
        """Remove a local membership; unsubscribe when the last member leaves."""

    async def release_channel(self, channel: str) -> None:
        """Drop every local membership of ``channel`` (and its ``!`` queue)."""

    # -- sends --

    async def publish(self, subject: str, kind: int, target: str, payload: bytes) -> None:
        """Publish one envelope on the bus."""

    async def publish_and_deliver(
        self, subject: str, kind: int, target: str, payload: bytes, deliver: Deliver
    ) -> None:
        """Publish one envelope, run ``deliver`` meanwhile, then await the publish."""

    # -- room history --

    async def history_append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        """Store one message of a history room in the broker; return its position."""

    async def history_read(
        self, room: str, since: Position | None, limit: int | None
    ) -> StoredPage:
        """Read what a history room keeps after ``since``, and its position."""

    # -- calls between nodes --

    def register_op(self, name: str, op: Op) -> None:
        """Register a coroutine other nodes may call."""

    async def remote_call(
        self, node: str, op: str, *args: Any, timeout: float | None = None
    ) -> Any:
        """Run ``op`` on another node and return its result, raising its typed error."""

    async def gather_call(
        self, op: str, *args: Any, expect: int | None = None, timeout: float | None = None
    ) -> list[Any]:
        """Run ``op`` on every other node and return their answers."""
