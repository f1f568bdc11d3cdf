"""What the Redis backend keeps in Redis: normal-channel queues and stored group members.

- **Normal channels** are Redis lists of ``<13-digit deadline ms><message>``,
  pushed by a Lua script that drops expired heads and enforces capacity in
  one step. A receive moves the head into its own hold list with ``BLMOVE``
  (:mod:`.holds`): the hold has a TTL before the move, a receive cancelled
  after the move gives the message back to the head of the queue, and the
  holds of receivers that died are recovered by the next receive.
- **Stored group members** (normal channels) are sorted sets scored by their
  expiry time.
- **A group send's bus work** is one round trip: a non-transactional
  pipeline of PUBLISH, the purge of lapsed members and their lookup. Pushes
  to the stored members, if any, are one more: one pipeline for all.

Loop safety: the store shares its bus's home loop (:mod:`..homeloop`): every
method that touches a client runs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

from ...core.names import random_token
from ...tasks import spawn
from ..bus import Bus
from ..homeloop import HomeLoop, on_home, settle_on_home
from ..store import BrokerStore, Popped
from .client import NoScriptError, aioredis, delete_matching
from .holds import ARM, ARM_SHA, CLAIM, LEASE_SLACK, UNCLAIM

__all__ = ["RedisStore"]

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


class RedisStore(BrokerStore):
    """Queues and stored memberships under ``prefix``, through the current command client.

    The bus (:class:`~.bus.RedisBus`) owns the connection: it gives the store
    its command client (:meth:`use`) and publishes through it.
    """

    def __init__(
        self,
        home: HomeLoop,
        prefix: str,
        pool_size: int,
        command_timeout: float,
        expiry: float = 60.0,
    ) -> None:
        super().__init__()
        self.home = home
        self.prefix = prefix
        self.expiry = expiry  # the layer's: how long a hold list may outlive its receive
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self.client: aioredis.Redis | None = None
        #: The clients of blocking receives; built on first use.
        self.blocking: aioredis.Redis | None = None
        self._push: Any = None
        self._claim: Any = None
        self._give_back: Any = None
        #: Put-backs still running, by queue key: the next receive of that queue
        #: waits for them, so a message given back keeps its place at the head.
        self._putting_back: dict[str, asyncio.Task[Any]] = {}

    def use(self, client: aioredis.Redis) -> None:
        """Send commands through ``client`` from now on."""
        self.client = client
        self._push = client.register_script(_PUSH)
        self._claim = client.register_script(CLAIM)
        self._give_back = client.register_script(UNCLAIM)

    def key(self, kind: str, name: str) -> str:
        """The key of ``name`` (a channel, a group) of one ``kind``: ``q``, ``hs``, ``g``."""
        return f"{self.prefix}:{kind}:{name}"

    def hold_key(self, channel: str, token: str) -> str:
        """The key of one receive's hold list on ``channel``."""
        return self.key("h", f"{channel}:{token}")

    def group_key(self, group: str) -> str:
        return self.key("g", group)

    def pipe_publish(self, pipe: Any, subject: str, data: bytes) -> None:
        """Queue the publish of ``data`` on ``subject`` in ``pipe``."""
        pipe.publish(subject, data)

    def published(self, subject: str, receivers: int) -> None:
        """A publish on ``subject`` reached ``receivers`` subscribers; raise to refuse it."""

    def command_client(self) -> aioredis.Redis:
        if self.client is None:
            raise ConnectionError("the Redis bus is closed")
        return self.client

    # -- groups --------------------------------------------------------------------

    @on_home
    async def publish_group(self, bus: Bus, subject: str, data: bytes, group: str) -> list[str]:
        """PUBLISH, then purge and list the group's stored members: one round trip.

        The publish goes through this store's client, which is the bus's.
        """
        key = self.group_key(group)
        async with self.command_client().pipeline(transaction=False) as pipe:
            self.pipe_publish(pipe, subject, data)
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            count, _, members = await pipe.execute()
        self.published(subject, int(count))
        return [m.decode() for m in members]

    @on_home
    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        key = self.group_key(group)
        async with self.command_client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, {channel: time.time() + expiry})
            pipe.expire(key, max(1, math.ceil(expiry)))
            await pipe.execute()

    @on_home
    async def group_discard(self, group: str, channel: str) -> None:
        await self.command_client().zrem(self.group_key(group), channel)

    @on_home
    async def group_members(self, group: str) -> list[str]:
        key = self.group_key(group)
        async with self.command_client().pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        return [m.decode() for m in members]

    # -- queues --------------------------------------------------------------------

    def _item(self, data: bytes, expiry: float) -> tuple[int, int, bytes]:
        now_ms = int(time.time() * 1000)
        ttl_ms = int(expiry * 1000)
        return now_ms, ttl_ms, b"%013d" % (now_ms + ttl_ms) + data

    def _pushed(self, result: Any) -> bool:
        pushed, expired = result
        for _ in range(int(expired)):
            self.report("expired", None)
        return bool(pushed)

    @on_home
    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        return await self._queue_push(channel, data, capacity, expiry)

    async def _queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        self.command_client()
        now_ms, ttl_ms, item = self._item(data, expiry)
        keys = [self.key("q", channel)]
        return self._pushed(await self._push(keys=keys, args=[now_ms, capacity, ttl_ms, item]))

    @on_home
    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        """Push to every ``(channel, capacity)`` in one pipeline: one round trip."""
        now_ms, ttl_ms, item = self._item(data, expiry)
        sha = self._push.sha if self._push is not None else ""
        async with self.command_client().pipeline(transaction=False) as pipe:
            for channel, capacity in pushes:
                pipe.evalsha(sha, 1, self.key("q", channel), now_ms, capacity, ttl_ms, item)
            results = await pipe.execute(raise_on_error=False)
        outcome = []
        for (channel, capacity), result in zip(pushes, results, strict=True):
            if isinstance(result, NoScriptError):
                # Redis lost its script cache (a restart): this push loads it again.
                outcome.append(await self._queue_push(channel, data, capacity, expiry))
            elif isinstance(result, Exception):
                raise result
            else:
                outcome.append(self._pushed(result))
        return outcome

    def _blocking_client(self) -> aioredis.Redis:
        """The client of blocking receives: a pool like the commands', with a longer timeout."""
        client = self.command_client()
        if self.blocking is None:
            pool = client.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": POP_BLOCK + self.command_timeout}
            blocking_pool = aioredis.BlockingConnectionPool(
                connection_class=pool.connection_class,
                max_connections=self.pool_size,
                timeout=None,
                **kwargs,
            )
            self.blocking = aioredis.Redis.from_pool(blocking_pool)
        return self.blocking

    @on_home
    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        """Wait for the next live message of ``channel``; see :mod:`.holds`.

        One list per channel: the capacity is the push's.

        Cancelled, or failing, after the move, the receive gives the message
        back to the head of the queue before it ends; when even that fails,
        the hold's lease runs out and the next receive recovers it, or (the
        message was claimed already) it is counted as "receive_lost".
        """
        key, registry = self.key("q", channel), self.key("hs", channel)
        hold = self.hold_key(channel, random_token(8))
        item: bytes | None = None
        putting_back = self._putting_back.get(key)
        if putting_back is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(putting_back)  # its failure is logged by spawn
        try:
            while True:
                item = None
                item = await self._move(key, hold, registry)
                if item is None:
                    continue
                if not await self._claim(keys=[hold, registry]):
                    item = None  # recovered by another receive: it is back in the queue
                    continue
                if int(item[:13]) <= time.time() * 1000:
                    self.report("expired", None)
                    continue
                popped = Popped(memoryview(item)[13:])
                popped.receipt = (key, hold, registry, item)
                return popped
        except BaseException:
            # Give back what the move may have taken before this receive ends, so a
            # close() that follows finds no command still in flight.
            giving_back = spawn(self._unclaim(key, hold, registry, item), "redis receive give-back")
            with contextlib.suppress(Exception):
                await asyncio.shield(giving_back)
            raise

    async def _move(self, key: str, hold: str, registry: str) -> bytes | None:
        """Arm the hold and move the head message into it: the message, or None.

        ``ARM`` and a non-blocking ``LMOVE`` go in one pipeline (one round
        trip when a message is waiting). When the queue is empty, the receive
        arms again naming the dead holds ARM found, if any (a script touches
        only the keys it is given), then waits in ``BLMOVE``. When ARM found
        dead holds, the message taken goes back first, so theirs (older) come
        out before it.
        """
        lease_ms = int((POP_BLOCK + self.command_timeout + LEASE_SLACK) * 1000)
        named: list[str] = []
        for _ in range(3):
            keys = [key, hold, registry, *named]
            async with self.command_client().pipeline(transaction=False) as pipe:
                pipe.evalsha(ARM_SHA, len(keys), *keys, lease_ms, self._hold_ttl_ms())
                pipe.lmove(key, hold, "LEFT", "RIGHT")
                armed, item = await pipe.execute(raise_on_error=False)
            if isinstance(item, Exception):
                raise item
            if isinstance(armed, NoScriptError):
                # Redis lost its scripts (a restart). The claim works on an unarmed hold too.
                await self.command_client().script_load(ARM)
                if item is None:
                    continue
            elif isinstance(armed, Exception):
                raise armed
            else:
                self._recovered(key, *armed[:3])
                named = [_text(dead) for dead in armed[3:]]
            if not named:
                if item is not None:
                    return _as_bytes(item)
                break
            if item is not None:
                # Dead holds came first: give this message back to the head, behind
                # their older ones, and take the head again once they are recovered.
                await self._give_back(keys=[key, hold, registry], args=[self._hold_ttl_ms(), b""])
        item = await self._blocking_client().blmove(key, hold, POP_BLOCK, "LEFT", "RIGHT")
        return None if item is None else _as_bytes(item)

    def _hold_ttl_ms(self) -> int:
        return int((self.expiry + POP_BLOCK + self.command_timeout + LEASE_SLACK) * 1000)

    def _recovered(self, key: str, messages: int, expired: int, holds: int) -> None:
        for _ in range(int(holds)):
            self.report("hold_recovered", LookupError(f"{messages} message(s) back in {key}"))
        for _ in range(int(expired)):
            self.report("expired", None)

    @settle_on_home
    def queue_unpop(self, data: bytes) -> None:
        """Put back a popped message whose receive was cancelled, in a task of its own.

        The next receive of the same queue waits for it (``_putting_back``).
        """
        receipt = getattr(data, "receipt", None)
        task = spawn(self._unpop(data), "redis put-back of a cancelled receive")
        if receipt is not None:
            key = receipt[0]
            self._putting_back[key] = task

            def done(_: asyncio.Task[Any]) -> None:
                if self._putting_back.get(key) is task:
                    del self._putting_back[key]

            task.add_done_callback(done)

    async def _unpop(self, popped: bytes) -> None:
        """Put back, at the head of its queue, a message whose receive was cancelled."""
        receipt = getattr(popped, "receipt", None)
        if receipt is None:
            self.report("receive_lost", LookupError("a popped message without its receipt"))
            return
        await self._unclaim(*receipt)

    async def _unclaim(self, key: str, hold: str, registry: str, item: bytes | None) -> None:
        """Give back what a receive that ended early held (its hold, or its claimed copy)."""
        try:
            moved, expired = await self._give_back(
                keys=[key, hold, registry], args=[self._hold_ttl_ms(), item or b""]
            )
        except Exception as exc:
            if item is not None:  # it may have been claimed: then this copy was the last
                self.report("receive_lost", exc)
            raise
        for _ in range(int(moved)):
            self.report("put_back", None)
        for _ in range(int(expired)):
            self.report("expired", None)

    @on_home
    async def flush(self) -> None:
        """Delete every key under the prefix."""
        await delete_matching(self.command_client(), f"{self.prefix}:*")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode()
