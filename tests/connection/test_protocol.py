"""HubProtocolMixin in process: the control frames, refusals, app frames and the ping timeout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.inprocess import WAIT, private_layer
from wshub_channels import (
    HubConsumer,
    HubProtocolMixin,
    JsonHubConsumer,
    Message,
    ProtocolHubConsumer,
    Unauthorized,
    get_hub,
)
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import HubCommunicator, scaled

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-protocol"


class Chat(ProtocolHubConsumer):
    channel_layer_alias = ALIAS
    protocol_ping = None

    async def on_connect(self) -> None:
        await self.send_json({"hello": self.id})

    async def before_room_join(self, room: str) -> None:
        if room == "secret":
            raise Unauthorized("not for you")

    async def on_message(self, msg: Message) -> None:
        await self.send_text("app:" + msg.text())


class Pinging(Chat):
    protocol_ping = scaled(0.2)
    protocol_ping_timeout = scaled(0.2)


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryHubLayer]:
    async with private_layer(ALIAS) as layer:
        yield layer


async def dial(consumer: type[HubConsumer] = Chat, protocols: list[str] | None = None) -> Any:
    comm = HubCommunicator(consumer.as_asgi(), "/ws/", subprotocols=protocols or ["wshub.v1"])
    connected, subprotocol = await comm.connect(timeout=WAIT)
    assert connected
    comm.subprotocol = subprotocol
    return comm


async def frame(comm: HubCommunicator) -> Any:
    return json.loads(await comm.receive_from(timeout=WAIT))


async def ask(comm: HubCommunicator, **fields: Any) -> Any:
    await comm.send_to(text_data=json.dumps(fields))
    return await frame(comm)


@pytest.mark.usefixtures("layer")
async def test_welcome_comes_first_then_the_apps_frames() -> None:
    comm = await dial()
    assert comm.subprotocol == "wshub.v1"
    welcome = await frame(comm)
    assert welcome == {
        "t": "welcome",
        "v": 1,
        "client": comm.client.id,
        "node": get_hub(ALIAS).node_id,
        "ping": 0,
    }
    assert (await frame(comm)) == {"hello": comm.client.id}
    assert comm.client.framed
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_join_leave_and_send_are_answered_with_their_ref() -> None:
    comm = await dial()
    await frame(comm), await frame(comm)
    joined = await ask(comm, t="join", room="lobby", since=None, ref="1")
    assert joined == {
        "t": "joined",
        "room": "lobby",
        "recovered": False,
        "offset": None,
        "epoch": None,
        "ref": "1",
    }
    assert comm.client.in_room("lobby")
    await comm.send_to(text_data=json.dumps({"t": "send", "room": "lobby", "data": "hi", "ref": 2}))
    got = await comm.receive_from(timeout=WAIT)
    assert "hi" in got  # a "msg" frame once the hub frames it; the text itself before
    assert await ask(comm, t="leave", room="lobby", ref="3") == {
        "t": "left",
        "room": "lobby",
        "ref": "3",
    }
    assert not comm.client.in_room("lobby")
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_refusals_are_error_frames_and_the_connection_lives() -> None:
    comm = await dial()
    await frame(comm), await frame(comm)
    await ask(comm, t="join", room="a", ref="1")
    cases = [
        ({"t": "join", "room": "a", "ref": "2"}, "already_in_room"),
        ({"t": "join", "room": "secret", "ref": "3"}, "unauthorized"),
        ({"t": "join", "room": "", "ref": "4"}, "invalid_name"),
        ({"t": "leave", "room": "b", "ref": "5"}, "not_in_room"),
        ({"t": "send", "room": "b", "data": "x", "ref": "6"}, "not_in_room"),
        ({"t": "send", "room": "a", "data": 5, "ref": "7"}, "bad_frame"),
        ({"t": "nope", "ref": "8"}, "bad_frame"),
        ({"t": "auth", "token": "x"}, "unexpected_auth"),
        ({"t": "join", "room": "a\ud800", "ref": "10"}, "invalid_name"),  # a lone surrogate
        (
            {"t": "join", "room": "c", "since": {"offset": "1", "epoch": "e"}, "ref": "11"},
            "bad_frame",
        ),
        ({"t": "join", "room": ["c"], "ref": "12"}, "bad_frame"),
    ]
    for sent, code in cases:
        answer = await ask(comm, **sent)
        assert answer["t"] == "error" and answer["code"] == code, (sent, answer)
        assert answer["ref"] == sent.get("ref") and answer["message"]
    assert await ask(comm, t="leave", room="a", ref="9") == {"t": "left", "room": "a", "ref": "9"}
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_app_frames_and_pongs_pass_as_before() -> None:
    comm = await dial()
    await frame(comm), await frame(comm)
    for text in ('{"type":"say"}', "plain text", "[1]"):
        await comm.send_to(text_data=text)
        assert await comm.receive_from(timeout=WAIT) == "app:" + text
    await comm.send_to(text_data='{"t":"pong"}')  # answered by nothing
    await comm.send_to(text_data="after")
    assert await comm.receive_from(timeout=WAIT) == "app:after"
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_a_server_side_leave_is_told_with_a_null_ref() -> None:
    comm = await dial()
    await frame(comm), await frame(comm)
    await ask(comm, t="join", room="a", ref="1")
    await get_hub(ALIAS).leave_room(comm.client, "a")
    assert await frame(comm) == {"t": "left", "room": "a", "ref": None}
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_without_the_subprotocol_it_is_a_plain_consumer() -> None:
    comm = await dial(protocols=["other"])
    assert comm.subprotocol is None
    assert (await frame(comm)) == {"hello": comm.client.id}
    assert not comm.client.framed
    await comm.send_to(text_data='{"t":"join","room":"a"}')
    assert await comm.receive_from(timeout=WAIT) == 'app:{"t":"join","room":"a"}'
    await comm.disconnect()


@pytest.mark.usefixtures("layer")
async def test_a_silent_client_is_closed_with_1011_and_a_talking_one_is_not() -> None:
    talking = await dial(Pinging)
    silent = await dial(Pinging)
    for comm in (talking, silent):
        assert (await frame(comm))["ping"] == pytest.approx(scaled(0.2))
        await comm.receive_from(timeout=WAIT)  # hello
    assert await frame(silent) == {"t": "ping"}
    for _ in range(3):
        assert await frame(talking) == {"t": "ping"}
        await talking.send_to(text_data='{"t":"pong"}')
    closed = await silent.receive_output(timeout=WAIT)
    assert closed == {"type": "websocket.close", "code": 1011, "reason": "ping timeout"}
    assert get_hub(ALIAS).get_client(talking.client.id) is talking.client
    assert get_hub(ALIAS).get_client(silent.client.id) is None
    await talking.disconnect()
    await silent.disconnect()


def test_the_mixin_after_the_consumer_is_refused_at_class_creation() -> None:
    """Behind HubConsumer in the bases, the mixin's methods would never run: a TypeError says so."""
    with pytest.raises(TypeError, match="put HubProtocolMixin before HubConsumer"):

        class Backwards(JsonHubConsumer, HubProtocolMixin):  # type: ignore[misc]
            pass

    class Forwards(HubProtocolMixin, JsonHubConsumer):  # type: ignore[misc]
        pass

    assert Forwards.__mro__.index(HubProtocolMixin) < Forwards.__mro__.index(HubConsumer)
