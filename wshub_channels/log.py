"""Logging helpers: throttled logging for hot paths."""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["Throttle"]


class Throttle:
    """Log at most one line per ``interval`` seconds; report how many were held back.

    Used on hot paths (drops, bad frames) so a flood of the same event cannot
    flood the log. Not locked: a rare extra line under races is acceptable.
    """

    __slots__ = ("_held", "_interval", "_logger", "_next")

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._held = 0

    def log(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        self._next = now + self._interval
        if self._held:
            msg += " (%d similar messages suppressed)"
            args = (*args, self._held)
            self._held = 0
        self._logger.log(level, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(logging.INFO, msg, *args)
