"""Send a WebSocket close that every server can send on.

daphne (autobahn) sends only close codes 1000 and 3000-4999 and raises on
the others; uvicorn sends any. :func:`send_close` sends the code asked for
and, where the server refuses a 1001-1015 code, the same code plus 3000
(1013 becomes 4013), logged at most once a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..log import Throttle
from ..types import AsgiMessage

__all__ = ["send_close"]

logger = logging.getLogger("wshub_channels.consumer")
_fallback_log = Throttle(logger, 60.0)


async def send_close(
    send: Callable[[AsgiMessage], Awaitable[None]], message: AsgiMessage, who: str = ""
) -> None:
    """Send ``message`` (a ``websocket.close``); raise what the send raised otherwise."""
    try:
        await send(message)
    except Exception:
        code = int(message.get("code", 1000))
        if not 1001 <= code <= 1015:
            raise
        _fallback_log.info("server refused close code %d (%s); sent %d", code, who, code + 3000)
        await send({**message, "code": code + 3000})
