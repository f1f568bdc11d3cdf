"""The supervised Redis subscriber: one connection that holds every subscription of a node.

A :class:`Subscriber` keeps one dedicated connection subscribed to every
subject the bus wants. A supervisor task reconnects it with a backoff
(reset after each success) and subscribes again to every subject; a PING
sent after the SUBSCRIBE commands marks the moment they are all in place, and
only then is the bus "up". A keepalive PINGs the connection and cuts it when
it stops answering. When the connection fails, the supervisor tells a
restart of Redis ("down") from Redis cutting this subscriber off on purpose
("dropped", almost always ``client-output-buffer-limit pubsub``) by the
server's run id.

On Redis Cluster (``sharded``), one subscriber holds the subjects of one
shard with ``SSUBSCRIBE`` (one command per hash slot, as Redis wants), and
tells its owner (:mod:`.shards`) through ``moved()`` when the shard answers
``MOVED`` or gives up a channel whose slot moved away.

Loop safety: a subscriber belongs to the bus's home loop; every method
must run there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from ...tasks import spawn
from ..bus import Reporter, Sink
from ..supervisor import Supervisor
from .client import ResponseError, info_field, key_slot

__all__ = ["Subscriber"]

logger = logging.getLogger("wshub_channels.layers.redis")

BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0  # so delivery resumes within about a second of Redis answering
SUBSCRIBE_CHUNK = 1000
BARRIER = b"wshub-ready"


class Subscriber(Supervisor):
    """One supervised subscriber connection.

    ``connection()`` returns a new, unconnected redis-py connection;
    ``wanted()`` the subjects to hold; ``dispatch(subject, data)`` takes each
    message; ``same_server(run_id)`` says whether Redis still answers as that
    server; ``failover()`` moves to the next host after a failed connect.
    """

    what = "redis subscriber"

    def __init__(
        self,
        connection: Callable[[], Any],
        wanted: Callable[[], set[str]],
        dispatch: Sink,
        report: Reporter,
        same_server: Callable[[str], Awaitable[bool]],
        failover: Callable[[], None],
        command_timeout: float,
        ping_interval: float,
        sharded: bool = False,
        moved: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.sharded = sharded
        self._moved = moved
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._kinds = (b"smessage", b"ssubscribe") if sharded else (b"message", b"subscribe")
        self._connection = connection
        self._wanted = wanted
        self._dispatch = dispatch
        self._report = report
        self._same_server = same_server
        self._failover = failover
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self._conn: Any = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._snapshot: set[str] = set()
        self._last_read = 0.0

    async def stop(self) -> None:
        """Stop supervising and close the connection."""
        await self._stop_task()

    def abandon(self) -> None:
        """Forget the connection without I/O (its loop is gone)."""
        super().abandon()
        self._conn = None
        self._confirm.clear()

    async def subscribe(self, subject: str) -> None:
        """Subscribe now if connected (waiting for the confirmation), else at reconnect."""
        conn = self._conn
        if not self.up or conn is None:
            return  # the supervisor subscribes to every subject once Redis answers
        future = self._confirm.get(subject)
        if future is None:
            future = self._confirm[subject] = asyncio.get_running_loop().create_future()
            self._snapshot.add(subject)
            try:
                await conn.send_command(self._sub, subject, check_health=False)
            except Exception as exc:
                self._confirm.pop(subject, None)
                logger.debug("SUBSCRIBE %s deferred to the reconnect: %r", subject, exc)
                return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), self.command_timeout)

    async def unsubscribe(self, subject: str) -> None:
        conn = self._conn
        self._snapshot.discard(subject)
        if not self.up or conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.send_command(self._unsub, subject, check_health=False)

    async def _supervise(self, generation: int) -> None:
        """Keep the subscriber connected: reconnect with backoff, resubscribe, read."""
        delay = BACKOFF_MIN
        while generation == self._generation:
            conn = None
            run_id = None
            try:
                conn = self._connection()
                await conn.connect()
                await conn.send_command("INFO", "server", check_health=False)
                run_id = info_field(await conn.read_response(), "run_id")
                self._conn = conn
                self._snapshot = self._wanted()
                await self._send_subscribe(conn, sorted(self._snapshot))
                await conn.send_command("PING", BARRIER, check_health=False)
                delay = BACKOFF_MIN
                await self._read(conn, generation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("Redis subscriber failed", exc_info=True)
                self.last_error = repr(exc)
                if generation != self._generation:
                    return
                was_up, self.up = self.up, False
                self._conn = None
                if was_up:
                    dropped = run_id is not None and await self._same_server(run_id)
                    self._report("dropped" if dropped else "down", exc)
                elif run_id is None:
                    self._failover()
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def resync(self) -> None:
        """Catch up with ``wanted()`` now (its shard's slots changed): a barrier round."""
        conn = self._conn
        if self.up and conn is not None:
            spawn(self._send_barrier(conn), "redis subscriber resync")

    async def _send_barrier(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await conn.send_command("PING", BARRIER, check_health=False)

    async def _send_subscribe(self, conn: Any, subjects: list[str]) -> None:
        for chunk in self._chunks(subjects):
            await conn.send_command(self._sub, *chunk, check_health=False)

    def _chunks(self, subjects: list[str]) -> list[list[str]]:
        """Subjects in commands: up to a thousand a command, one hash slot a command sharded."""
        if self.sharded:
            slots: dict[int, list[str]] = {}
            for subject in subjects:
                slots.setdefault(key_slot(subject.encode()), []).append(subject)
            return list(slots.values())
        return [
            subjects[start : start + SUBSCRIBE_CHUNK]
            for start in range(0, len(subjects), SUBSCRIBE_CHUNK)
        ]

    async def _read(self, conn: Any, generation: int) -> None:
        """Read the subscriber connection until it fails."""
        loop = asyncio.get_running_loop()
        keepalive = spawn(self._keepalive(conn, generation), "redis keepalive")
        try:
            message, confirmed = self._kinds
            while generation == self._generation:
                try:
                    reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
                except ResponseError as exc:
                    if self._moved is None:
                        raise
                    # MOVED for a subscription sent on a stale slot map: the owner
                    # refreshes it and resyncs every shard.
                    logger.debug("redis shard subscriber: %r", exc)
                    self._moved()
                    continue
                self._last_read = loop.time()
                if reply is None:
                    continue
                if isinstance(reply, bytes):  # PING outside subscribed mode (an idle shard)
                    if reply == BARRIER:
                        await self._barrier(conn)
                    continue
                kind = reply[0]
                if kind == message:
                    self._dispatch(reply[1].decode(), reply[2])
                    # Let the server write what this message fanned out before the
                    # next one: with a backlog buffered, the reader would otherwise
                    # deliver many broadcasts before any frame reached a socket.
                    await asyncio.sleep(0)
                elif kind == b"sunsubscribe" and self._moved is not None:
                    subject = reply[1].decode()
                    if subject in self._snapshot:
                        # Redis gave up a channel whose slot moved to another shard.
                        self._snapshot.discard(subject)
                        self._moved()
                elif kind == confirmed:
                    future = self._confirm.pop(reply[1].decode(), None)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif kind == b"pong" and reply[1] == BARRIER:
                    await self._barrier(conn)
        finally:
            keepalive.cancel()

    async def _barrier(self, conn: Any) -> None:
        """Every subscription sent so far is in place: mark the bus up, or catch up first."""
        current = self._wanted()
        missing = current - self._snapshot
        extra = self._snapshot - current
        self._snapshot = current
        if missing:
            await self._send_subscribe(conn, sorted(missing))
            await conn.send_command("PING", BARRIER, check_health=False)
            return
        if extra:
            for chunk in self._chunks(sorted(extra)):
                await conn.send_command(self._unsub, *chunk, check_health=False)
        was_up, self.up = self.up, True
        self.last_error = None
        for future in self._confirm.values():
            if not future.done():
                future.set_result(None)
        self._confirm.clear()
        self._up_event.set()
        if not was_up:
            self._report("up", None)

    async def _keepalive(self, conn: Any, generation: int) -> None:
        """PING the subscriber regularly; cut a connection that stopped answering."""
        loop = asyncio.get_running_loop()
        self._last_read = loop.time()
        while generation == self._generation:
            await asyncio.sleep(self.ping_interval)
            if loop.time() - self._last_read > 3 * self.ping_interval:
                logger.warning(
                    "Redis subscriber silent for %.0fs; reconnecting", 3 * self.ping_interval
                )
                await conn.disconnect(nowait=True)
                return
            with contextlib.suppress(Exception):
                await conn.send_command("PING", check_health=False)
