"""``RedisHistory``: room history in Redis, one stream and one meta hash per room.

Key layout, for a room under the layer's ``prefix``::

    {prefix}:rh:{<tag>}     a stream: the kept messages, entry id "<offset>-0",
                            fields "t" (Redis time of the append, ms) and "p" (payload)
    {prefix}:rhm:{<tag>}    a hash: "epoch", "top" (newest offset), "ttl" (ms)

``<tag>`` is the hex BLAKE2b digest (16 bytes) of the room's name in UTF-8:
room names are free Unicode strings of up to 256 characters, the digest is
short, fixed-length and free of the characters Redis treats specially. It
sits in braces, a Redis Cluster **hash tag**: both keys of a room hash to
the same slot, so the scripts below, which touch both, stay valid on a
Cluster. The ``rh``/``rhm`` kinds keep the keys apart from the store's
(``q``, ``g``, ``h``, ``hs``; :mod:`.store`).

- **Append** is one Lua script (:data:`APPEND`), so offsets stay
  consecutive across every node and process, and nothing is half-stored.
  It reads Redis ``TIME`` (one clock for every node); a missing meta hash
  means Redis lost or expired the room's state, so the room starts a new
  epoch (a random token from Python) at offset 1, and its stream, if any,
  is deleted. The message is added under id ``<offset>-0``, the stream is
  trimmed to ``size`` entries and of the entries older than ``ttl`` (from
  the oldest end only, so what is kept is a run of consecutive offsets).
  The stream expires ``ttl`` after the last append; the meta hash after
  ``max(ttl, STATE_TTL)``, so a reader that comes back within a day learns
  it missed messages instead of reading a new epoch's offsets as its own.
- **Read** is one Lua script (:data:`READ`): the room's epoch, newest
  offset and oldest live offset (entries older than the stored ``ttl``
  count as gone), and the entries the read may need. The read rules are
  applied once, in Python, by :func:`~wshub_channels.core.historyread.plan_read`
  and :func:`~wshub_channels.core.historyread.finish_page` on that answer.
- **Failures.** A Redis that cannot be reached raises
  :class:`~wshub_channels.errors.BusUnavailable`, within the bus's connect
  and command timeouts (and an overall bound on top). A read whose pooled
  connection turns out dead (Redis restarted while the loop was busy) is
  tried once more on a fresh one; an append never is, as the first may
  have been stored: the caller gets ``BusUnavailable`` and decides.
- **Limits.** The scripts need Redis 6.2 or later (``XTRIM MINID``,
  exclusive ranges), as the queues do (``BLMOVE``). Redis replicates
  asynchronously: after a Sentinel failover the new master may lack the
  last appends, so their offsets can be given again in the same epoch.

Loop safety: the history lives on its bus's connection and home loop, as
:class:`~.store.RedisStore` does: every method that touches a client runs
there (:mod:`..homeloop`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from typing import Any

from ...core.history import HistoryEntry, HistoryRule, Position, StoredPage
from ...core.historyread import ReadPlan, finish_page, plan_read
from ...core.historyring import STATE_TTL
from ...core.names import random_token
from ...errors import BusUnavailable
from ..historystore import HistoryStore
from ..homeloop import on_home
from .bus import RedisBus
from .client import ClusterError, RedisClusterException, aioredis, delete_matching

__all__ = ["APPEND", "READ", "RedisHistory", "room_tag"]

#: What a failed call to Redis raises: it could not be reached, or answered as a replica,
#: or (a Cluster) the slot's master is down or unknown.
_UNREACHABLE = (
    aioredis.ConnectionError,
    aioredis.TimeoutError,
    aioredis.ReadOnlyError,
    OSError,
    ClusterError,
    RedisClusterException,
)

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function offset_of(id)
  return tonumber(string.match(id, '^%d+'))
end
-- The offset of the oldest entry stored after horizon (ms), or top + 1 when none is.
-- Only the oldest end is looked at: expiry never leaves a hole in the kept run.
local function oldest_live(stream, horizon, top)
  local cursor = '-'
  while true do
    local batch = redis.call('XRANGE', stream, cursor, '+', 'COUNT', 32)
    if #batch == 0 then return top + 1 end
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][2]) > horizon then return offset_of(entry[1]) end
    end
    cursor = '(' .. batch[#batch][1]
  end
end
"""

