"""Removing what a test left in a NATS server's JetStream: the streams of one layer prefix.

``NatsHubLayer.flush()`` empties its streams but keeps them (other nodes may be
using them); a test that made its own prefix deletes them here afterwards, so a
long-lived server (``NATS_URL``) does not collect one stream set per test.
"""

from __future__ import annotations

import math

import nats

from wshub_channels.layers.nats.streams import stream_safe

from .timing import t

__all__ = ["delete_prefix_streams"]


async def delete_prefix_streams(url: str, prefix: str) -> int:
    """Delete the work-queue streams and group bucket of ``prefix``; return how many."""
    safe = stream_safe(prefix)
    nc = await nats.connect(url, connect_timeout=math.ceil(t(5)), allow_reconnect=False)
    deleted = 0
    try:
        js = nc.jetstream(timeout=t(5))
        try:
            streams = await js.streams_info()
        except nats.js.errors.ServiceUnavailableError:
            return 0  # a server without JetStream keeps nothing
        for info in streams:
            name = info.config.name or ""
            if name.startswith(f"{safe}_q") or name == f"KV_{safe}_groups":
                await js.delete_stream(name)
                deleted += 1
    finally:
        await nc.close()
    return deleted
