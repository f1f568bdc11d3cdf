"""History rooms through the hub: two nodes on one in-memory bus, real HubConsumers.

Node A sends; the member under test is a HubConsumer on node B, driven by a
HubCommunicator. It joins the room named in its query string (with the
position given there, if any), then reports the join's Recovery as JSON.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from channels.layers import channel_layers
from django.test import override_settings

from wshub_channels import HubConsumer, Position, get_hub
from wshub_channels.core.wire import encode_hub_payload
from wshub_channels.hub.history import GAP_WAIT
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import HubCommunicator, scaled

pytestmark = pytest.mark.unit

A, B = "wshub-hist-a", "wshub-hist-b"
WAIT = scaled(2)
HISTORY = {"chat.*": {"size": 100, "ttl": 300}, "tiny.*": {"size": 3}}


class Member(HubConsumer):
    channel_layer_alias = B

    async def on_connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        since = None
        if "offset" in query:
            since = Position(int(query["offset"][0]), query["epoch"][0])
        recovery = await self.join_room(query["room"][0], since=since)
        at = recovery.position
        await self.send_json(
            {
                "recovered": recovery.recovered,
                "replayed": recovery.replayed,
                "position": None if at is None else [at.offset, at.epoch],
            }
        )


class FramedMember(Member):
    """Speaks the client protocol: set before the connection is registered."""

    framed = True


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Hub, Hub]]:
    bus = f"hist-hub-{uuid.uuid4().hex[:8]}"
    layers = {alias: InMemoryHubLayer(bus=bus) for alias in (A, B)}
    previous = {alias: channel_layers.set(alias, layer) for alias, layer in layers.items()}
    with override_settings(WSHUB={"HISTORY": HISTORY}):
        hubs = (get_hub(A), get_hub(B))
        for hub in hubs:
            await hub.start()
        yield hubs
        for layer in layers.values():
            await layer.flush()
            await layer.close()
    for alias, layer in previous.items():
        if layer is None:
            channel_layers.backends.pop(alias, None)
        else:
            channel_layers.set(alias, layer)


class Comms:
    def __init__(self) -> None:
        self.open: list[HubCommunicator] = []

    async def join(
        self, room: str, since: Position | None = None, kind: type[Member] = Member
    ) -> Any:
        query = {"room": room}
        if since is not None:
            query |= {"offset": str(since.offset), "epoch": since.epoch}
        comm = HubCommunicator(kind.as_asgi(), f"/ws/?{urlencode(query)}")
        self.open.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        return comm


@pytest.fixture
async def comms() -> AsyncIterator[Comms]:
    made = Comms()
    yield made
    for comm in made.open:
        if comm._future is not None and not comm.future.done():
            await comm.disconnect(timeout=WAIT)


async def frames(comm: HubCommunicator, count: int) -> list[Any]:
    return [await comm.receive_from(timeout=WAIT) for _ in range(count)]


async def nothing_more(comm: HubCommunicator) -> None:
    assert await comm.receive_nothing(timeout=scaled(0.3))


async def send(hub: Hub, room: str, texts: list[str]) -> None:
    for text in texts:
        await hub.broadcast_to_room(room, text)


def report(frame: str) -> dict[str, Any]:
    body = json.loads(frame)
    assert set(body) == {"recovered", "replayed", "position"}, body
    return body  # type: ignore[no-any-return]


async def test_offsets_count_up_and_every_node_delivers_in_order(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    a, b = nodes
    comm = await comms.join("chat.order")
    joined = report(await comm.receive_from(timeout=WAIT))
    assert joined["recovered"] is False and joined["position"][0] == 0
    texts = [f"m{i}" for i in range(20)]
    await send(a, "chat.order", texts)
    assert await frames(comm, 20) == texts
    page = await b.history("chat.order")
    assert [e.offset for e in page.entries] == list(range(1, 21)) and page.complete
    assert page.position.offset == 20


async def test_a_join_with_a_position_gets_exactly_what_it_missed(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    a, _b = nodes
    await send(a, "chat.missed", [f"m{i}" for i in range(5)])
    epoch = (await a.history("chat.missed", limit=0)).position.epoch
    comm = await comms.join("chat.missed", Position(2, epoch))
    assert await frames(comm, 3) == ["m2", "m3", "m4"]  # replayed before the join's answer
    joined = report(await comm.receive_from(timeout=WAIT))
    assert joined == {"recovered": True, "replayed": 3, "position": [5, epoch]}
    await send(a, "chat.missed", ["live"])
    assert await frames(comm, 1) == ["live"]
    await nothing_more(comm)


async def test_recovery_while_messages_are_published(
    nodes: tuple[Hub, Hub], comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live sends during the replay's read: all of them after the replay, none twice."""
    a, b = nodes
    await send(a, "chat.busy", [f"m{i}" for i in range(10)])
    epoch = (await a.history("chat.busy", limit=0)).position.epoch
    store = b.layer.history
    read = store.read
    started = asyncio.Event()

    async def slow_read(*args: Any) -> Any:
        started.set()
        await asyncio.sleep(scaled(0.2))  # live traffic meanwhile
        return await read(*args)

    monkeypatch.setattr(store, "read", slow_read)

    async def traffic() -> None:
        await started.wait()
        for i in range(10, 40):
            await a.broadcast_to_room("chat.busy", f"m{i}")
            await asyncio.sleep(scaled(0.01))

    sender = asyncio.ensure_future(traffic())
    comm = await comms.join("chat.busy", Position(4, epoch))
    await sender
    got = []
    while len(got) < 36:
        frame = await comm.receive_from(timeout=WAIT)
        if frame.startswith("{"):
            assert report(frame)["recovered"] is True
            continue
        got.append(frame)
    assert got == [f"m{i}" for i in range(4, 40)]
    await nothing_more(comm)


