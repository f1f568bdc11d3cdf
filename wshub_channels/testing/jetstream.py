"""Removing what a ``NatsHubLayer`` prefix left in a NATS server's JetStream.

``NatsHubLayer.flush()`` empties its work-queue streams and its group bucket
but keeps them, since other nodes may be using them. A test or benchmark that
gives each run a prefix of its own deletes them afterwards with
:func:`delete_prefix_streams`, so a long-lived server does not collect one set
of streams per run. nats-py is imported only when this is called.
"""

from __future__ import annotations

import math

from .timing import scaled

__all__ = ["delete_prefix_streams"]


async def delete_prefix_streams(url: str, prefix: str, timeout: float | None = None) -> int:
    """Delete the work-queue, room-history and group-bucket streams of ``prefix``;
    return how many.

    ``timeout`` (default five time units) bounds the connect and each JetStream call.
    """
    import nats
    from nats.js.errors import ServiceUnavailableError

    from ..layers.nats.streams import stream_safe

    wait = scaled(5) if timeout is None else timeout
    safe = stream_safe(prefix)
    client = await nats.connect(url, connect_timeout=math.ceil(wait), allow_reconnect=False)
    deleted = 0
    try:
        js = client.jetstream(timeout=wait)
        try:
            streams = await js.streams_info()
        except ServiceUnavailableError:
            return 0  # a server without JetStream keeps nothing
        for info in streams:
            name = info.config.name or ""
            if name.startswith((f"{safe}_q", f"{safe}_h")) or name == f"KV_{safe}_groups":
                await js.delete_stream(name)
                deleted += 1
    finally:
        await client.close()
    return deleted
