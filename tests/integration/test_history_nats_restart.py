"""Room history on a NATS this test owns: restarted empty, stopped, frozen, and raced.

A server restarted with its JetStream in memory has lost every room: a
reader must learn that (not complete, another epoch) and the next append
starts a new epoch at offset 1, never a silent gap. A server that is gone,
or that keeps its connections but never answers, fails appends and reads
with ``BusUnavailable`` within a bounded time. Each test runs on the
system's nats-server package (Debian ships 2.9.10, the oldest server the
backend is run on) when it is installed, and on the bundled one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import nats
import pytest
from django.core.exceptions import ImproperlyConfigured
from nats.js import api as js_api
from nats.js.errors import BadRequestError

from tests.rig.brokers import ServerHandle, start_nats_server
from tests.rig.timing import wait_until
from wshub_channels.core.history import HistoryRule, Position
from wshub_channels.errors import BusUnavailable
from wshub_channels.layers import NatsHubLayer
from wshub_channels.testing import async_wait_until, scaled

pytestmark = pytest.mark.integration

RULE = HistoryRule(size=50, ttl=300)
SYSTEM_SERVERS = ("/usr/sbin/nats-server", "/usr/bin/nats-server")


def _binaries() -> list[Any]:
    system = next((p for p in SYSTEM_SERVERS if os.access(p, os.X_OK)), None)
    params = [pytest.param(None, id="bundled")]
    if system is not None:
        params.insert(0, pytest.param(system, id="system"))
    return params


@pytest.fixture(params=_binaries())
def private_nats(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    """A nats-server with JetStream that this test may restart, stop and freeze."""
    handle = start_nats_server(binary=request.param)
    yield handle
    handle.stop()


@pytest.fixture
async def make_layer(private_nats: ServerHandle) -> AsyncIterator[Any]:
    """Layers on the private server, sharing a prefix, keeping JetStream in memory."""
    made: list[NatsHubLayer] = []
    prefix = f"hn{uuid.uuid4().hex[:8]}"

    def make(**options: Any) -> NatsHubLayer:
        options.setdefault("storage", "memory")
        layer = NatsHubLayer(servers=[private_nats.url], prefix=prefix, **options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.close()


async def _reconnected(*layers: NatsHubLayer) -> None:
    """Wait until every layer's client is connected again."""
    await async_wait_until(
        lambda: all(layer.bus_status().connected for layer in layers),
        scaled(10),
        what="the layers to reconnect",
    )


def _wait_stopped(pid: int) -> None:
    """Wait until the process ``pid`` is stopped (state T), where /proc tells."""
    stat = f"/proc/{pid}/stat"
    if not os.path.exists(stat):
        time.sleep(scaled(0.2))  # no /proc here: give the signal a moment
        return

    def stopped() -> bool:
        with open(stat) as handle:
            return handle.read().rpartition(")")[2].split()[0] in ("T", "t")

    wait_until(stopped, scaled(5), interval=0.005, what=f"process {pid} to stop")


async def _fails_within(call: Awaitable[Any], bound: float) -> float:
    """Await ``call``, which must raise ``BusUnavailable`` within ``bound`` seconds."""
    start = time.monotonic()
    with pytest.raises(BusUnavailable):
        await asyncio.wait_for(call, bound + scaled(5))  # the test's own guard, far beyond
    took = time.monotonic() - start
    assert took < bound, f"failed only after {took:.2f}s"
    return took


async def test_the_server_checks_an_empty_subject(private_nats: ServerHandle) -> None:
    """What the store's compare-and-set rests on: ``Nats-Expected-Last-Subject-Sequence``
    0 means "the subject is empty", and the server refuses it once the subject is not."""
    client = await nats.connect(private_nats.url)
    try:
        js = client.jetstream(timeout=scaled(5))
        config = js_api.StreamConfig(
            name="CAS", subjects=["cas.*"], storage=js_api.StorageType.MEMORY
        )
        await js.add_stream(config)
        expect = {"Nats-Expected-Last-Subject-Sequence": "0"}
        first = await js.publish("cas.a", b"1", headers=dict(expect))
        with pytest.raises(BadRequestError) as refused:
            await js.publish("cas.a", b"2", headers=dict(expect))
        assert refused.value.err_code == 10071  # wrong last sequence
        await js.publish("cas.b", b"1", headers=dict(expect))  # another subject: empty
        stale = {"Nats-Expected-Last-Subject-Sequence": str(first.seq + 5)}
        with pytest.raises(BadRequestError):
            await js.publish("cas.a", b"3", headers=stale)
        right = {"Nats-Expected-Last-Subject-Sequence": str(first.seq)}
        await js.publish("cas.a", b"4", headers=right)
    finally:
        await client.close()


