"""The JetStream streams behind room history: names, lazy creation, gets and guarded puts.

- **Entries**: one stream per distinct rule, ``<PREFIX>_h<size>_<ttl-ms>``,
  holding ``<prefix>.h.<size>_<ttl-ms>.*``, with ``max_msgs_per_subject`` =
  size, ``max_age`` = ttl and discard old; a room is one subject in it (its
  name through the core's token, so any string makes a safe subject).
- **Records**: one stream per prefix, ``<PREFIX>_hmeta``, holding
  ``<prefix>.hm.*`` with one message per room (``max_msgs_per_subject`` 1)
  and a ``max_age`` of ``max(ttl, 1 day)`` plus a margin for the longest
  ttl seen, raised when a longer one comes.

Every message carries the headers ``Wshub-Offset``, ``Wshub-Epoch`` and
``Wshub-Rule`` (``<size>_<ttl-ms>``); :meth:`HistoryStreams.put` publishes
with ``Nats-Expected-Last-Subject-Sequence``, the compare-and-set the server
checks (0: the subject must be empty, which nats-server 2.9.10 enforces too).

Streams are made on first use and remembered per client; one found missing
(deleted, or lost by a server that restarted empty) is made again.

Loop safety: belongs to the bus's home loop; every method must run there.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import NamedTuple

from django.core.exceptions import ImproperlyConfigured

from ...core.history import HistoryRule
from ...core.historyring import STATE_TTL
from ...core.names import subject_token
from .client import Client, JetStreamContext, js_api, js_errors
from .streams import no_jetstream, stream_safe

__all__ = [
    "HISTORY_NEEDS_JETSTREAM",
    "HistoryStreams",
    "NotARecord",
    "Stored",
    "parse_rule",
    "rule_key",
]

OFFSET = "Wshub-Offset"
EPOCH = "Wshub-Epoch"
RULE = "Wshub-Rule"
EXPECT = js_api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
#: Seconds a room's record outlives ``max(ttl, STATE_TTL)``: far beyond an append's bound.
RECORD_MARGIN = 60.0

_WRONG_LAST = 10071  # "wrong last sequence"
_NO_MESSAGE = 10037  # "no message found"
_NO_STREAM = 10059  # "stream not found"
_STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"

HISTORY_NEEDS_JETSTREAM = (
    "NatsHubLayer keeps room history (WSHUB['HISTORY']) in NATS JetStream, which "
    "this server does not offer: start nats-server with -js, or add `jetstream {}` "
    "to its config file"
)


class NotARecord(ValueError):
    """A message in a history stream lacks the headers this module writes."""


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


def parse_rule(key: str) -> HistoryRule | None:
    """The rule a :func:`rule_key` names; None for anything else."""
    size, _, ms = key.partition("_")
    try:
        return HistoryRule(int(size), int(ms) / 1000)
    except ValueError:
        return None


class HistoryStreams:
    """The history streams under ``prefix``, through the client ``client()`` returns."""

    def __init__(
        self, prefix: str, storage: str, timeout: float, client: Callable[[], Client]
    ) -> None:
        self.prefix = prefix
        self.name = stream_safe(prefix)
        self.storage = js_api.StorageType(storage)
        self.timeout = timeout
        self._connected = client
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._made: set[str] = set()  # streams known to exist through the current client
        self._record_age = 0.0  # the record stream's max_age, as far as this node knows

    # -- names -------------------------------------------------------------------------

    def entries(self, key: str) -> str:
        return f"{self.name}_h{key}"

    def entries_subject(self, key: str, room: str) -> str:
        return f"{self.prefix}.h.{key}.{subject_token(room)}"

    @property
    def records(self) -> str:
        return f"{self.name}_hmeta"

    def record_subject(self, room: str) -> str:
        return f"{self.prefix}.hm.{subject_token(room)}"

    # -- messages ------------------------------------------------------------------------

    def context(self) -> JetStreamContext:
        """The JetStream context of the connected client (``ConnectionError`` if none)."""
        client = self._connected()
        if client is not self._client or self._js is None:
            self._client, self._js = client, client.jetstream(timeout=self.timeout)
            self.forget()
        return self._js

    def forget(self) -> None:
        """Check every stream again at next use."""
        self._made.clear()
        self._record_age = 0.0

    async def get(self, stream: str, subject: str, at: int | None = None) -> Stored | None:
        """The subject's last message, or with ``at`` its first at or after that
        sequence; None when there is none (or no stream)."""
        js = self.context()
        try:
            if at is None:
                msg = await js.get_last_msg(stream, subject)
            else:
                msg = await js.get_msg(stream, seq=at, subject=subject, next=True)
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
            raise NotARecord(f"a message in {stream} is not a history record") from None

    async def put(
        self, stream: str, subject: str, data: bytes, expect: int, epoch: str, offset: int, key: str
    ) -> bool:
        """Publish if the subject's last sequence is ``expect`` (0: it is empty);
        False when it is not, or when the stream is gone (made again at next use)."""
        headers = {OFFSET: str(offset), EPOCH: epoch, RULE: key, EXPECT: str(expect)}
        try:
            await self.context().publish(
                subject, data, timeout=self.timeout, stream=stream, headers=headers
            )
        except js_errors.NoStreamResponseError:
            self._made.discard(stream)
            return False
        except js_errors.APIError as exc:
            if getattr(exc, "err_code", None) == _WRONG_LAST:
                return False
            raise
        return True

    # -- streams ---------------------------------------------------------------------

    async def ensure(self, key: str, rule: HistoryRule) -> None:
        """The rule's entry stream and the record stream, made if need be."""
        js = self.context()
        name = self.entries(key)
        if name not in self._made:
            config = js_api.StreamConfig(
                name=name,
                subjects=[f"{self.prefix}.h.{key}.*"],
                retention=js_api.RetentionPolicy.LIMITS,
                discard=js_api.DiscardPolicy.OLD,
                max_msgs_per_subject=rule.size,
                max_age=int(key.rpartition("_")[2]) / 1000,
                storage=self.storage,
            )
            await self._add(js, config)  # there already (another storage, say): use it
            self._made.add(name)
        await self._ensure_records(js, max(rule.ttl, STATE_TTL) + RECORD_MARGIN)

    async def _ensure_records(self, js: JetStreamContext, needed: float) -> None:
        """The record stream, with a ``max_age`` of at least ``needed``."""
        name = self.records
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
            needed = age or float("inf")  # 0: records never expire
        self._record_age = max(self._record_age, needed)
        self._made.add(name)

    async def _add(self, js: JetStreamContext, config: js_api.StreamConfig) -> bool:
        """Make the stream; False when one of that name is there already."""
        try:
            await js.add_stream(config)
        except js_errors.APIError as exc:
            if no_jetstream(exc):
                raise ImproperlyConfigured(HISTORY_NEEDS_JETSTREAM) from exc
            if getattr(exc, "err_code", None) != _STREAM_IN_USE:
                raise
            return False
        return True

    async def delete_all(self) -> None:
        """Delete every history stream under the prefix (entries and records)."""
        js = self.context()
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
        self.forget()
