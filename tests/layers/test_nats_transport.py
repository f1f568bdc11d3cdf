"""The NATS transport on the session's real nats-server: subjects, requests, queues, round trips."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.rig.timing import async_wait_until
from wshub_channels.core.names import subject_token
from wshub_channels.core.wire import Envelope, Kind
from wshub_channels.layers import NatsHubLayer, NoResponders
from wshub_channels.testing import scaled
from wshub_channels.testing.jetstream import delete_prefix_streams

pytestmark = pytest.mark.integration

Make = Callable[..., NatsHubLayer]


@pytest.fixture
async def make(nats_url: str) -> AsyncIterator[Make]:
    """Layers on one fresh prefix; closed, and their streams deleted, afterwards."""
    prefix = f"nt{uuid.uuid4().hex[:8]}"
    made: list[NatsHubLayer] = []

    def factory(**config: Any) -> NatsHubLayer:
        layer = NatsHubLayer(servers=[nats_url], prefix=prefix, **config)
        made.append(layer)
        return layer

    yield factory
    for layer in made:
        await layer.flush()
        await layer.close()
    await delete_prefix_streams(nats_url, prefix)


async def recv(layer: NatsHubLayer, channel: str, wait: float = 2) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), scaled(wait))
    return message


ROOMS = [
    "a.b.c",
    "with space",
    "star*",
    "gt>",
    ">",
    "*",
    "ünïcödé 部屋 🎉",
    "..",
    "x" * 256,
]


@pytest.mark.parametrize("room", ROOMS, ids=range(len(ROOMS)))
async def test_any_room_name_crosses_nodes(make: Make, room: str) -> None:
    """Rooms with dots, spaces, ``*``, ``>``, Unicode or 256 characters reach another node."""
    sender, receiver = make(), make()
    got: list[Envelope] = []
    await receiver.start()
    receiver.set_hub_sink(got.append)
    await receiver.add_interest("r", room, "member-1")

    async def nothing_local() -> None:
        return None

    subject = sender.subject("r", room)
    await sender.publish_and_deliver(subject, Kind.ROOM, room, b"payload", nothing_local)
    await async_wait_until(lambda: bool(got), scaled(2), what="the room message")
    assert got[0].target == room and got[0].payload == b"payload"


async def test_a_subscription_is_in_place_when_group_add_returns(make: Make) -> None:
    """Right after group_add returns, another node's group_send reaches the member, every time."""
    sender, receiver = make(), make()
    await sender.start()
    channel = await receiver.new_channel()
    for n in range(300):
        await receiver.group_add(f"fresh{n}", channel)
        await sender.group_send(f"fresh{n}", {"type": "x", "n": n})
        assert await recv(receiver, channel) == {"type": "x", "n": n}


async def test_requests_native_reply_gather_and_no_responders(make: Make) -> None:
    """One reply is a NATS request; a gather collects every other node's reply, never its own."""
    asker, one, two = make(), make(), make()
    for layer in (asker, one, two):
        await layer.start()
    assert await asker.remote_call(one.node_id, "group_add", "g", "g.worker") is None
    with pytest.raises(NoResponders):
        await asker.remote_call("gone00000000", "group_add", "g", "g.worker")
    replies = await asker.bus.request(asker.cluster_subject, b"\x90", scaled(0.5), None)
    assert len(replies) == 2  # one and two; the asker does not answer itself
    started = time.monotonic()
    replies = await asker.bus.request(asker.cluster_subject, b"\x90", scaled(2), 1)
    assert len(replies) == 1 and time.monotonic() - started < scaled(1)
    with pytest.raises(NoResponders):
        await asker.bus.request(f"{asker.prefix}.nobody", b"\x90", scaled(1), None)


