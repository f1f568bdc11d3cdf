"""Background tasks that are kept alive until done and never fail silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["spawn"]

logger = logging.getLogger("wshub_channels")
_running: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], what: str = "background task") -> asyncio.Task[Any]:
    """Run ``coro`` as a task on the running loop; keep a reference; log its failure."""
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        _running.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            logger.error("%s failed", what, exc_info=finished.exception())

    task.add_done_callback(done)
    return task
