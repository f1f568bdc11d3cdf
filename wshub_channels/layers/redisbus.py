"""``RedisHubLayer``: the shared core over Redis pub/sub, lists and sorted sets.

The transport here only moves bytes; fan-out, echo suppression, envelopes
and names are the core's (:mod:`wshub_channels.layers.base`).

- **Subjects** are Redis pub/sub channels. One dedicated connection holds
  every subscription of the node; a supervisor reconnects it with a backoff
  (reset after each success) and subscribes again to every subject. A PING
  sent after the SUBSCRIBE commands marks the moment they are all in place.
- **Publishes and commands** use a bounded blocking pool, so a burst of
  handshakes waits for a connection instead of failing with "Too many
  connections". Every command has a socket timeout, so a caller never
  waits on a dead Redis longer than ``connect_timeout`` + ``command_timeout``.
- **Requests** are published to a node subject with a one-byte frame marker
  (``0x00``; replies ``0x01``), which no msgpack envelope starts with, and
  answered on the requester's private inbox subject. ``PUBLISH`` returns the
  number of subscribers, so a request to a node that is gone fails at once
  and a gather waits only for the nodes that exist.
- **Normal channels** are Redis lists of ``<13-digit deadline ms><message>``,
  pushed by a Lua script that drops expired heads and enforces capacity in
  one step. A receive moves the head into a per-reader list with ``BLMOVE``,
  so a receive cancelled mid-flight puts the message back instead of
  losing it.
- **Stored group members** (normal channels) are sorted sets scored by
  their expiry time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from typing import Any, ClassVar

import msgpack
from django.core.exceptions import ImproperlyConfigured

from ..tasks import spawn
from .base import HubLayer
from .names import random_token
from .transport import BusStatus, LoopBoundTransport, NoResponders

try:
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        "RedisHubLayer needs redis-py: pip install 'wshub-channels[redis]'"
    ) from exc

__all__ = ["RedisHubLayer", "RedisTransport"]

logger = logging.getLogger("wshub_channels.layers.redis")

REQUEST = 0x00
REPLY = 0x01
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0  # so delivery resumes within about a second of Redis answering
SUBSCRIBE_CHUNK = 1000
BARRIER = b"wshub-ready"
POP_BLOCK = 5  # seconds one BLMOVE blocks before it is issued again

_PUSH = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local expired = 0
while true do
  local head = redis.call('LINDEX', key, 0)
  if not head or tonumber(string.sub(head, 1, 13)) > now then break end
  redis.call('LPOP', key)
  expired = expired + 1
end
if redis.call('LLEN', key) >= tonumber(ARGV[2]) then return {0, expired} end
redis.call('RPUSH', key, ARGV[4])
redis.call('PEXPIRE', key, ARGV[3])
return {1, expired}
"""


def _build_client(host: Any, pool_size: int, common: dict[str, Any]) -> aioredis.Redis:
    """Build a pooled client from one ``hosts`` entry (URL, (host, port), or dict)."""
    if isinstance(host, (tuple, list)):
        host = {"host": host[0], "port": int(host[1])}
    if isinstance(host, str):
        host = {"address": host}
    if not isinstance(host, dict):
        raise ImproperlyConfigured(f"RedisHubLayer: cannot use host {host!r}")
    options = dict(host)
    if "sentinels" in options:
        sentinels = [tuple(s) for s in options.pop("sentinels")]
        master = options.pop("master_name")
        sentinel_kwargs = options.pop("sentinel_kwargs", None)
        sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **common)  # type: ignore[no-untyped-call]
        client: aioredis.Redis = sentinel.master_for(master, **options, **common)
        return client
    address = options.pop("address", None)
    kwargs = {
        **common,
        **options,
        "max_connections": pool_size,
        "timeout": common["socket_timeout"],
    }
    if address is not None:
        pool = aioredis.BlockingConnectionPool.from_url(address, **kwargs)
    else:
        pool = aioredis.BlockingConnectionPool(**kwargs)
    return aioredis.Redis.from_pool(pool)


class _Gather:
    """The replies to one request, complete at ``want`` answers."""

    __slots__ = ("answers", "future", "replies", "want")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.replies: list[bytes] = []
        self.answers = 0
        self.want: int | None = None

    def add(self, reply: bytes | None) -> None:
        self.answers += 1
        if reply is not None:
            self.replies.append(reply)
        self.check()

    def check(self) -> None:
        if self.want is not None and self.answers >= self.want and not self.future.done():
            self.future.set_result(None)