class Calls:
    """Counts the client's request and flush calls (each is a round trip) and how many
    requests were in flight at once. It wraps the real client: NATS still answers."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests = self.flushes = self.in_flight = self.most_in_flight = 0

    def __enter__(self) -> Calls:
        request, flush = self.client.request, self.client.flush

        async def counting_request(*args: Any, **kwargs: Any) -> Any:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await request(*args, **kwargs)
            finally:
                self.in_flight -= 1

        async def counting_flush(*args: Any, **kwargs: Any) -> Any:
            self.flushes += 1
            return await flush(*args, **kwargs)

        self.client.request, self.client.flush = counting_request, counting_flush
        return self

    def __exit__(self, *exc: object) -> None:
        del self.client.request, self.client.flush


async def test_group_send_round_trips(make: Make) -> None:
    """group_send: no round trip without stored members; with five, one for all of them."""
    layer = make()
    local = await layer.new_channel()
    workers = [f"rt.worker-{n}" for n in range(5)]
    await layer.group_add("plain", local)
    await layer.group_add("mixed", local)
    for worker in workers:
        await layer.group_add("mixed", worker)
    for group in ("plain", "mixed"):  # make the streams and consumers first
        await layer.group_send(group, {"type": "warm"})
        assert await recv(layer, local) == {"type": "warm"}
    for worker in workers:
        assert await recv(layer, worker) == {"type": "warm"}
    client = layer.bus.client  # type: ignore[attr-defined]

    with Calls(client) as calls:
        await layer.group_send("plain", {"type": "no.stored"})
    assert (calls.requests, calls.flushes) == (0, 0)
    assert await recv(layer, local) == {"type": "no.stored"}

    with Calls(client) as calls:
        await layer.group_send("mixed", {"type": "stored"})
    assert (calls.requests, calls.most_in_flight, calls.flushes) == (5, 5, 0)
    assert await recv(layer, local) == {"type": "stored"}
    for worker in workers:
        assert await recv(layer, worker) == {"type": "stored"}


async def test_other_nodes_see_stored_members_through_their_mirror(make: Make) -> None:
    """A group_add of a normal channel on one node reaches the mirror of another."""
    adder, sender = make(), make()
    await sender.start()
    await adder.group_add("mirrored", "mirror.worker")
    store: Any = sender.store
    await async_wait_until(
        lambda: store._members._mirror.get(_key("mirrored")) is not None,
        scaled(2),
        what="the watch to bring the member",
    )
    await sender.group_send("mirrored", {"type": "via.mirror"})
    assert await recv(adder, "mirror.worker") == {"type": "via.mirror"}
    await adder.group_discard("mirrored", "mirror.worker")
    await async_wait_until(
        lambda: store._members._mirror.get(_key("mirrored")) is None,
        scaled(2),
        what="the watch to bring the discard",
    )


def _key(group: str) -> str:
    return subject_token(group)


async def test_cancelled_receive_on_a_normal_channel_loses_nothing(make: Make) -> None:
    """A receive cancelled while it waits leaves the next message to another reader, at once."""
    first, second, sender = make(), make(), make()
    waiting = asyncio.ensure_future(first.receive("cancel.jobs"))
    done, _ = await asyncio.wait({waiting}, timeout=scaled(0.3))
    assert not done
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await sender.send("cancel.jobs", {"type": "job"})
    started = time.monotonic()
    assert await recv(second, "cancel.jobs", wait=1) == {"type": "job"}
    print(f"\nnext reader got the job {1000 * (time.monotonic() - started):.1f} ms after the send")


async def test_expired_queued_message_is_skipped_and_counted(make: Make) -> None:
    """A message whose deadline passed in the queue is dropped at receive and counted."""
    reader = make()  # makes the stream, with the default expiry as its max_age
    await reader.send("expiring.q", {"type": "first"})
    assert await recv(reader, "expiring.q") == {"type": "first"}
    hasty = make(expiry=scaled(0.1))
    await hasty.send("expiring.q", {"type": "stale"})
    await asyncio.sleep(scaled(0.2))
    await reader.send("expiring.q", {"type": "fresh"})
    assert await recv(reader, "expiring.q") == {"type": "fresh"}
    assert reader.stats.expired == 1


async def test_subjects_survive_a_client_that_closed(make: Make) -> None:
    """A client NATS closed for good is replaced; every subscription comes back."""
    node, other = make(), make()
    channel = await node.new_channel()
    await node.group_add("survives", channel)
    events: list[str] = []
    node.set_bus_listener(lambda event, error: events.append(event))
    old = node.bus.client  # type: ignore[attr-defined]
    await old.close()
    await async_wait_until(
        lambda: node.bus_status().connected and node.bus.client is not old,  # type: ignore[attr-defined]
        scaled(3),
        what="a new client",
    )
    assert events == ["down", "up"]
    await other.group_send("survives", {"type": "still.here"})
    assert await recv(node, channel) == {"type": "still.here"}
