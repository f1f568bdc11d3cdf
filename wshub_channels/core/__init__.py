"""The pure core: every rule the hub and the layers share, with no I/O.

Nothing here imports asyncio, Django or Channels (import-linter checks it);
modules import only the standard library, msgpack (the wire codec),
``errors``, ``config`` and ``types``. Each module is one concept and is
unit-tested on its own:

- ``names``: every name rule and namespace (rooms, users, groups, channels,
  node ids, subjects);
- ``wire``: message kinds, envelopes and their codec;
- ``sendqueue``: a connection's bounded queue, drop policies, coalescing and
  the one frame-size function;
- ``ratelimit``: token buckets;
- ``membership``: interest tables, this node's registry, limits and slots;
- ``presence``: heartbeats and the presence table;
- ``listing``: what cluster-wide listings carry (``ClientInfo``, pages);
- ``drain``: drain batches; ``access``: who may start a drain.
"""

from __future__ import annotations

__all__: list[str] = []