async def test_a_restart_empty_starts_a_new_epoch(
    private_nats: ServerHandle, make_layer: Any
) -> None:
    """The old position reads as lost, and the next append is offset 1 of a new epoch."""
    layer, other = make_layer(), make_layer()
    room = "hist.restart"
    positions = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(4)]
    assert [p.offset for p in positions] == [1, 2, 3, 4]
    before = positions[-1]
    await other.history_read(room, None, None)  # both connected, both know the streams

    await asyncio.to_thread(private_nats.restart)  # JetStream in memory: all gone
    await _reconnected(layer, other)

    lost = await layer.history_read(room, before, None)
    assert lost.entries == [] and not lost.complete and lost.position == Position(0, "")

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
    private_nats: ServerHandle, make_layer: Any
) -> None:
    """The first call after the restart is an append, on the layer that was connected
    (and believes the streams are there)."""
    layer = make_layer()
    room = "hist.restart.append"
    before = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(3)][-1]
    await asyncio.to_thread(private_nats.restart)
    await _reconnected(layer)
    again = await layer.history_append(room, b"after", RULE)
    assert again.offset == 1 and again.epoch not in ("", before.epoch)
    stale = await layer.history_read(room, before, None)
    assert stale.entries == [] and not stale.complete and stale.position == again


async def test_a_stopped_server_fails_appends_and_reads_in_bounded_time(
    private_nats: ServerHandle, make_layer: Any
) -> None:
    """On a layer that was connected, and on one that never was."""
    room = "hist.stopped"
    options = {"connect_timeout": scaled(1), "request_timeout": scaled(1)}
    layer = make_layer(**options)
    first = await layer.history_append(room, b"before", RULE)

    await asyncio.to_thread(private_nats.stop)

    bound = scaled(3)
    await _fails_within(layer.history_append(room, b"lost", RULE), bound)
    await _fails_within(layer.history_read(room, None, None), bound)
    await _fails_within(layer.history_read(room, first, 5), bound)
    # A layer whose first call meets the dead server: its open waits connect_timeout.
    late = make_layer(**options)
    await _fails_within(late.history_append(room, b"lost", RULE), bound)
    await _fails_within(late.history_read(room, None, None), bound)
    # Back before the layers close: a close while nats-py still retries inside its
    # first connect can wait for the server (Python 3.11's wait_for may swallow the
    # cancellation there), which is the connection's matter, not history's.
    await asyncio.to_thread(private_nats.start)


async def test_a_frozen_server_fails_appends_and_reads_in_bounded_time(
    private_nats: ServerHandle, make_layer: Any
) -> None:
    """A server that keeps its connections but never answers: request_timeout bounds
    every call, and once it answers again the offsets run on without a hole."""
    room = "hist.frozen"
    layer = make_layer(connect_timeout=scaled(1), request_timeout=scaled(1))
    first = await layer.history_append(room, b"before", RULE)
    os.kill(private_nats.pid, signal.SIGSTOP)
    try:
        await asyncio.to_thread(_wait_stopped, private_nats.pid)  # the signal lands later
        bound = scaled(4)  # an append may take two request timeouts (its retries)
        await _fails_within(layer.history_append(room, b"maybe", RULE), bound)
        await _fails_within(layer.history_read(room, first, None), bound)
        # Appends queued behind one another on this node share the bound, not add up.
        start = time.monotonic()
        queued = [layer.history_append(room, b"queued", RULE) for _ in range(5)]
        results = await asyncio.wait_for(
            asyncio.gather(*queued, return_exceptions=True), bound + scaled(5)
        )
        assert all(isinstance(r, BusUnavailable) for r in results), results
        assert time.monotonic() - start < bound
    finally:
        os.kill(private_nats.pid, signal.SIGCONT)
    await _reconnected(layer)
    nxt = await layer.history_append(room, b"after", RULE)
    page = await layer.history_read(room, None, None)
    offsets = [e.offset for e in page.entries]
    # What was sent reached the server or not (its answer was lost): either way no hole.
    assert offsets == list(range(1, nxt.offset + 1)) and page.complete
    assert nxt.epoch == first.epoch and page.entries[-1].payload == b"after"


