"""``NatsHistory``: room history in JetStream, on the bus's connection.

Two kinds of stream, made on first use under the layer's ``storage``:

- **Entries**, one stream per distinct rule, ``<PREFIX>_h<size>_<ttl-ms>``,
  holding the subjects ``<prefix>.h.<size>_<ttl-ms>.*``; a room is one
  subject in it (its name through the core's token, so any string is a safe
  subject), ``max_msgs_per_subject`` = size, ``max_age`` = ttl, discard
  old. A stored message carries its offset and epoch in the headers
  ``Wshub-Offset`` and ``Wshub-Epoch``. Removal is from the oldest end
  only, so a subject always holds a run of consecutive offsets of one epoch.
- **Room records**, one stream per prefix, ``<PREFIX>_hmeta``, holding
  ``<prefix>.hm.*`` with one message per room (``max_msgs_per_subject`` 1):
  the room's epoch, newest offset and rule (``Wshub-Rule``). Its
  ``max_age`` is ``max(ttl, 1 day)`` plus a margin, so the record outlives
  the entries and a room whose messages all expired keeps its epoch and
  offset, as the in-memory and Redis stores do; once the record expires
  too, the next append starts a new epoch. The record is also how a read
  finds the room's entries, since a read is not told the rule.

**Append** reads the subject's last entry and the record (together, one
round trip) and publishes with ``Nats-Expected-Last-Subject-Sequence`` =
that entry's stream sequence, or 0 on an empty subject: a compare-and-set
the server checks (nats-server 2.9.10 refuses a 0 on a subject that holds a
message, which this module's tests pin), retried with jitter on "wrong
last sequence", so appenders on every node get distinct consecutive
offsets. A room with neither entries nor record gets a new epoch (a random
token), claimed by writing the record first (compare-and-set too), so
concurrent first appends agree on one epoch. The record is brought up to
the new offset after the entry is stored (monotonic, compare-and-set); if
that fails the entry still counts as stored, and the next append or read
repairs the record. A writer that stopped between the two steps, with the
room then quiet for its whole ttl, leaves the record one offset behind:
the next append would reuse that offset. That window is one round trip
wide; JetStream 2.9 has no transaction to close it.

**Read** takes the record (no record: no state, ``Position(0, "")``), then
the subject's last and first entries (the newest offset and the oldest
kept), and walks the planned run with "next message by subject" gets,
starting from the lowest stream sequence the run's first offset can have.
The read rules are :mod:`wshub_channels.core.historyread`'s.

A server that restarted empty (memory storage, or a lost store) has neither
streams nor records: the room reads as without state, so an old position
is incomplete, and the next append starts offset 1 of a new epoch.

Every call is bounded: a NATS that is away raises ``BusUnavailable`` at
once, one that does not answer within ``request_timeout`` (twice, for an
append's retries). Runs on the bus's home loop (:mod:`..homeloop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from django.core.exceptions import ImproperlyConfigured

from ...core.history import HistoryEntry, HistoryPage, HistoryRule, Position
from ...core.historyread import ReadPlan, finish_page, plan_read
from ...core.historyring import STATE_TTL
from ...core.names import random_token, subject_token
from ...errors import BusUnavailable
from ...log import Throttle
from ..historystore import HistoryStore
from ..homeloop import on_home
from .client import Client, JetStreamContext, js_api, js_errors, nats_errors
from .streams import no_jetstream, stream_safe

if TYPE_CHECKING:
    from .bus import NatsBus

__all__ = ["NatsHistory"]

logger = logging.getLogger("wshub_channels.layers.nats")

OFFSET = "Wshub-Offset"
EPOCH = "Wshub-Epoch"
RULE = "Wshub-Rule"
EXPECT = js_api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
#: Seconds a room's record outlives ``max(ttl, STATE_TTL)``: covers an append's bound.
RECORD_MARGIN = 60.0
CAS_ATTEMPTS = 500
JITTER = 0.003  # seconds, at most, between two compare-and-set attempts

_WRONG_LAST = 10071  # "wrong last sequence"
_NO_MESSAGE = 10037  # "no message found"
_NO_STREAM = 10059  # "stream not found"
_STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"

HISTORY_NEEDS_JETSTREAM = (
    "NatsHubLayer keeps room history (WSHUB['HISTORY']) in NATS JetStream, which "
    "this server does not offer: start nats-server with -js"
)

T = TypeVar("T")


class Stored(NamedTuple):
    """One message of a history stream: its stream sequence and what its headers say."""

    seq: int
    offset: int
    epoch: str
    rule: str
    data: bytes


def rule_key(rule: HistoryRule) -> str:
    """``<size>_<ttl in ms>``: a rule's part of stream names and subjects."""
    return f"{rule.size}_{max(1, round(rule.ttl * 1000))}"


def _parse_rule(key: str) -> HistoryRule | None:
    size, _, ms = key.partition("_")
    try:
        return HistoryRule(int(size), int(ms) / 1000)
    except ValueError:
        return None


