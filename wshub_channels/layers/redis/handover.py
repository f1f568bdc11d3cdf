"""Publishes refused while a subject's shard changes master, so none is lost unnoticed.

When a master fails, its replica takes over, and when a slot migrates, it
gets a new master. The nodes subscribed on the old master move their
subscriptions to the new one within a fraction of a second, but a publisher
may reach the new master first, and a message published there before a
subscriber is back never reaches it. ``SPUBLISH`` answers how many
subscribers got the message, so :class:`Handover` compares: a publish on a
subject whose master changed since its last publish, that reached fewer
subscribers than the last one on the old master, is refused (the caller gets
``BusUnavailable``, as when a master is down) until the count is back, or
for at most ``settle`` seconds (a subscriber that is gone for good: its node
died too). A count that drops on the same master (members left) is never
refused.

It remembers the last master and count of the ``size`` subjects published
most recently. Pure bookkeeping, on the bus's home loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple

__all__ = ["Handover"]


class _Seen(NamedTuple):
    master: str
    receivers: int
    #: When a publish first met a new master with fewer receivers, if one did.
    since: float | None


class Handover:
    """The last master and receiver count of each subject published recently."""

    def __init__(self, settle: float = 2.0, size: int = 4096) -> None:
        self.settle = settle
        self.size = size
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        #: Publishes refused so far.
        self.refused = 0

    def check(self, subject: str, master: str | None, receivers: int) -> None:
        """Record a publish; raise ``ConnectionError`` if it may have missed subscribers."""
        if master is None:
            return
        seen = self._seen.get(subject)
        if seen is not None and seen.master != master and receivers < seen.receivers:
            now = time.monotonic()
            since = now if seen.since is None else seen.since
            if now - since < self.settle:
                self._seen[subject] = seen._replace(since=since)
                self.refused += 1
                raise ConnectionError(
                    f"{subject} moved to the Redis master {master}, where {receivers} of "
                    f"its {seen.receivers} subscribers are back so far"
                )
        self._seen[subject] = _Seen(master, receivers, None)
        self._seen.move_to_end(subject)
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
