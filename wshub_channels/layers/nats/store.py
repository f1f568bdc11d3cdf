"""``NatsStore``: normal channels in JetStream work queues, stored members in key-value.

The ``BrokerStore`` of the NATS backend, over the modules that do the work:

- :mod:`.streams`: the work-queue streams (one per capacity) and consumers;
- :mod:`.queues`: pushes to and pops from normal channels, acks and naks;
- :mod:`.members`: stored group members in a key-value bucket, watched into
  a local mirror, so that a ``publish_group`` costs no round trip beyond
  the publish.

The bus (:class:`~.bus.NatsBus`) owns the connection: it hands the store each
new client (:meth:`NatsStore.attach`) and settles, shuts or abandons it with
the connection. JetStream calls fail at once while NATS is away, rather than
at their timeout. Every method that touches a client runs on the home loop
the store shares with its bus (:mod:`..homeloop`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from ...tasks import spawn
from ..homeloop import HomeLoop, on_home, settle_on_home
from ..store import BrokerStore
from .client import Client, server_version
from .members import StoredMembers
from .queues import WorkQueues
from .streams import Streams, stream_safe

__all__ = ["NatsStore"]


class NatsStore(BrokerStore):
    """JetStream queues and key-value members under ``prefix``.

    ``connected()`` returns the connected client or raises (NATS is away);
    ``current(client)`` says whether ``client`` is still the bus's.
    """

    def __init__(
        self,
        home: HomeLoop,
        connected: Callable[[], Client],
        current: Callable[[Client], bool],
        prefix: str,
        request_timeout: float = 5.0,
        expiry: float = 60.0,
        group_expiry: float = 86400.0,
        storage: str = "file",
    ) -> None:
        super().__init__()
        self.home = home
        self.request_timeout = request_timeout
        self._connected = connected
        self._current = current
        self._streams = Streams(prefix, expiry, storage)
        self._queues = WorkQueues(self._streams, request_timeout, self._report)
        bucket = f"{stream_safe(prefix)}_groups"
        self._members = StoredMembers(bucket, group_expiry, request_timeout)

    def _report(self, event: str, error: BaseException | None) -> None:
        self.report(event, error)  # late bound: the core installs its reporter after us

    # -- the connection's life (called by the bus, on the home loop) ----------------

    async def attach(self, client: Client, first: bool = False) -> None:
        """A new or reconnected client: streams, consumers and the watch may be gone."""
        js = client.jetstream(timeout=self.request_timeout)
        self._streams.use(js, server_version(client))
        with contextlib.suppress(Exception):
            if first:  # opened before the bus counts as up; members() awaits its first load
                return await self._members.start(js)
        spawn(self._members.keep(js, lambda: self._current(client)), "nats members watch")

    async def shut(self) -> None:
        """Before the client closes: acks of delivered messages first, then the watch."""
        await self._queues.settle()
        await self._members.stop()
        self.forget()

    def abandon(self) -> None:
        """Forget a stopped home loop's watch and JetStream context, without I/O."""
        self._members.abandon()
        self.forget()

    def forget(self) -> None:
        self._streams.use(None)

    # -- BrokerStore ---------------------------------------------------------------

    @on_home
    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        self._connected()
        return await self._queues.push(channel, data, capacity, expiry)

    @on_home
    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        self._connected()
        return await self._queues.push_many(pushes, data, expiry)

    @on_home
    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        return await self._queues.pop(channel, capacity)

    @settle_on_home
    def queue_delivered(self, data: bytes) -> None:
        self._queues.delivered(data)

    @settle_on_home
    def queue_unpop(self, data: bytes) -> None:
        self._queues.unpop(data)

    @on_home
    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        self._connected()
        await self._members.add(group, channel, expiry)

    @on_home
    async def group_discard(self, group: str, channel: str) -> None:
        self._connected()
        await self._members.discard(group, channel)

    @on_home
    async def group_members(self, group: str) -> list[str]:
        return await self._members.members(group)

    @on_home
    async def flush(self) -> None:
        await self._queues.flush()
        await self._members.flush()
