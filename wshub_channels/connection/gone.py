"""Tell a failed ASGI send to a client that has gone from a frame the server could not write."""

from __future__ import annotations

import asyncio

__all__ = ["client_gone"]

#: Exception class names that mean the socket is gone (websockets, uvicorn).
_GONE_NAMES = frozenset({"ClientDisconnected", "ConnectionClosed", "ConnectionClosedOK"})


def client_gone(exc: BaseException) -> bool:
    """True when a failed ASGI send means the client has gone, not a broken frame.

    uvicorn raises ``ClientDisconnected`` (an ``OSError``) once the socket is
    closed, its websockets implementations ``ConnectionClosed`` and kin, and a
    ``RuntimeError`` about a send "after sending 'websocket.close'" once the
    close is under way; daphne sends nothing to a closed socket and raises
    nothing. Anything else (an encoding error, a refused message) is a failure.
    """
    if isinstance(exc, OSError | asyncio.CancelledError):
        return True
    if any(cls.__name__ in _GONE_NAMES for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "after sending 'websocket.close'" in str(exc)