#: KEYS: stream, meta. ARGV: new epoch, payload, size, ttl (ms), meta ttl (ms).
#: Returns {offset, epoch}.
APPEND = (
    _COMMON
    + """
local stream, meta = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[4])
local now = now_ms()
local state = redis.call('HMGET', meta, 'epoch', 'top')
local epoch, top = state[1], tonumber(state[2])
if not epoch or not top then
  -- No state: Redis lost it or it expired. A new epoch, whatever the stream holds.
  epoch, top = ARGV[1], 0
  redis.call('DEL', stream)
end
top = top + 1
redis.call('XADD', stream, 'MAXLEN', ARGV[3], top .. '-0', 't', now, 'p', ARGV[2])
redis.call('XTRIM', stream, 'MINID', oldest_live(stream, now - ttl, top) .. '-0')
redis.call('HSET', meta, 'epoch', epoch, 'top', top, 'ttl', ARGV[4])
redis.call('PEXPIRE', stream, ARGV[4])
redis.call('PEXPIRE', meta, ARGV[5])
return {top, epoch}
"""
)

#: KEYS: stream, meta. ARGV: after (-1: the newest), count (-1: all), the reader's epoch.
#: Returns {} for a room without state, else {epoch, top, oldest, offset, payload, ...}:
#: up to ``count`` live entries after ``after`` (or the newest ``count``), none when
#: the reader is in another epoch. Which of them make the page is for ``plan_read``.
READ = (
    _COMMON
    + """
local stream, meta = KEYS[1], KEYS[2]
local state = redis.call('HMGET', meta, 'epoch', 'top', 'ttl')
local epoch, top, ttl = state[1], tonumber(state[2]), tonumber(state[3])
if not epoch or not top or not ttl then return {} end
local oldest = oldest_live(stream, now_ms() - ttl, top)
local after, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {epoch, top, oldest}
if count == 0 or oldest > top or after > top or (after > 0 and ARGV[3] ~= epoch) then
  return out
end
local found
if after < 0 then
  if count > 0 then
    found = redis.call('XREVRANGE', stream, '+', oldest .. '-0', 'COUNT', ARGV[2])
  else
    found = redis.call('XREVRANGE', stream, '+', oldest .. '-0')
  end
  for i = #found, 1, -1 do
    out[#out + 1] = offset_of(found[i][1])
    out[#out + 1] = found[i][2][4]
  end
  return out
end
local first = math.max(after + 1, oldest) .. '-0'
if count > 0 then
  found = redis.call('XRANGE', stream, first, '+', 'COUNT', ARGV[2])
else
  found = redis.call('XRANGE', stream, first, '+')
end
for _, entry in ipairs(found) do
  out[#out + 1] = offset_of(entry[1])
  out[#out + 1] = entry[2][4]
end
return out
"""
)


