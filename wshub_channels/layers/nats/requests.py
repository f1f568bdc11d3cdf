"""Requests on NATS's own request/reply: one reply, or a gather of several.

- ``max_replies=1`` is a NATS request (the client's shared reply
  subscription); the server's no-responders answer (status 503, servers
  2.2 and newer) becomes :class:`~wshub_channels.layers.bus.NoResponders`.
- More replies (or ``None``: all of them) are gathered on a private inbox
  until ``max_replies`` arrived or the timeout passed; NATS cannot count the
  listeners, so an open-ended gather always waits out its timeout. A no-
  responders status with no reply at all raises ``NoResponders`` too.

The inbox is under the client's inbox prefix, which names the node, so the
bus can tell (and skip) its own requests when they reach it.

Loop safety: run on the client's loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..bus import NoResponders
from .client import STATUS_HEADER, Client, Msg, nats_errors

__all__ = ["request"]

NO_RESPONDERS = "503"


async def request(
    client: Client, subject: str, data: bytes, timeout: float, max_replies: int | None
) -> list[bytes]:
    """Send ``data`` to ``subject`` and return the replies received within ``timeout``."""
    if max_replies == 1:
        try:
            msg = await client.request(subject, data, timeout=timeout)
        except nats_errors.NoRespondersError:
            raise NoResponders(subject) from None
        except nats_errors.TimeoutError:
            return []
        return [msg.data]
    return await _gather(client, subject, data, timeout, max_replies)


async def _gather(
    client: Client, subject: str, data: bytes, timeout: float, max_replies: int | None
) -> list[bytes]:
    replies: list[bytes] = []
    nobody = False
    done = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        nonlocal nobody
        if msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
            nobody = True
        else:
            replies.append(msg.data)
            if max_replies is None or len(replies) < max_replies:
                return
        if not done.done():
            done.set_result(None)

    inbox = client.new_inbox()
    sub = await client.subscribe(inbox, cb=on_reply)
    try:
        await client.publish(subject, data, reply=inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    if nobody and not replies:
        raise NoResponders(subject)
    return replies if max_replies is None else replies[:max_replies]
