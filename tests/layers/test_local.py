"""LocalChannels: the table of a node's ! channels, their release timers, and the sweep."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.rig.timing import async_wait_until
from wshub_channels.layers.local import LocalChannels
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit


class Node:
    """What a layer gives LocalChannels: capacities, a release, group membership, a counter."""

    def __init__(self, expiry: float = 10.0, grace: float = 0.0) -> None:
        self.released: list[str] = []
        self.grouped: set[str] = set()
        self.expired = 0
        self.table = LocalChannels(
            lambda name: 1 if name.startswith("tiny") else 3,
            expiry,
            grace,
            self.release,
            self.grouped.__contains__,
            self.count_expired,
        )

    async def release(self, name: str) -> None:
        self.released.append(name)
        self.table.drop(name)

    def count_expired(self) -> None:
        self.expired += 1


def test_table_creates_opens_and_drops_channels() -> None:
    """open makes a channel once, with its capacity; drop forgets it; create starts afresh."""
    table = Node().table
    assert len(table) == 0 and table.get("a!1") is None
    queue = table.open("a!1")
    assert table.open("a!1") is queue and table.get("a!1") is queue and "a!1" in table
    assert queue.capacity == 3 and table.open("tiny!1").capacity == 1
    queue.put("x", time.monotonic())
    assert table.create("a!1") is not queue and len(table.get("a!1") or ()) == 0
    table.drop("a!1")
    assert "a!1" not in table and len(table) == 1


async def test_clear_empties_queues_and_keeps_channels_being_read() -> None:
    """clear drops every message; a channel with a waiting reader stays, the others go."""
    table = Node().table
    read, idle = table.open("read!1"), table.open("idle!1")
    idle.put("b", time.monotonic())
    reader = asyncio.ensure_future(read.get())
    await asyncio.sleep(0)
    table.clear()
    assert list(table.queues) == ["read!1"] and not idle.items
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


def test_expiries_reach_the_callback() -> None:
    """A message that expires unread calls on_expire once, whoever notices it."""
    node = Node(expiry=10.0)
    queue = node.table.open("c!1")
    queue.put("old", now=0.0)
    queue.put("older", now=0.0)
    assert queue.get_nowait(now=20.0) == (False, None)
    assert node.expired == 2 and queue.expired == 2


async def test_release_fires_after_the_grace() -> None:
    """A scheduled release runs the layer's release once the grace has passed."""
    node = Node(grace=scaled(0.05))
    node.table.open("gone!1")
    node.table.schedule_release("gone!1")
    assert node.table.pending_releases == 1 and node.released == []
    await async_wait_until(lambda: node.released == ["gone!1"], scaled(2), what="the release")
    assert node.table.pending_releases == 0 and "gone!1" not in node.table


async def test_cancelled_release_never_fires() -> None:
    """A reader coming back within the grace keeps the channel."""
    node = Node(grace=scaled(0.05))
    node.table.open("back!1")
    node.table.schedule_release("back!1")
    node.table.cancel_release("back!1")
    await asyncio.sleep(scaled(0.2))  # well past the grace: the release must not run
    assert node.released == [] and "back!1" in node.table and node.table.pending_releases == 0


async def test_release_skips_a_channel_with_a_new_reader() -> None:
    """When the timer fires while a reader waits on the channel, the channel stays."""
    node = Node(grace=0.0)
    queue = node.table.open("busy!1")
    node.table.schedule_release("busy!1")
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    await async_wait_until(lambda: node.table.pending_releases == 0, scaled(2))
    await asyncio.sleep(0)  # a spawned release would have run by now
    assert node.released == [] and "busy!1" in node.table
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def test_rescheduling_keeps_one_timer() -> None:
    """Scheduling a release twice leaves one timer; close-time cancel clears them all."""
    node = Node(grace=60.0)
    for name in ("a!1", "b!1"):
        node.table.open(name)
        node.table.schedule_release(name)
    node.table.schedule_release("a!1")
    assert node.table.pending_releases == 2
    node.table.cancel_all_releases()
    assert node.table.pending_releases == 0


async def test_sweep_drops_only_orphans() -> None:
    """The sweep drops empty, unread, ungrouped channels idle past expiry, and nothing else."""
    node = Node(expiry=10.0, grace=60.0)
    table = node.table
    start = time.monotonic()
    for name in ("orphan!1", "grouped!1", "full!1", "read!1", "releasing!1"):
        table.open(name)
    node.grouped.add("grouped!1")
    table.open("full!1").put("keep", now=start + 15)
    reader = asyncio.ensure_future(table.open("read!1").get())
    await asyncio.sleep(0)
    table.schedule_release("releasing!1")
    assert table.maybe_sweep(start) == []  # not due yet
    assert table.maybe_sweep(start + 20) == ["orphan!1"]
    assert set(table.queues) == {"grouped!1", "full!1", "read!1", "releasing!1"}
    assert table.maybe_sweep(start + 21) == []  # the next sweep is half an expiry away
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    table.cancel_all_releases()


def test_sweep_purges_expired_messages_first() -> None:
    """A channel whose only messages expired counts as empty, and the expiries are counted."""
    node = Node(expiry=10.0)
    start = time.monotonic()
    node.table.open("stale!1").put("old", now=start - 30)
    node.table.queues["stale!1"].last_active = start - 30
    assert node.table.maybe_sweep(start + 20) == ["stale!1"]
    assert node.expired == 1