def room_tag(room: str) -> str:
    """The hash tag of ``room``'s keys: 32 hex digits of its name's BLAKE2b digest."""
    return hashlib.blake2b(room.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _glob_escape(text: str) -> str:
    """``text`` matched literally by ``SCAN ... MATCH``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


#: The longest ttl kept, in ms (about a century): Redis refuses expiry times far beyond.
MAX_TTL_MS = 100 * 365 * 86400 * 1000
#: The most messages kept per room, whatever the rule says (Redis counts in 64 bits).
MAX_SIZE = 2**62


def _ms(seconds: float) -> int:
    return min(MAX_TTL_MS, max(1, math.ceil(seconds * 1000)))


class RedisHistory(HistoryStore):
    """Room history under the bus's ``prefix``, through the bus's command client."""

    def __init__(self, bus: RedisBus) -> None:
        self.home = bus.home
        self.prefix = bus.prefix
        self._store = bus.store
        #: No call waits longer: a connection slot, a connect, the command, and slack.
        self.bound = bus.connect_timeout + 2 * bus.command_timeout + 1.0
        self._client: aioredis.Redis | None = None
        self._registered: dict[str, Any] = {}

    def keys(self, room: str) -> list[str]:
        """The stream and meta keys of ``room`` (one hash tag: one Cluster slot)."""
        tag = room_tag(room)
        return [f"{self.prefix}:rh:{{{tag}}}", f"{self.prefix}:rhm:{{{tag}}}"]

    def _script(self, source: str) -> Any:
        """``source`` registered on the current command client (it changes on failover).

        A registered script runs by ``EVALSHA`` and loads itself again when
        Redis lost its script cache (``NoScriptError``, after a restart).
        """
        client = self._store.command_client()
        if client is not self._client:
            self._registered.clear()
            self._client = client
        script = self._registered.get(source)
        if script is None:
            script = self._registered[source] = client.register_script(source)
        return script

    async def _call(self, source: str, keys: list[str], args: list[Any], tries: int = 1) -> Any:
        """Run a script; a Redis that cannot be reached raises ``BusUnavailable``.

        With ``tries`` > 1 (reads only: they change nothing), a connection
        that fails is tried again on a fresh one, within the same bound: a
        pooled connection that Redis closed (a restart) while this loop was
        too busy to notice fails only at its first use.
        """
        try:
            async with asyncio.timeout(self.bound):
                for _ in range(tries - 1):
                    try:
                        return await self._script(source)(keys=keys, args=args)
                    except aioredis.ConnectionError:
                        pass  # redis-py dropped that connection: the next try gets another
                return await self._script(source)(keys=keys, args=args)
        except _UNREACHABLE as exc:
            raise BusUnavailable(f"Redis did not answer a history call: {exc!r}") from exc

    @on_home
    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        ttl = _ms(rule.ttl)
        size = min(rule.size, MAX_SIZE)
        args = [random_token(8), payload, size, ttl, max(ttl, _ms(STATE_TTL))]
        top, epoch = await self._call(APPEND, self.keys(room), args)
        return Position(int(top), _text(epoch))

    @on_home
    async def read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        if limit is not None and limit < 0:
            raise ValueError(f"a history limit is None or an int >= 0, not {limit!r}")
        after = -1 if since is None else since.offset
        count = -1 if limit is None else min(limit, MAX_SIZE)
        args = [after, count, "" if since is None else since.epoch]
        answer = await self._call(READ, self.keys(room), args, tries=2)
        if not answer:
            page = plan_read(since, limit, "", 0, 1)  # no state: nothing to fetch
            assert isinstance(page, StoredPage)
            return page
        epoch, top, oldest = _text(answer[0]), int(answer[1]), int(answer[2])
        plan = plan_read(since, limit, epoch, top, oldest)
        if not isinstance(plan, ReadPlan):
            return plan
        found = [
            HistoryEntry(int(offset), bytes(payload))
            for offset, payload in zip(answer[3::2], answer[4::2], strict=True)
            if plan.first <= int(offset) <= plan.last
        ]
        return finish_page(since, epoch, top, oldest, found)

    @on_home
    async def flush(self) -> None:
        """Delete every room's stream and meta hash under the prefix."""
        prefix = _glob_escape(self.prefix)
        try:
            client = self._store.command_client()
            async with asyncio.timeout(self.bound * 10):
                for kind in ("rh", "rhm"):
                    await delete_matching(client, f"{prefix}:{kind}:{{*}}")
        except _UNREACHABLE as exc:
            raise BusUnavailable(f"Redis did not answer a history flush: {exc!r}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
