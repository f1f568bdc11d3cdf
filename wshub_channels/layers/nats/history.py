"""``NatsHistory``: room history in JetStream, on the bus's connection.

A room's messages are one subject of its rule's entry stream, each with its
offset and epoch in headers; the room's **record** (one message per room in
the prefix's record stream) holds its epoch, newest offset and rule, and
lives ``max(ttl, 1 day)`` (plus a margin) after the room's last append: a
room whose messages all expired keeps its epoch and offset, as the
in-memory and Redis stores do, and a read (which is not told the rule)
finds the room's stream through it.
:mod:`.historystreams` names and makes the streams. A room's rule comes
from the settings; when it changes, the room moves to the new rule's stream
with its offsets running on (what the old one kept is not read again), but
nodes that disagree on a room's rule at the same time would give out an
offset twice.

**Append** reads the subject's last entry and the record together (one
round trip) and publishes with ``Nats-Expected-Last-Subject-Sequence`` =
that entry's stream sequence, or 0 on an empty subject: a compare-and-set
the server checks (nats-server 2.9.10 refuses 0 on a subject that holds a
message; the restart tests pin it), retried with jitter on "wrong last
sequence", so appenders on every node get distinct consecutive offsets.
A node appends to a room one message at a time (a lock per room), so only
appenders on different nodes race, and the pause between two attempts
grows with the attempts.
On an empty subject the record says where the room is; a room with
neither gets a new epoch (a random token), claimed in the record first
(compare-and-set too), so racing first appends agree on one epoch.

The record is raised to the new offset after the entry is stored (never
lowered: compare-and-set). If that fails the entry still counts as stored
and the next append or read repairs the record. A writer that stopped (or
lost NATS) between the two steps, its room then untouched (no append, no
read) for the whole ttl, would leave the record one offset behind, and that
offset would be used again: the window is one round trip wide, and
JetStream 2.9 has no transaction (nor per-message TTL) to close it.
Writing the record first instead would let racing appends leave holes, and
a read report an offset whose message is still on its way.

**Read** takes the record (none: no state, ``Position(0, "")``), then the
subject's last and first entries (newest offset, oldest kept), and walks
the planned run with "next message by subject" gets (STREAM.MSG.GET, which
2.9 serves), starting at the lowest stream sequence the run's first offset
can have. The read rules are :mod:`wshub_channels.core.historyread`'s.

A server that restarted empty (memory storage, or a lost store) has neither
streams nor records: the room reads as without state, so an old position
is not complete, and the next append is offset 1 of a new epoch.

Bounded time: while NATS is away a call raises ``BusUnavailable`` at once;
a server that stops answering makes it raise within ``request_timeout``
(each round trip's bound), and no call takes more than twice that: an
append may retry, a read walks up to ``size`` messages, one round trip
each (a thousand take about 0.4 s on loopback). Every method runs on the
bus's home loop (:mod:`..homeloop`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from django.core.exceptions import ImproperlyConfigured

from ...core.history import HistoryEntry, HistoryRule, Position, StoredPage
from ...core.historyread import ReadPlan, finish_page, plan_read
from ...core.names import random_token
from ...errors import BusUnavailable
from ...log import Throttle
from ..historystore import HistoryStore
from ..homeloop import on_home
from .client import Client, js_errors, nats_errors
from .historystreams import (
    HISTORY_NEEDS_JETSTREAM,
    HistoryStreams,
    NotARecord,
    Stored,
    parse_rule,
    rule_key,
)
from .streams import no_jetstream

if TYPE_CHECKING:
    from .bus import NatsBus

__all__ = ["NatsHistory"]

logger = logging.getLogger("wshub_channels.layers.nats")

CAS_ATTEMPTS = 500
JITTER = 0.002  # seconds: the pause between two compare-and-set attempts grows from it

T = TypeVar("T")


class NatsHistory(HistoryStore):
    """Room history of the bus's prefix, through the bus's current client."""

    def __init__(self, bus: NatsBus, storage: str = "file") -> None:
        self.bus = bus
        self.home = bus.home
        self.timeout = bus.request_timeout
        self.streams = HistoryStreams(bus.prefix, storage, bus.request_timeout, self._connected)
        self._log = Throttle(logger, 10.0)
        #: One append at a time per room on this node: racing is left to nodes.
        self._turns: dict[str, _Turn] = {}
        self._turns_loop: asyncio.AbstractEventLoop | None = None

    def _connected(self) -> Client:
        client = self.bus.client
        if client is None or not client.is_connected:
            raise ConnectionError(f"NATS is not connected: {self.bus.status().last_error}")
        return client

    # -- the HistoryStore ----------------------------------------------------------

    @on_home
    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        position, record = await self._bounded(self._take_turn(room, payload, rule), 2, "append")
        try:
            async with asyncio.timeout(self.timeout):
                await self._record(room, position, rule_key(rule), record)
        except Exception as exc:  # stored already: the next append or read repairs it
            self._log.warning("history of %r: its record did not follow: %r", room, exc)
        return position

    @on_home
    async def read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        if limit is not None and limit < 0:  # the caller's error, before any round trip
            raise ValueError(f"a history limit is None or an int >= 0, not {limit!r}")
        return await self._bounded(self._read(room, since, limit), 2, "read")

    @on_home
    async def flush(self) -> None:
        await self._bounded(self.streams.delete_all(), 1, "flush")

    # -- append ----------------------------------------------------------------------

    async def _take_turn(
        self, room: str, payload: bytes, rule: HistoryRule
    ) -> tuple[Position, Stored | None]:
        """:meth:`_append` once this node's earlier appends to the room are done, so
        that only appenders on different nodes race for an offset."""
        loop = asyncio.get_running_loop()
        if self._turns_loop is not loop:  # a new home loop: the old one's locks are gone
            self._turns, self._turns_loop = {}, loop
        turn = self._turns.get(room)
        if turn is None:
            turn = self._turns[room] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                return await self._append(room, payload, rule)
        finally:
            turn.users -= 1
            if not turn.users and self._turns.get(room) is turn:
                del self._turns[room]

    async def _append(
        self, room: str, payload: bytes, rule: HistoryRule
    ) -> tuple[Position, Stored | None]:
        streams, key = self.streams, rule_key(rule)
        stream, subject = streams.entries(key), streams.entries_subject(key, room)
        records, record_subject = streams.records, streams.record_subject(room)
        for attempt in range(CAS_ATTEMPTS):
            await streams.ensure(key, rule)
            last, record = await _both(
                streams.get(stream, subject), streams.get(records, record_subject)
            )
            if last is not None:
                epoch, offset, expect = last.epoch, last.offset + 1, last.seq
            elif record is not None:
                epoch, offset, expect = record.epoch, record.offset + 1, 0
            else:  # a new epoch: claim it in the record first, so racing appenders share it
                epoch, offset, expect = random_token(8), 1, 0
                if not await streams.put(records, record_subject, b"", 0, epoch, 0, key):
                    await _jitter(attempt)
                    continue
                record = None  # re-read at the record's update
            if await streams.put(stream, subject, payload, expect, epoch, offset, key):
                return Position(offset, epoch), record
            await _jitter(attempt)
        raise BusUnavailable(f"history of {room!r}: no append won in {CAS_ATTEMPTS} attempts")

    async def _record(self, room: str, position: Position, key: str, record: Stored | None) -> None:
        """Bring the room's record up to ``position`` (never down): compare-and-set."""
        streams = self.streams
        records, subject = streams.records, streams.record_subject(room)
        fresh = record is not None
        for attempt in range(CAS_ATTEMPTS):
            if not fresh:
                record = await streams.get(records, subject)
            fresh = False
            if (
                record is not None
                and record.epoch == position.epoch
                and record.offset >= position.offset
                and record.rule == key
            ):
                return
            expect = 0 if record is None else record.seq
            if await streams.put(
                records, subject, b"", expect, position.epoch, position.offset, key
            ):
                return
            await _jitter(attempt)

    # -- read ------------------------------------------------------------------------

    async def _read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        streams = self.streams
        record = await streams.get(streams.records, streams.record_subject(room))
        if record is None or parse_rule(record.rule) is None:
            return _page(plan_read(since, limit, "", 0, 1))  # no state
        key = record.rule
        stream, subject = streams.entries(key), streams.entries_subject(key, room)
        last, first = await _both(streams.get(stream, subject), streams.get(stream, subject, 1))
        if last is None or first is None:  # everything expired: the record keeps the place
            epoch, top, oldest = record.epoch, record.offset, record.offset + 1
        else:
            epoch, top, oldest = last.epoch, last.offset, first.offset
            if record.epoch != epoch or record.offset < top:
                await self._repair(room, Position(top, epoch), key, record)
        plan = plan_read(since, limit, epoch, top, oldest)
        if not isinstance(plan, ReadPlan):
            return plan
        entries: list[HistoryEntry] = []
        if last is not None and first is not None and plan.first <= plan.last:
            entries = await self._walk(stream, subject, plan, first, last)
        return finish_page(since, epoch, top, oldest, entries)

    async def _walk(
        self, stream: str, subject: str, plan: ReadPlan, first: Stored, last: Stored
    ) -> list[HistoryEntry]:
        """The kept entries ``plan.first`` to ``plan.last``, by "next by subject" gets.

        Offsets in a subject are consecutive and each takes a stream sequence
        of its own, so offset ``n`` sits at least ``n - m`` sequences after a
        message of offset ``m``: start there, and jump again if the message
        found is still older than wanted.
        """
        found: list[HistoryEntry] = []
        msg: Stored | None = first if plan.first <= first.offset else None
        seq = first.seq + max(0, plan.first - first.offset)
        if plan.first == last.offset:
            msg = last
        while True:
            if msg is None:
                msg = await self.streams.get(stream, subject, seq)
                if msg is None or msg.epoch != last.epoch:
                    return found  # expired (or trimmed) meanwhile
            if msg.offset < plan.first:
                seq, msg = msg.seq + (plan.first - msg.offset), None
                continue
            if msg.offset > plan.last:
                return found
            found.append(HistoryEntry(msg.offset, msg.data))
            if msg.offset == plan.last:
                return found
            seq, msg = msg.seq + 1, None

    async def _repair(self, room: str, position: Position, key: str, record: Stored) -> None:
        try:
            await self._record(room, position, key, record)
        except (ConnectionError, nats_errors.Error) as exc:
            self._log.warning("history of %r: repairing its record failed: %r", room, exc)

    # -- bounds ------------------------------------------------------------------------

    async def _bounded(self, call: Awaitable[T], rounds: int, what: str) -> T:
        """``await call`` within ``rounds`` request timeouts; NATS failures are
        ``BusUnavailable``."""
        try:
            async with asyncio.timeout(self.timeout * rounds):
                return await call
        except TimeoutError:
            raise BusUnavailable(
                f"NATS did not answer a history {what} within {self.timeout * rounds:g}s"
            ) from None
        except BusUnavailable:
            raise
        except (ConnectionError, OSError, nats_errors.Error, NotARecord) as exc:
            if isinstance(exc, js_errors.APIError) and no_jetstream(exc):
                raise ImproperlyConfigured(HISTORY_NEEDS_JETSTREAM) from exc
            raise BusUnavailable(f"history {what} failed: {exc!r}") from exc


async def _both(first: Awaitable[T], second: Awaitable[T]) -> tuple[T, T]:
    """Await two calls at once (one round trip); raise the first failure after both end."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]


def _page(page: ReadPlan | StoredPage) -> StoredPage:
    assert isinstance(page, StoredPage)  # nothing to fetch without state
    return page


class _Turn:
    """A room's lock on this node, and how many appends hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


async def _jitter(attempt: int) -> None:
    """A random pause before the next compare-and-set, longer as attempts fail."""
    await asyncio.sleep(random.random() * JITTER * min(attempt + 1, 8))
