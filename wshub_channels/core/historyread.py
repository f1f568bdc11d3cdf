"""How a history read is answered, written once for every store (pure).

A store knows a room's ``epoch``, its newest offset ``top`` and the
oldest offset it still keeps. :func:`plan_read` turns a reader's ``since``
and ``limit`` into either a finished page (nothing to fetch) or a
:class:`ReadPlan` naming the run of offsets to fetch; the store fetches it
(one range read) and :func:`finish_page` builds the page. The rules are
those of :mod:`wshub_channels.layers.historystore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .history import HistoryEntry, Position, StoredPage

__all__ = ["ReadPlan", "finish_page", "plan_read"]


class ReadPlan(NamedTuple):
    """Fetch the kept entries with offsets ``first`` to ``last`` (inclusive), oldest first.

    ``first`` may be below the oldest kept offset: fetch what is there.
    """

    first: int
    last: int


def plan_read(
    since: Position | None, limit: int | None, epoch: str, top: int, oldest: int
) -> ReadPlan | StoredPage:
    """What to fetch for a read; a :class:`StoredPage` when nothing needs fetching.

    ``oldest`` is the oldest kept offset (``top + 1`` when nothing is kept).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"a history limit is None or an int >= 0, not {limit!r}")
    position = Position(top, epoch)
    oldest = max(oldest, 1)
    if since is None:
        complete = oldest <= 1
        if limit == 0 or oldest > top:
            return StoredPage([], position, complete)
        first = oldest if limit is None else max(oldest, top - limit + 1)
        return ReadPlan(first, top)
    after = since.offset
    if after and (since.epoch != epoch or after > top):
        return StoredPage([], position, False)  # another epoch, or a future one
    complete = oldest <= after + 1
    if limit == 0 or after >= top:
        return StoredPage([], position, complete)
    first = max(after + 1, oldest)
    last = top if limit is None else min(top, first + limit - 1)
    return ReadPlan(first, last)


def finish_page(
    since: Position | None, epoch: str, top: int, oldest: int, entries: Sequence[HistoryEntry]
) -> StoredPage:
    """The page of a :class:`ReadPlan`'s fetched ``entries`` (oldest first).

    ``oldest`` is the oldest kept offset as the fetch saw it: entries that
    expired between the plan and the fetch count as lost, never as a silent gap.
    """
    if since is None:
        complete = max(oldest, 1) <= 1
    else:
        first = entries[0].offset if entries else max(oldest, top + 1)
        complete = first <= since.offset + 1
    return StoredPage(list(entries), Position(top, epoch), complete)
