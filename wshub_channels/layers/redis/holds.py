"""The Lua side of cancel-safe receives on Redis queues: hold lists, their leases, recovery.

A receive moves the head of its queue into its own **hold list** with
``LMOVE`` (or, when the queue is empty, ``BLMOVE``). Before every move the
:data:`ARM` script (sent in the same pipeline as the ``LMOVE``) makes the hold list afresh,
holding only :data:`MARKER`, with a TTL, and records it in the channel's
**registry** (a sorted set scored by the hold's lease deadline, Redis time
in ms). A list push keeps the TTL of the list it pushes to, so the moved
message is never in a list without one.

- :data:`CLAIM` deletes the hold once the receive has its message; it
  answers 0 when the hold is gone (recovered by another receive: the
  message went back to the queue, so this receive skips it).
- :data:`UNCLAIM` runs when a receive is cancelled or fails after the move:
  it gives the hold's messages back to the head of the queue, in order, or
  the receive's own copy when the claim had already deleted the hold.
- **Recovery.** :data:`ARM` gives back the messages of the holds whose
  lease has ended (a receiver that crashed, or whose give-back could not
  reach Redis), dropping the expired ones. Every key a script touches is
  one of its ``KEYS`` (so it runs on Redis Cluster, where they share the
  channel's hash tag): ARM names the dead holds it finds, and the receive
  arms again at once, naming them, before it blocks. A live receiver's
  lease outlasts its ``BLMOVE``, so only dead receivers' holds are taken.

The TTL of a hold is the layer's ``expiry`` plus the lease: when it lapses,
every message in it has expired anyway.
"""

from __future__ import annotations

import hashlib

__all__ = ["ARM", "ARM_SHA", "CLAIM", "LEASE_SLACK", "MARKER", "ORPHANS_PER_ARM", "UNCLAIM"]

#: The first element of every hold list; queued items start with 13 digits.
MARKER = b"-"
#: Seconds a lease lasts beyond one ``BLMOVE`` and one command: room for a slow loop.
LEASE_SLACK = 5.0
#: Dead receivers' holds given back by one ARM, at most.
ORPHANS_PER_ARM = 16

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Move a hold's messages back to the head of the queue, last first, so their order holds.
local function give_back(queue, hold, now)
  local moved, expired = 0, 0
  while true do
    local item = redis.call('RPOP', hold)
    if not item then break end
    if item ~= '-' then
      if tonumber(string.sub(item, 1, 13)) > now then
        redis.call('LPUSH', queue, item)
        moved = moved + 1
      else
        expired = expired + 1
      end
    end
  end
  return moved, expired
end
-- A queue given messages back lives at least ttl ms more (never shortened).
local function keep(queue, ttl)
  local left = redis.call('PTTL', queue)
  if left == -1 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', queue, ttl) end
end
"""

#: KEYS: queue, hold, registry, then the dead receivers' holds to recover. ARGV: lease
#: (ms), hold TTL (ms). Returns {messages recovered, expired dropped, holds that had
#: messages, then the names of other dead holds in the registry}: a script touches only
#: the keys it declares, so those are recovered by the next ARM, which names them.
ARM = (
    _COMMON
    + f"""
local queue, hold, registry = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[2])
local now = now_ms()
local recovered, expired, holds = 0, 0, 0
local named = {{}}
for i = 4, #KEYS do
  local orphan = KEYS[i]
  named[orphan] = true
  local lease = redis.call('ZSCORE', registry, orphan)
  if lease and tonumber(lease) <= now then
    local moved, dropped = give_back(queue, orphan, now)
    if moved + dropped > 0 then holds = holds + 1 end
    recovered, expired = recovered + moved, expired + dropped
    redis.call('DEL', orphan)
    redis.call('ZREM', registry, orphan)
  end
end
if recovered > 0 then keep(queue, ttl) end
redis.call('DEL', hold)
redis.call('RPUSH', hold, '-')
redis.call('PEXPIRE', hold, ttl)
redis.call('ZADD', registry, now + tonumber(ARGV[1]), hold)
redis.call('PEXPIRE', registry, ttl)
local out = {{recovered, expired, holds}}
local dead = redis.call('ZRANGEBYSCORE', registry, '-inf', now, 'LIMIT', 0, {ORPHANS_PER_ARM})
for _, orphan in ipairs(dead) do
  if not named[orphan] then out[#out + 1] = orphan end
end
return out
"""
)
ARM_SHA = hashlib.sha1(ARM.encode()).hexdigest()  # Redis names scripts so

#: KEYS: hold, registry. Returns 1 when the hold was still this receive's.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
"""

#: KEYS: queue, hold, registry. ARGV: queue TTL (ms), the receive's item or ''.
#: Returns {messages given back, expired dropped}.
UNCLAIM = (
    _COMMON
    + """
local queue, hold, registry = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms()
local moved, expired = 0, 0
if redis.call('EXISTS', hold) == 1 then
  moved, expired = give_back(queue, hold, now)
  redis.call('DEL', hold)
elseif ARGV[2] ~= '' then
  -- Claimed already: the receive's copy is the only one left.
  if tonumber(string.sub(ARGV[2], 1, 13)) > now then
    redis.call('LPUSH', queue, ARGV[2])
    moved = 1
  else
    expired = 1
  end
end
redis.call('ZREM', registry, hold)
if moved > 0 then keep(queue, tonumber(ARGV[1])) end
return {moved, expired}
"""
)
