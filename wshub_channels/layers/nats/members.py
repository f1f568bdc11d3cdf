"""Stored group members on NATS: one key-value bucket, mirrored on every node by a watch.

A group's normal-channel members (worker queues in a group) must outlive
any node, so they live in JetStream key-value: the bucket
``<PREFIX>_groups`` holds one key per group (the core's name token) whose
value is the msgpack map ``{channel: deadline}`` (epoch seconds); the
bucket's ``ttl`` is ``group_expiry``, so a key nobody renews goes away.

Every node watches the whole bucket and keeps a local mirror, so the
lookup in ``publish_group`` (every ``group_send``) costs no round trip.
Changes are compare-and-set on the key's revision, retried on a conflict,
and enter this node's mirror at once: a node's next ``group_send`` sees its
own ``group_add``; other nodes see it as soon as the watch delivers it. The
watch starts again after every reconnect, reloading the whole mirror (the
server may have dropped its consumer meanwhile). Without JetStream there is
no bucket: lookups find nothing; storing raises ``ImproperlyConfigured``.

Loop safety: belongs to the bus's home loop; every method must run there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import msgpack
from django.core.exceptions import ImproperlyConfigured

from ...core.names import subject_token
from ...log import Throttle
from ...tasks import spawn
from .client import JetStreamContext, KeyValue, js_errors
from .streams import JETSTREAM_MISSING, no_jetstream

__all__ = ["StoredMembers"]

logger = logging.getLogger("wshub_channels.layers.nats")
_log = Throttle(logger, 60.0)

CAS_ATTEMPTS = 50
_WRONG_LAST = (10071, 10164)  # the key changed since the revision we read
_DELETED = ("DEL", "PURGE")

#: key -> (members with their deadlines, revision)
Mirror = dict[str, tuple[dict[str, float], int]]


class StoredMembers:
    """The bucket ``bucket`` of stored members, and this node's mirror of it."""

    def __init__(self, bucket: str, group_expiry: float, timeout: float) -> None:
        self.bucket, self.group_expiry, self.timeout = bucket, group_expiry, timeout
        self.kv: KeyValue | None = None
        #: False once the server said it has no JetStream; None until known.
        self.available: bool | None = None
        self._mirror: Mirror = {}
        self._ready = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._watcher: Any = None

    async def start(self, js: JetStreamContext) -> None:
        """Open the bucket (creating it) and (re)start the watch that fills the mirror.

        After a reconnect, the mirror loaded before keeps answering lookups
        until the new watch has loaded its replacement.
        """
        await self._stop_watch()
        try:
            kv = await self._open(js)
            watcher = await kv.watchall()
        except js_errors.APIError as exc:
            if not no_jetstream(exc):
                raise
            self.available, self.kv = False, None
            self._mirror.clear()
            logger.info("NATS has no JetStream here: normal channels are unavailable")
            return
        self.available, self.kv, self._watcher = True, kv, watcher
        self._watch = spawn(self._follow(watcher, self._ready), "nats group members watch")

    async def keep(self, js: JetStreamContext, current: Callable[[], bool]) -> None:
        """:meth:`start`, tried again every second while ``current()`` says the client
        it came from is still the bus's."""
        while current():
            try:
                return await self.start(js)
            except Exception as exc:
                _log.warning("watching stored group members failed: %r; trying again", exc)
            await asyncio.sleep(1.0)

    async def _open(self, js: JetStreamContext) -> KeyValue:
        try:
            return await js.create_key_value(
                bucket=self.bucket, history=1, ttl=max(self.group_expiry, 1.0)
            )
        except js_errors.BadRequestError:
            # There already, made with another group_expiry: use it as it is.
            return await js.key_value(self.bucket)

    async def stop(self) -> None:
        """Stop the watch and forget the bucket and the mirror (the bus closes)."""
        await self._stop_watch()
        self.abandon()

    async def _stop_watch(self) -> None:
        watch, watcher = self._watch, self._watcher
        self._watch = self._watcher = None
        if watch is not None:
            watch.cancel()
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()

    def abandon(self) -> None:
        """Forget the watch, the bucket and the mirror without I/O (the loop is gone)."""
        self._watch = self._watcher = None
        self.kv = self.available = None
        self._mirror = {}
        self._ready = asyncio.Event()

    async def _follow(self, watcher: Any, ready: asyncio.Event) -> None:
        """Apply the watch's updates: a fresh mirror until the initial load is done."""
        fresh: Mirror = {}
        loading = True
        async for entry in watcher:
            if entry is None:
                if loading:
                    self._mirror, loading = fresh, False
                    ready.set()
                continue
            _apply(fresh if loading else self._mirror, entry)

    # -- lookups -------------------------------------------------------------------

    async def members(self, group: str) -> list[str]:
        """The live stored members of ``group``: from the mirror, without a round trip."""
        if self.kv is None:
            return []
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self.timeout)
        if not self._ready.is_set():
            members, _ = await self._read(subject_token(group))
        else:
            members, _ = self._mirror.get(subject_token(group), ({}, 0))
        now = time.time()
        return [channel for channel, deadline in members.items() if deadline > now]

    async def _read(self, key: str) -> tuple[dict[str, float], int]:
        """The key's members and revision from the server (0: no such key)."""
        try:
            entry = await self._bucket().get(key)
        except js_errors.KeyNotFoundError:
            return {}, 0
        return _decode(entry.value), entry.revision or 0

    def _bucket(self) -> KeyValue:
        if self.kv is not None:
            return self.kv
        if self.available is False:
            raise ImproperlyConfigured(JETSTREAM_MISSING)
        raise ConnectionError("NATS is not connected")

    # -- changes ---------------------------------------------------------------------

    async def add(self, group: str, channel: str, expiry: float) -> None:
        """Store ``channel`` as a member of ``group`` for ``expiry`` seconds."""
        await self._change(group, channel, time.time() + expiry)

    async def discard(self, group: str, channel: str) -> None:
        """Forget ``channel``'s membership of ``group``."""
        await self._change(group, channel, None)

    async def _change(self, group: str, channel: str, deadline: float | None) -> None:
        kv = self._bucket()
        key = subject_token(group)
        for attempt in range(CAS_ATTEMPTS):
            if attempt or not self._ready.is_set():
                members, revision = await self._read(key)
            else:
                members, revision = self._mirror.get(key, ({}, 0))
            now = time.time()
            live = {c: d for c, d in members.items() if d > now and c != channel}
            if deadline is not None:
                live[channel] = deadline
            elif channel not in members:
                if attempt:
                    return  # not a member, as the server says
                continue  # the mirror may lag another node's add: ask the server
            try:
                if live:
                    value = msgpack.packb(live)
                    if revision:
                        revision = await kv.update(key, value, last=revision)
                    else:
                        revision = await kv.create(key, value)
                elif revision:
                    await kv.delete(key, last=revision)
            except js_errors.KeyWrongLastSequenceError:
                continue  # changed meanwhile: read it again
            except js_errors.APIError as exc:
                if getattr(exc, "err_code", None) in _WRONG_LAST:
                    continue
                raise
            if live:
                self._mirror[key] = (live, revision)
            else:
                self._mirror.pop(key, None)
            return
        raise ConnectionError(f"group {group!r} changed too often to store {channel!r}")

    async def flush(self) -> None:
        """Forget every stored member under the bucket."""
        if self.kv is None:
            return
        keys = list(self._mirror)
        if not self._ready.is_set():
            with contextlib.suppress(js_errors.NoKeysError):
                keys = await self.kv.keys()
        for key in keys:
            await self.kv.purge(key)
        self._mirror.clear()


def _apply(mirror: Mirror, entry: Any) -> None:
    """Apply one watched entry unless the mirror already has a newer revision."""
    key, revision = cast(str, entry.key), int(entry.revision or 0)
    known = mirror.get(key)
    if known is not None and known[1] >= revision:
        return
    if entry.operation in _DELETED or not entry.value:
        mirror.pop(key, None)
    else:
        mirror[key] = (_decode(entry.value), revision)


def _decode(value: bytes | None) -> dict[str, float]:
    if not value:
        return {}
    try:
        members = msgpack.unpackb(value, raw=False)
    except Exception:
        return {}
    return members if isinstance(members, dict) else {}