class RedisTransport(LoopBoundTransport):
    """Redis pub/sub, requests, list queues and sorted-set membership for one node."""

    shared = True

    def __init__(
        self,
        hosts: list[Any],
        prefix: str,
        name: str,
        pool_size: int = 32,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        ping_interval: float = 5.0,
    ) -> None:
        super().__init__()
        if not hosts:
            raise ImproperlyConfigured("RedisHubLayer needs at least one entry in hosts")
        self.hosts = list(hosts)
        self.prefix = prefix
        self.name = name
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self.inbox = f"{prefix}.i.{name}.{random_token(8)}"
        self._host_index = 0
        self._client: aioredis.Redis | None = None
        self._blocking: aioredis.Redis | None = None
        self._push: Any = None
        self._sub_conn: Any = None
        self._supervisor: asyncio.Task[None] | None = None
        self._generation = 0
        self._up = False
        self._up_event: asyncio.Event | None = None
        self._last_error: str | None = None
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._pending: dict[int, _Gather] = {}
        self._ids = itertools.count(1)
        self._snapshot: set[str] = set()
        self._last_read = 0.0

    # -- connection --------------------------------------------------------------

    def _common(self, socket_timeout: float | None) -> dict[str, Any]:
        return {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": socket_timeout,
            "client_name": f"wshub-{self.name}",
            "health_check_interval": 0,
            # RESP2: pub/sub messages arrive as plain replies on our own reader.
            "protocol": 2,
        }

    async def _open(self) -> None:
        host = self.hosts[self._host_index % len(self.hosts)]
        self._client = _build_client(host, self.pool_size, self._common(self.command_timeout))
        self._push = self._client.register_script(_PUSH)
        self._blocking = None
        self._generation += 1
        self._up_event = asyncio.Event()
        self._supervisor = spawn(self._supervise(self._generation), "redis subscriber")
        try:
            await asyncio.wait_for(self._up_event.wait(), self.connect_timeout)
        except TimeoutError:
            # Keep supervising: the bus counts as down until Redis answers.
            logger.warning("Redis at %s is not answering yet: %s", _safe(host), self._last_error)

    async def _shut(self) -> None:
        self._generation += 1
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for client in (self._client, self._blocking):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._forget()

    def _abandon(self) -> None:
        self._generation += 1
        self._supervisor = None
        self._forget()

    def _forget(self) -> None:
        self._client = self._blocking = self._sub_conn = None
        self._up = False
        self._confirm.clear()
        for gather in self._pending.values():
            gather.future.cancel()
        self._pending.clear()

    def status(self) -> BusStatus:
        return BusStatus(connected=self._up, last_error=self._last_error)

    async def _supervise(self, generation: int) -> None:
        """Keep the subscriber connected: reconnect with backoff, resubscribe, read."""
        delay = BACKOFF_MIN
        while generation == self._generation:
            conn = None
            run_id = None
            try:
                assert self._client is not None
                pool = self._client.connection_pool
                kwargs = {**pool.connection_kwargs, "socket_timeout": None}
                conn = pool.connection_class(**kwargs)
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("INFO", "server", check_health=False)
                run_id = _info_field(await conn.read_response(), "run_id")
                self._sub_conn = conn
                self._snapshot = {self.inbox, *self.subjects}
                await self._send_subscribe(conn, sorted(self._snapshot))
                await conn.send_command("PING", BARRIER, check_health=False)
                delay = BACKOFF_MIN
                await self._read(conn, generation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("Redis subscriber failed", exc_info=True)
                self._last_error = repr(exc)
                if generation != self._generation:
                    return
                was_up, self._up = self._up, False
                self._sub_conn = None
                if was_up:
                    dropped = run_id is not None and await self._same_server(run_id)
                    self.report("dropped" if dropped else "down", exc)
                elif run_id is None and len(self.hosts) > 1:
                    self._next_host()
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _next_host(self) -> None:
        """Fail over to the next entry of ``hosts`` (the current one cannot be reached)."""
        old = self._client
        self._host_index += 1
        host = self.hosts[self._host_index % len(self.hosts)]
        logger.warning("Redis unreachable; trying %s", _safe(host))
        self._client = _build_client(host, self.pool_size, self._common(self.command_timeout))
        self._push = self._client.register_script(_PUSH)
        if old is not None:
            spawn(old.aclose(), "close old redis client")

    async def _same_server(self, run_id: str) -> bool:
        """True when Redis answers as the same server: it cut us off on purpose.

        That is almost always ``client-output-buffer-limit pubsub`` (a
        subscriber that fell behind); a restart changes the run id.
        """
        try:
            assert self._client is not None
            info = await self._client.info("server")
        except Exception:
            return False
        return bool(info.get("run_id") == run_id)

    async def _send_subscribe(self, conn: Any, subjects: list[str]) -> None:
        for start in range(0, len(subjects), SUBSCRIBE_CHUNK):
            chunk = subjects[start : start + SUBSCRIBE_CHUNK]
            await conn.send_command("SUBSCRIBE", *chunk, check_health=False)

    async def _read(self, conn: Any, generation: int) -> None:
        """Read the subscriber connection until it fails."""
        loop = asyncio.get_running_loop()
        keepalive = spawn(self._keepalive(conn, generation), "redis keepalive")
        try:
            while generation == self._generation:
                reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
                self._last_read = loop.time()
                if reply is None:
                    continue
                kind = reply[0]
                if kind == b"message":
                    self._dispatch(reply[1].decode(), reply[2])
                    # Let the server write what this message fanned out before the
                    # next one: with a backlog buffered, the reader would otherwise
                    # deliver many broadcasts before any frame reached a socket.
                    await asyncio.sleep(0)
                elif kind == b"subscribe":
                    future = self._confirm.pop(reply[1].decode(), None)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif kind == b"pong" and reply[1] == BARRIER:
                    await self._barrier(conn)
        finally:
            keepalive.cancel()

    async def _barrier(self, conn: Any) -> None:
        """Every subscription sent so far is in place: mark the bus up, or catch up first."""
        current = {self.inbox, *self.subjects}
        missing = current - self._snapshot
        extra = self._snapshot - current
        self._snapshot = current
        if missing:
            await self._send_subscribe(conn, sorted(missing))
            await conn.send_command("PING", BARRIER, check_health=False)
            return
        if extra:
            await conn.send_command("UNSUBSCRIBE", *sorted(extra), check_health=False)
        self._up = True
        self._last_error = None
        for future in self._confirm.values():
            if not future.done():
                future.set_result(None)
        self._confirm.clear()
        if self._up_event is not None:
            self._up_event.set()
        self.report("up", None)

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

    def _dispatch(self, subject: str, data: bytes) -> None:
        marker = data[0] if data else None
        try:
            if marker == REQUEST:
                inbox, request_id, body = msgpack.unpackb(data[1:], raw=False)
                if inbox != self.inbox and self.request_handler is not None:
                    spawn(self._answer(subject, inbox, request_id, body), "redis request")
            elif marker == REPLY:
                request_id, reply = msgpack.unpackb(data[1:], raw=False)
                gather = self._pending.get(request_id)
                if gather is not None:
                    gather.add(reply)
            else:
                self.sink(subject, data)
        except (ValueError, TypeError, msgpack.ExtraData) as exc:
            self.report("bad_frame", exc)
        except Exception:
            logger.exception("delivering a message from %s failed", subject)

    async def _answer(self, subject: str, inbox: str, request_id: int, body: bytes) -> None:
        assert self.request_handler is not None
        reply = await self.request_handler(subject, body)
        frame = bytes([REPLY]) + msgpack.packb([request_id, reply], use_bin_type=True)
        try:
            await self._publish(inbox, frame)
        except Exception as exc:
            logger.warning("could not answer a request on %s: %r", subject, exc)

    # -- pub/sub ---------------------------------------------------------------------

    async def _publish(self, subject: str, data: bytes) -> None:
        client = self._client
        if client is None:
            raise ConnectionError("the Redis transport is closed")
        await client.publish(subject, data)

    async def _subscribe(self, subject: str) -> None:
        conn = self._sub_conn
        if not self._up or conn is None:
            return  # the supervisor subscribes to every subject once Redis answers
        future = self._confirm.get(subject)
        if future is None:
            future = self._confirm[subject] = asyncio.get_running_loop().create_future()
            self._snapshot.add(subject)
            try:
                await conn.send_command("SUBSCRIBE", subject, check_health=False)
            except Exception as exc:
                self._confirm.pop(subject, None)
                logger.debug("SUBSCRIBE %s deferred to the reconnect: %r", subject, exc)
                return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), self.command_timeout)

    async def _unsubscribe(self, subject: str) -> None:
        conn = self._sub_conn
        self._snapshot.discard(subject)
        if not self._up or conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.send_command("UNSUBSCRIBE", subject, check_health=False)

    async def _request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None
    ) -> list[bytes]:
        request_id = next(self._ids)
        gather = self._pending[request_id] = _Gather(asyncio.get_running_loop().create_future())
        frame = bytes([REQUEST]) + msgpack.packb([self.inbox, request_id, data], use_bin_type=True)
        try:
            if not self._up:
                raise ConnectionError(f"the Redis subscriber is down: {self._last_error}")
            assert self._client is not None
            listeners = int(await self._client.publish(subject, frame))
            if subject in self.subjects:
                listeners -= 1  # our own subscription; we never answer ourselves
            if listeners <= 0:
                raise NoResponders(subject)
            gather.want = listeners if max_replies is None else min(listeners, max_replies)
            gather.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gather.future), timeout)
            return gather.replies
        finally:
            self._pending.pop(request_id, None)

    # -- normal channels and stored membership --------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def _command_client(self) -> aioredis.Redis:
        if self._client is None:
            raise ConnectionError("the Redis transport is closed")
        return self._client

    async def _queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        self._command_client()
        now_ms = int(time.time() * 1000)
        item = b"%013d" % (now_ms + int(expiry * 1000)) + data
        pushed, expired = await self._push(
            keys=[self._key("q", channel)], args=[now_ms, capacity, int(expiry * 1000), item]
        )
        for _ in range(int(expired)):
            self.report("expired", None)
        return bool(pushed)

    async def _queue_pop(self, channel: str) -> bytes:
        client = self._command_client()
        if self._blocking is None:
            pool = client.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": POP_BLOCK + self.command_timeout}
            blocking_pool = aioredis.BlockingConnectionPool(
                connection_class=pool.connection_class,
                max_connections=self.pool_size,
                timeout=None,
                **kwargs,
            )
            self._blocking = aioredis.Redis.from_pool(blocking_pool)
        key = self._key("q", channel)
        hold = self._key("h", f"{channel}:{random_token(8)}")
        while True:
            try:
                item = await self._blocking.blmove(key, hold, POP_BLOCK, "LEFT", "RIGHT")
            except asyncio.CancelledError:
                spawn(self._put_back(hold, key), "redis receive put-back")
                raise
            if item is None:
                continue
            await client.delete(hold)
            if int(item[:13]) <= time.time() * 1000:
                self.report("expired", None)
                continue
            data = item[13:]
            return data.encode() if isinstance(data, str) else data

    async def _put_back(self, hold: str, key: str) -> None:
        """Return what a cancelled receive moved aside to the head of its queue."""
        client = self._command_client()
        while await client.lmove(hold, key, "RIGHT", "LEFT") is not None:
            pass

    async def _store_group_add(self, group: str, channel: str, expiry: float) -> None:
        key = self._key("g", group)
        async with self._command_client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, {channel: time.time() + expiry})
            pipe.expire(key, max(1, math.ceil(expiry)))
            await pipe.execute()

    async def _store_group_discard(self, group: str, channel: str) -> None:
        await self._command_client().zrem(self._key("g", group), channel)

    async def _store_group_members(self, group: str) -> list[str]:
        key = self._key("g", group)
        async with self._command_client().pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        return [m.decode() for m in members]

    async def _flush(self) -> None:
        client = self._command_client()
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{self.prefix}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)


