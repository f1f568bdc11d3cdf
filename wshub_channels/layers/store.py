"""The ``BrokerStore`` contract: what the broker keeps for normal channels.

Normal channels (the ones without ``!``) and their memberships in groups
must outlive any node, so the broker keeps them. A store:

- keeps the queue of each normal channel: :meth:`~BrokerStore.queue_push`
  (and :meth:`~BrokerStore.queue_push_many`, one message to several
  channels), :meth:`~BrokerStore.queue_pop`, and the two hooks that settle
  a pop: :meth:`~BrokerStore.queue_delivered` (the caller has it) and
  :meth:`~BrokerStore.queue_unpop` (its receive was cancelled: put it
  back). A push and a pop both get the channel's capacity (the same on
  every node), so a store that keeps channels of different capacities apart
  (NATS: one stream per capacity) finds the queue without a lookup;
- keeps the stored members of groups: :meth:`~BrokerStore.group_add`,
  :meth:`~BrokerStore.group_discard`, :meth:`~BrokerStore.group_members`;
- does a ``group_send``'s bus work in as few round trips as it can:
  :meth:`~BrokerStore.publish_group` publishes on the bus and returns the
  group's live stored members; a store that shares its connection with
  its bus (Redis) does both in one round trip;
- reports what happens to queued messages (expired, put back, lost)
  through ``report(event, error)``, as a :class:`~.bus.Bus` does.

A store lives on its backend's connection: the backend opens and closes
them together (the bus's ``connect`` and ``close``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from .bus import Bus, Reporter

__all__ = ["BrokerStore", "Popped"]


class Popped(bytes):
    """A message a pop returned, with what its store needs to settle it (``receipt``)."""

    receipt: Any = None


class BrokerStore(abc.ABC):
    """Normal-channel queues and stored group members; see the module docstring."""

    def __init__(self) -> None:
        self.report: Reporter = _ignore

    def set_reporter(self, report: Reporter) -> None:
        self.report = report

    async def publish_group(self, bus: Bus, subject: str, data: bytes, group: str) -> list[str]:
        """Publish ``data`` on ``subject`` and return the live stored members of ``group``.

        This is a ``group_send``'s bus work, and the hot path of every group
        send. This default publishes, then looks the members up; a store
        that can do both in one round trip must override it. A failed
        publish raises, as ``Bus.publish`` does.
        """
        await bus.publish(subject, data)
        return await self.group_members(group)

    @abc.abstractmethod
    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        """Append to a normal channel's queue; False when it is full (``capacity``)."""

    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        """Push ``data`` to each ``(channel, capacity)``; return which pushes fitted.

        Override to do it in one round trip; this default pushes one by one.
        """
        return [await self.queue_push(channel, data, cap, expiry) for channel, cap in pushes]

    @abc.abstractmethod
    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        """Wait for and remove the oldest live message of a normal channel.

        ``capacity`` is the channel's, as given to :meth:`queue_push`. A pop
        cancelled while it waits loses no message: one it had taken from the
        broker goes back.
        """

    def queue_delivered(self, data: bytes) -> None:
        """The caller of :meth:`queue_pop` has ``data`` now (NATS acks it here)."""
        return None

    def queue_unpop(self, data: bytes) -> None:
        """``data`` came back from :meth:`queue_pop` to a caller cancelled meanwhile.

        Put it back when the store can; this default counts it as lost.
        """
        self.report("receive_lost", LookupError("a popped message whose receive was cancelled"))

    @abc.abstractmethod
    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        """Record a normal channel as a member of ``group`` for ``expiry`` seconds."""

    @abc.abstractmethod
    async def group_discard(self, group: str, channel: str) -> None:
        """Forget a normal channel's membership of ``group``."""

    @abc.abstractmethod
    async def group_members(self, group: str) -> list[str]:
        """Return the live normal-channel members of ``group``."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Delete every queue and stored membership under this prefix."""


def _ignore(event: str, error: BaseException | None) -> None:
    """The reporter before the core installs its own."""
