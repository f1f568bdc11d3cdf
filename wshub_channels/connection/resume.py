"""Drive a send coroutine that already suspended once to its end, as a Task would.

:class:`~wshub_channels.connection.outbound.Outbound` steps the ASGI ``send``
coroutine inside the caller; only one that suspends is handed to a task,
which resumes it here from where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["resume"]


async def resume(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a send coroutine that suspended once to its end, as a Task would."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([yielded])
        except asyncio.CancelledError:
            # Abandon the write: let the send coroutine clean up, then stop it.
            with contextlib.suppress(BaseException):
                coro.throw(asyncio.CancelledError())
            coro.close()
            raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