async def test_many_nodes_racing_get_distinct_consecutive_offsets(make_layer: Any) -> None:
    """Six nodes append to one new room at once, then again once its messages expired
    (the record carries the offset on): 1..N in one epoch, none twice, none skipped."""
    nodes = [make_layer() for _ in range(6)]
    room = f"hist.race.{uuid.uuid4().hex[:6]}"
    rule = HistoryRule(size=500, ttl=3)  # outlives the first burst, however slow

    async def burst(count: int) -> list[Position]:
        appends = [
            nodes[i % len(nodes)].history_append(room, b"%d" % i, rule) for i in range(count)
        ]
        return await asyncio.wait_for(asyncio.gather(*appends), scaled(30))

    positions = await burst(120)
    assert sorted(p.offset for p in positions) == list(range(1, 121))
    assert len({p.epoch for p in positions}) == 1
    page = await nodes[1].history_read(room, None, None)
    assert [e.offset for e in page.entries] == list(range(1, 121)) and page.complete
    payloads = {e.offset: e.payload for e in page.entries}
    assert all(payloads[p.offset] == b"%d" % i for i, p in enumerate(positions))

    await asyncio.sleep(3.5)  # every message expires; the room's record stays
    later = await burst(60)
    assert sorted(p.offset for p in later) == list(range(121, 181))
    assert {p.epoch for p in later} == {positions[0].epoch}
    gap = await nodes[2].history_read(room, Position(120, positions[0].epoch), None)
    assert [e.offset for e in gap.entries] == list(range(121, 181)) and gap.complete


async def test_a_server_without_jetstream_says_what_to_change() -> None:
    """History needs JetStream: appends and reads say so; a flush has nothing to do."""
    handle = start_nats_server(jetstream=False)
    layer = NatsHubLayer(servers=[handle.url], prefix=f"hj{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(ImproperlyConfigured, match="JetStream"):
            await layer.history_append("hist.nojs", b"x", RULE)
        with pytest.raises(ImproperlyConfigured, match="JetStream"):
            await layer.history_read("hist.nojs", None, None)
        await layer.flush()
        with pytest.raises(ValueError):  # a bad limit is the caller's error, not the bus's
            await layer.history_read("hist.nojs", None, -1)
    finally:
        await layer.close()
        handle.stop()


async def test_a_rule_change_moves_the_room_with_its_offsets(make_layer: Any) -> None:
    """The room's next messages go to the new rule's stream, offsets running on."""
    layer, other = make_layer(), make_layer()
    room = "hist.rule.change"
    old = [await layer.history_append(room, b"old%d" % i, RULE) for i in range(3)][-1]
    new_rule = HistoryRule(size=10, ttl=60)
    nxt = [await other.history_append(room, b"new%d" % i, new_rule) for i in range(2)]
    assert nxt == [Position(4, old.epoch), Position(5, old.epoch)]
    page = await layer.history_read(room, old, None)
    assert [e.payload for e in page.entries] == [b"new0", b"new1"] and page.complete
    newest = await layer.history_read(room, None, None)
    assert [e.offset for e in newest.entries] == [4, 5] and not newest.complete


async def test_first_appends_of_many_nodes_share_one_epoch(make_layer: Any) -> None:
    """Twenty nodes append once each to a new room at the same moment: the epoch
    claim and the empty-subject compare-and-set race, and the room still gets 1..20."""
    nodes = [make_layer() for _ in range(20)]
    await asyncio.gather(*(node.history_read("hist.warm", None, None) for node in nodes))
    for attempt in range(3):
        room = f"hist.first.{attempt}.{uuid.uuid4().hex[:6]}"
        appends = [node.history_append(room, b"%d" % i, RULE) for i, node in enumerate(nodes)]
        positions = await asyncio.wait_for(asyncio.gather(*appends), scaled(20))
        assert sorted(p.offset for p in positions) == list(range(1, 21))
        assert len({p.epoch for p in positions}) == 1
        page = await nodes[0].history_read(room, None, None)
        assert sorted(e.payload for e in page.entries) == sorted(b"%d" % i for i in range(20))
