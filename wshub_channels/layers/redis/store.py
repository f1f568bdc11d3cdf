"""What the Redis backend keeps in Redis: normal-channel queues and stored group members.

- **Normal channels** are Redis lists of ``<13-digit deadline ms><message>``,
  pushed by a Lua script that drops expired heads and enforces capacity in
  one step. A receive moves the head into a per-reader list with ``BLMOVE``,
  so a receive cancelled mid-flight puts the message back instead of
  losing it.
- **Stored group members** (normal channels) are sorted sets scored by their
  expiry time.
- **A group send's bus work** is one round trip: a non-transactional
  pipeline of PUBLISH, the purge of lapsed members and their lookup. Pushes
  to the stored members, if any, are one more: one pipeline for all.

Loop safety: a store belongs to the transport's home loop; every method must
run there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

from ...tasks import spawn
from ..names import random_token
from ..transport import Reporter
from .client import NoScriptError, aioredis

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


class RedisStore:
    """Queues and stored memberships under ``prefix``, through the current command client."""

    def __init__(
        self, prefix: str, pool_size: int, command_timeout: float, report: Reporter
    ) -> None:
        self.prefix = prefix
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self.report = report
        self.client: aioredis.Redis | None = None
        #: The clients of blocking receives; built on first use.
        self.blocking: aioredis.Redis | None = None
        self._push: Any = None

    def use(self, client: aioredis.Redis) -> None:
        """Send commands through ``client`` from now on."""
        self.client = client
        self._push = client.register_script(_PUSH)

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def command_client(self) -> aioredis.Redis:
        if self.client is None:
            raise ConnectionError("the Redis transport is closed")
        return self.client

    # -- groups --------------------------------------------------------------------

    async def publish_group(self, subject: str, data: bytes, group: str) -> list[str]:
        """PUBLISH, then purge and list the group's stored members: one round trip."""
        key = self.key("g", group)
        async with self.command_client().pipeline(transaction=False) as pipe:
            pipe.publish(subject, data)
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            _, _, members = await pipe.execute()
        return [m.decode() for m in members]

    async def group_add(self, group: str, channel: str, expiry: float) -> None:
        key = self.key("g", group)
        async with self.command_client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, {channel: time.time() + expiry})
            pipe.expire(key, max(1, math.ceil(expiry)))
            await pipe.execute()

    async def group_discard(self, group: str, channel: str) -> None:
        await self.command_client().zrem(self.key("g", group), channel)

    async def group_members(self, group: str) -> list[str]:
        key = self.key("g", group)
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

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        self.command_client()
        now_ms, ttl_ms, item = self._item(data, expiry)
        keys = [self.key("q", channel)]
        return self._pushed(await self._push(keys=keys, args=[now_ms, capacity, ttl_ms, item]))

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
                outcome.append(await self.queue_push(channel, data, capacity, expiry))
            elif isinstance(result, Exception):
                raise result
            else:
                outcome.append(self._pushed(result))
        return outcome

    async def queue_pop(self, channel: str) -> bytes:
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
        key = self.key("q", channel)
        hold = self.key("h", f"{channel}:{random_token(8)}")
        while True:
            blocking = self.blocking
            if blocking is None:
                raise ConnectionError("the Redis transport is closed")
            try:
                item = await blocking.blmove(key, hold, POP_BLOCK, "LEFT", "RIGHT")
            except asyncio.CancelledError:
                # Put back what the BLMOVE may have taken before the cancellation ends,
                # so a close() that follows finds no command still in flight.
                putting_back = spawn(self._put_back(hold, key), "redis receive put-back")
                with contextlib.suppress(Exception):
                    await asyncio.shield(putting_back)
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
        client = self.command_client()
        while await client.lmove(hold, key, "RIGHT", "LEFT") is not None:
            pass

    async def flush(self) -> None:
        """Delete every key under the prefix."""
        client = self.command_client()
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{self.prefix}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