async def test_another_epoch_is_not_recovered(nodes: tuple[Hub, Hub], comms: Comms) -> None:
    a, _b = nodes
    await send(a, "chat.epoch", ["old"])
    now = (await a.history("chat.epoch", limit=0)).position
    comm = await comms.join("chat.epoch", Position(7, "lostepoch"))
    joined = report(await comm.receive_from(timeout=WAIT))
    assert joined == {"recovered": False, "replayed": 0, "position": [now.offset, now.epoch]}
    await send(a, "chat.epoch", ["next"])
    assert await frames(comm, 1) == ["next"]


async def test_a_gap_older_than_the_history_is_not_recovered(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    a, _b = nodes
    await send(a, "tiny.room", [f"m{i}" for i in range(6)])  # keeps 4, 5, 6
    epoch = (await a.history("tiny.room", limit=0)).position.epoch
    comm = await comms.join("tiny.room", Position(1, epoch))
    joined = report(await comm.receive_from(timeout=WAIT))
    assert joined["recovered"] is False and joined["position"] == [6, epoch]
    await nothing_more(comm)


async def test_a_message_whose_publish_was_lost_is_read_from_the_store(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    """Appended but never published (its sender died in between): filled from the store."""
    a, _b = nodes
    comm = await comms.join("chat.gap")
    report(await comm.receive_from(timeout=WAIT))
    rule = a.settings.history.rule_for("chat.gap")
    assert rule is not None
    await a.layer.history_append("chat.gap", encode_hub_payload("lost", []), rule)
    await a.broadcast_to_room("chat.gap", "after")
    assert await comm.receive_nothing(timeout=GAP_WAIT / 2)  # "after" waits for the gap
    assert await frames(comm, 2) == ["lost", "after"]


async def test_protocol_clients_get_msg_frames_with_their_position(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    a, _b = nodes
    comm = await comms.join("chat.framed", kind=FramedMember)
    report(await comm.receive_from(timeout=WAIT))
    await a.broadcast_to_room("chat.framed", 'say "hi"')
    frame = json.loads(await comm.receive_from(timeout=WAIT))
    epoch = (await a.history("chat.framed", limit=0)).position.epoch
    assert frame == {
        "t": "msg",
        "room": "chat.framed",
        "offset": 1,
        "epoch": epoch,
        "data": 'say "hi"',
    }
    await a.broadcast_text("to all")
    assert json.loads(await comm.receive_from(timeout=WAIT)) == {
        "t": "msg",
        "room": None,
        "data": "to all",
    }


async def test_hub_join_room_recovers_a_client_of_another_node(
    nodes: tuple[Hub, Hub], comms: Comms
) -> None:
    a, b = nodes
    comm = await comms.join("chat.first")
    report(await comm.receive_from(timeout=WAIT))
    client_id = b.clients()[0].id
    await send(a, "chat.second", ["s1", "s2", "s3"])
    epoch = (await a.history("chat.second", limit=0)).position.epoch
    recovery = await a.join_room(client_id, "chat.second", since=Position(1, epoch))
    assert recovery.recovered and recovery.replayed == 2
    assert recovery.position == Position(3, epoch)
    assert await frames(comm, 2) == ["s2", "s3"]


async def test_history_arguments_are_checked(nodes: tuple[Hub, Hub]) -> None:
    a, _ = nodes
    with pytest.raises(ValueError):
        await a.history("chat.x", limit=-1)
    with pytest.raises(TypeError):
        await a.history("chat.x", since=(1, "e"))  # type: ignore[arg-type]
    page = await a.history("plain.room")  # no rule, no state
    assert page.entries == [] and page.position == Position(0, "")