class RedisHubLayer(HubLayer):
    """The hub layer over Redis: interest-routed pub/sub plus broker-kept queues.

    Takes every :class:`~wshub_channels.layers.base.HubLayer` option plus:

    - ``hosts``: a list of Redis servers, each a URL (``redis://``,
      ``rediss://``, a password in the URL), a ``(host, port)`` pair, a dict
      of redis-py connection options (``{"address": url, ...}``), or a
      Sentinel dict ``{"sentinels": [(host, port)], "master_name": ...}``.
      One server carries the cluster; later entries are tried in turn when
      the current one cannot be reached (failover, not sharding).
    - ``pool_size`` (32): the most command connections per event loop; more
      concurrent commands wait for one instead of failing.
    - ``connect_timeout`` (2 s) and ``command_timeout`` (2 s): the bound on
      any wait for Redis.
    - ``ping_interval`` (5 s): the subscriber keepalive; a subscriber silent
      for three intervals is reconnected.
    """

    #: Redis takes values up to 512 MB; keep messages far below that.
    transport_max_bytes: ClassVar[int | None] = 64 * 1024 * 1024

    def __init__(
        self,
        hosts: list[Any] | None = None,
        pool_size: int = 32,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        ping_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        self._redis_options: dict[str, Any] = {
            "hosts": hosts or ["redis://127.0.0.1:6379"],
            "pool_size": pool_size,
            "connect_timeout": connect_timeout,
            "command_timeout": command_timeout,
            "ping_interval": ping_interval,
        }
        super().__init__(**kwargs)

    def make_transport(self) -> RedisTransport:
        return RedisTransport(prefix=self.prefix, name=self.node_id, **self._redis_options)


def _info_field(info: Any, name: str) -> str | None:
    """Read one field of a raw ``INFO`` reply."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def _safe(host: Any) -> str:
    """Describe a host without its password."""
    text = str(host.get("address", host) if isinstance(host, dict) else host)
    if "@" in text:
        scheme, _, rest = text.partition("://")
        text = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return text
