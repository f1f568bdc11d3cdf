"""Room history on a Redis this test owns: restarted empty, stopped, and frozen.

A Redis restarted without persistence has lost every room's state: a reader
must learn that (not complete, another epoch) and the next append starts a
new epoch at offset 1, never a silent gap. A Redis that is gone, or that
accepts connections but never answers, fails appends and reads with
``BusUnavailable`` within a bounded time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest
import redis

from tests.rig.brokers import ServerHandle, start_redis_server
from wshub_channels.core.history import HistoryRule, Position
from wshub_channels.errors import BusUnavailable
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

RULE = HistoryRule(size=50, ttl=300)


@pytest.fixture
def private_redis() -> Iterator[ServerHandle]:
    """A Redis this test may restart and stop; it keeps nothing on disk."""
    handle = start_redis_server()
    admin = redis.Redis.from_url(handle.url)
    try:
        config = admin.config_get("save") | admin.config_get("appendonly")
    finally:
        admin.close()
    assert config == {"save": "", "appendonly": "no"}, config
    yield handle
    handle.stop()


@pytest.fixture
async def make_layer(private_redis: ServerHandle) -> AsyncIterator[Any]:
    made: list[RedisHubLayer] = []
    prefix = f"hr{uuid.uuid4().hex[:8]}"

    def make(**options: Any) -> RedisHubLayer:
        layer = RedisHubLayer(hosts=[private_redis.url], prefix=prefix, **options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.close()


async def _fails_within(call: Awaitable[Any], bound: float) -> float:
    """Await ``call``, which must raise ``BusUnavailable`` within ``bound`` seconds."""
    start = time.monotonic()
    with pytest.raises(BusUnavailable):
        await asyncio.wait_for(call, bound + scaled(5))  # the test's own guard, far beyond
    took = time.monotonic() - start
    assert took < bound, f"failed only after {took:.2f}s"
    return took


async def test_a_restart_empty_starts_a_new_epoch(
    private_redis: ServerHandle, make_layer: Any
) -> None:
    """The old position reads as lost, and the next append is offset 1 of a new epoch."""
    layer, other = make_layer(), make_layer()
    room = "hist.restart"
    positions = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(4)]
    assert [p.offset for p in positions] == [1, 2, 3, 4]
    before = positions[-1]

    private_redis.restart()  # blocking this loop: its pooled connection goes stale unseen

    lost = await layer.history_read(room, before, None)
    assert lost.entries == [] and not lost.complete
    assert lost.position.epoch != before.epoch
    assert lost.position == Position(0, "")

    again = await other.history_append(room, b"after", RULE)
    assert again.offset == 1 and again.epoch not in ("", before.epoch)
    # The old reader is still told it missed messages: another epoch, not complete.
    stale = await layer.history_read(room, before, None)
    assert stale.entries == [] and not stale.complete and stale.position == again
    # A reader that starts over gets the new epoch whole.
    fresh = await layer.history_read(room, Position(0, before.epoch), None)
    assert [(e.offset, e.payload) for e in fresh.entries] == [(1, b"after")] and fresh.complete
    nxt = await layer.history_append(room, b"next", RULE)
    assert nxt == Position(2, again.epoch)


async def test_an_append_right_after_a_restart_starts_a_new_epoch(
    private_redis: ServerHandle, make_layer: Any
) -> None:
    """The first call after the restart is an append, on the layer that was connected."""
    layer = make_layer()
    room = "hist.restart.append"
    before = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(3)][-1]
    await asyncio.to_thread(private_redis.restart)  # this loop sees the old connection close
    again = await layer.history_append(room, b"after", RULE)
    assert again.offset == 1 and again.epoch not in ("", before.epoch)
    stale = await layer.history_read(room, before, None)
    assert stale.entries == [] and not stale.complete and stale.position == again


async def test_a_stopped_redis_fails_appends_and_reads_in_bounded_time(
    private_redis: ServerHandle, make_layer: Any
) -> None:
    """On a layer that was connected, and on one that never was."""
    room = "hist.stopped"
    layer = make_layer(connect_timeout=scaled(1), command_timeout=scaled(1))
    await layer.history_append(room, b"before", RULE)

    private_redis.stop()

    bound = scaled(3)
    await _fails_within(layer.history_append(room, b"lost", RULE), bound)
    await _fails_within(layer.history_read(room, None, None), bound)
    await _fails_within(layer.history_read(room, Position(1, "x"), 5), bound)
    # A layer whose first call meets the dead Redis: its open waits connect_timeout.
    late = make_layer(connect_timeout=scaled(1), command_timeout=scaled(1))
    await _fails_within(late.history_append(room, b"lost", RULE), bound)
    await _fails_within(late.history_read(room, None, None), bound)


async def test_a_frozen_redis_fails_appends_and_reads_in_bounded_time(
    private_redis: ServerHandle, make_layer: Any
) -> None:
    """A Redis that takes connections but never answers: the command timeout bounds it."""
    room = "hist.frozen"
    layer = make_layer(connect_timeout=scaled(1), command_timeout=scaled(1))
    first = await layer.history_append(room, b"before", RULE)
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        bound = scaled(4)
        await _fails_within(layer.history_append(room, b"maybe", RULE), bound)
        await _fails_within(layer.history_read(room, first, None), bound)
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    # Nothing was half-stored: the offsets still run on from where Redis is.
    page = await asyncio.wait_for(layer.history_read(room, Position(0, ""), None), scaled(5))
    assert [e.offset for e in page.entries] == list(range(1, page.position.offset + 1))
    assert page.complete and page.position.epoch == first.epoch