class NatsHistory(HistoryStore):
    """Room history of the bus's prefix, through the bus's current client."""

    def __init__(self, bus: NatsBus, storage: str = "file") -> None:
        self.bus = bus
        self.home = bus.home
        self.prefix = bus.prefix
        self.name = stream_safe(bus.prefix)
        self.timeout = bus.request_timeout
        self.storage = js_api.StorageType(storage)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._made: set[str] = set()  # streams known to exist for the current client
        self._record_age = 0.0  # the record stream's max_age, as far as this node knows
        self._log = Throttle(logger, 10.0)

    # -- names -------------------------------------------------------------------

    def entries_stream(self, key: str) -> str:
        return f"{self.name}_h{key}"

    def entries_subject(self, key: str, room: str) -> str:
        return f"{self.prefix}.h.{key}.{subject_token(room)}"

    @property
    def record_stream(self) -> str:
        return f"{self.name}_hmeta"

    def record_subject(self, room: str) -> str:
        return f"{self.prefix}.hm.{subject_token(room)}"

    # -- the HistoryStore ----------------------------------------------------------

    @on_home
    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        position, record = await self._bounded(self._append(room, payload, rule), 2, "append")
        try:
            async with asyncio.timeout(self.timeout):
                await self._record(room, position, rule_key(rule), record)
        except Exception as exc:  # stored already: the next append or read repairs it
            self._log.warning("history of %r: its record did not follow: %r", room, exc)
        return position

    @on_home
    async def read(self, room: str, since: Position | None, limit: int | None) -> HistoryPage:
        return await self._bounded(self._read(room, since, limit), 1, "read")

    @on_home
    async def flush(self) -> None:
        await self._bounded(self._flush(), 1, "flush")

    # -- append ----------------------------------------------------------------------

    async def _append(
        self, room: str, payload: bytes, rule: HistoryRule
    ) -> tuple[Position, Stored | None]:
        key = rule_key(rule)
        stream, subject = self.entries_stream(key), self.entries_subject(key, room)
        for _ in range(CAS_ATTEMPTS):
            js = self._context()
            await self._ensure_entries(js, key, rule)
            await self._ensure_records(js, rule)
            last, record = await _both(
                self._get(js, stream, subject),
                self._get(js, self.record_stream, self.record_subject(room)),
            )
            if last is not None:
                epoch, offset, expect = last.epoch, last.offset + 1, last.seq
            elif record is not None:
                epoch, offset, expect = record.epoch, record.offset + 1, 0
            else:  # a new epoch: claim it in the record first, so racing appenders share it
                epoch, offset, expect = random_token(8), 1, 0
                if not await self._put(
                    js, self.record_stream, self.record_subject(room), b"", 0, epoch, 0, key
                ):
                    await _jitter()
                    continue
                record = None  # re-read at the record's update
            if await self._put(js, stream, subject, payload, expect, epoch, offset, key):
                return Position(offset, epoch), record
            await _jitter()
        raise BusUnavailable(f"history of {room!r}: no append won in {CAS_ATTEMPTS} attempts")

    async def _record(self, room: str, position: Position, key: str, record: Stored | None) -> None:
        """Bring the room's record up to ``position`` (never down)."""
        subject = self.record_subject(room)
        fresh = record is not None
        for _ in range(CAS_ATTEMPTS):
            js = self._context()
            if not fresh:
                record = await self._get(js, self.record_stream, subject)
            fresh = False
            if (
                record is not None
                and record.epoch == position.epoch
                and record.offset >= position.offset
                and record.rule == key
            ):
                return
            expect = 0 if record is None else record.seq
            if await self._put(
                js, self.record_stream, subject, b"", expect, position.epoch, position.offset, key
            ):
                return
            await _jitter()

    async def _put(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        data: bytes,
        expect: int,
        epoch: str,
        offset: int,
        key: str,
    ) -> bool:
        """Publish if the subject's last sequence is ``expect``; False when it is not."""
        headers = {OFFSET: str(offset), EPOCH: epoch, RULE: key, EXPECT: str(expect)}
        try:
            await js.publish(subject, data, timeout=self.timeout, stream=stream, headers=headers)
        except js_errors.NoStreamResponseError:
            self._made.discard(stream)  # gone (deleted, or the server lost its store)
            return False
        except js_errors.APIError as exc:
            if getattr(exc, "err_code", None) == _WRONG_LAST:
                return False
            raise
        return True

    # -- read ------------------------------------------------------------------------

    async def _read(self, room: str, since: Position | None, limit: int | None) -> HistoryPage:
        js = self._context()
        record = await self._get(js, self.record_stream, self.record_subject(room))
        rule = None if record is None else _parse_rule(record.rule)
        if record is None or rule is None:
            return _page(plan_read(since, limit, "", 0, 1))
        key = record.rule
        stream, subject = self.entries_stream(key), self.entries_subject(key, room)
        last, first = await _both(self._get(js, stream, subject), self._get(js, stream, subject, 1))
        if last is None or first is None:
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
            entries = await self._walk(js, stream, subject, plan, first, last)
        return finish_page(since, epoch, top, oldest, entries)

    async def _walk(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        plan: ReadPlan,
        first: Stored,
        last: Stored,
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
                msg = await self._get(js, stream, subject, seq)
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

    # -- streams ---------------------------------------------------------------------

    def _context(self) -> JetStreamContext:
        client = self.bus.client
        if client is None or not client.is_connected:
            raise ConnectionError(f"NATS is not connected: {self.bus.status().last_error}")
        if client is not self._client or self._js is None:
            self._client, self._js = client, client.jetstream(timeout=self.timeout)
            self._made.clear()
            self._record_age = 0.0
        return self._js

    async def _get(
        self, js: JetStreamContext, stream: str, subject: str, after: int | None = None
    ) -> Stored | None:
        """The subject's last message, or with ``after`` its first at or after that
        sequence; None when there is none (or no stream)."""
        try:
            if after is None:
                msg = await js.get_last_msg(stream, subject)
            else:
                msg = await js.get_msg(stream, seq=after, subject=subject, next=True)
        except js_errors.NotFoundError as exc:
            if getattr(exc, "err_code", None) == _NO_STREAM:
                self._made.discard(stream)
            elif getattr(exc, "err_code", None) != _NO_MESSAGE:
                raise
            return None
        headers = msg.headers or {}
        try:
            return Stored(
                int(msg.seq or 0),
                int(headers[OFFSET]),
                str(headers[EPOCH]),
                str(headers.get(RULE, "")),
                bytes(msg.data or b""),
            )
        except (KeyError, ValueError):
            raise ValueError(f"a message in {stream} is not a history record") from None

    async def _ensure_entries(self, js: JetStreamContext, key: str, rule: HistoryRule) -> None:
        name = self.entries_stream(key)
        if name in self._made:
            return
        config = js_api.StreamConfig(
            name=name,
            subjects=[f"{self.prefix}.h.{key}.*"],
            retention=js_api.RetentionPolicy.LIMITS,
            discard=js_api.DiscardPolicy.OLD,
            max_msgs_per_subject=rule.size,
            max_age=int(key.rpartition("_")[2]) / 1000,
            storage=self.storage,
        )
        await self._add(js, config)
        self._made.add(name)

    async def _ensure_records(self, js: JetStreamContext, rule: HistoryRule) -> None:
        """The record stream, with a ``max_age`` the rule's entries never outlive."""
        needed = max(rule.ttl, STATE_TTL) + RECORD_MARGIN
        name = self.record_stream
        if name in self._made and self._record_age >= needed:
            return
        config = js_api.StreamConfig(
            name=name,
            subjects=[f"{self.prefix}.hm.*"],
            retention=js_api.RetentionPolicy.LIMITS,
            discard=js_api.DiscardPolicy.OLD,
            max_msgs_per_subject=1,
            max_age=needed,
            storage=self.storage,
        )
        if not await self._add(js, config):  # there already: keep its age if longer
            info = await js.stream_info(name)
            age = info.config.max_age or 0.0
            if 0 < age < needed:
                await js.update_stream(info.config.evolve(max_age=needed))
                age = needed
            needed = age or float("inf")
        self._record_age = max(self._record_age, needed)
        self._made.add(name)

    async def _add(self, js: JetStreamContext, config: js_api.StreamConfig) -> bool:
        """Make the stream; False when it is there already (made by another node)."""
        try:
            await js.add_stream(config)
        except js_errors.APIError as exc:
            if no_jetstream(exc):
                raise ImproperlyConfigured(HISTORY_NEEDS_JETSTREAM) from exc
            if getattr(exc, "err_code", None) != _STREAM_IN_USE:
                raise
            return False
        return True

    async def _flush(self) -> None:
        """Delete every history stream under the prefix (entries and records)."""
        js = self._context()
        ours = re.compile(re.escape(self.name) + r"_h(\d+_\d+|meta)")
        names: list[str] = []
        offset = 0
        while True:
            try:
                page = await js.streams_info(offset)
            except js_errors.APIError as exc:
                if no_jetstream(exc):
                    return
                raise
            names += [
                i.config.name for i in page if i.config.name and ours.fullmatch(i.config.name)
            ]
            if not page:
                break
            offset += len(page)
        for name in names:
            with contextlib.suppress(js_errors.NotFoundError):
                await js.delete_stream(name)
        self._made.clear()
        self._record_age = 0.0

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
        except (ConnectionError, OSError, nats_errors.Error, ValueError) as exc:
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


def _page(page: ReadPlan | HistoryPage) -> HistoryPage:
    assert isinstance(page, HistoryPage)  # nothing to fetch without state
    return page


async def _jitter() -> None:
    await asyncio.sleep(random.random() * JITTER)
