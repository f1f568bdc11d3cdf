"""Property-based fuzzing of the client edge: hostile frames into a room, a bystander listens.

Hypothesis draws sequences of frames (text, binary, invalid UTF-8, JSON with
lone surrogates and deep nesting, frames over ``max_message_size``) and of
requests naming random rooms, user ids and groups. An attacker sends them to
a ``HubConsumer`` or ``JsonHubConsumer`` that relays what it hears to a room.
After every sequence:

- every text frame anyone receives encodes as UTF-8 (what a real server needs);
- the attacker's connection is open, or closed with a documented code;
- nothing waits past its timeout;
- a bystander in the same room still receives the next message.

Bounded: few examples, each a handful of frames, with a per-example deadline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.inprocess import WAIT, Clients, Conn, hub_clients
from wshub_channels import HubConsumer, JsonHubConsumer, Message
from wshub_channels.testing import scaled

ALIAS = "fuzz-consumer"
ROOM = "fuzz"
MAX_SIZE = 4096
#: Close codes a hostile client may meet (README, "Close codes"): policy, too big, server
#: error, try again, and their daphne forms.
DOCUMENTED_CLOSES = {1000, 1008, 1009, 1011, 1013, 4008, 4009, 4011, 4013}

FUZZ = settings(
    max_examples=int(scaled(25)),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain"
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class _Relay:
    """What both fuzz consumers do with a request: act on the hub, never swallow errors."""

    async def act(self: Any, content: Any) -> None:
        if not isinstance(content, dict):
            await self.hub.broadcast_to_room(ROOM, json.dumps(content, ensure_ascii=False))
            return
        op, value = content.get("op"), content.get("value")
        if op == "say":
            await self.hub.broadcast_to_room(ROOM, value if isinstance(value, str) else repr(value))
        elif op == "json":
            await self.hub.broadcast_to_room(ROOM, json.dumps({"said": value}, ensure_ascii=False))
        elif op == "echo":
            await self.send_json({"echo": value})
        elif op == "join":
            await self.join_room(value)
        elif op == "leave":
            await self.leave_room(value)
        elif op == "user":
            await self.set_user_id(value)
        elif op == "group":
            await self.channel_layer.group_add(value, self.channel_name)
        elif op == "group_send":
            await self.channel_layer.group_send(value, {"type": "relay.event", "text": "g"})

    async def relay_event(self: Any, event: dict[str, Any]) -> None:
        await self.send_text(str(event.get("text")))


class TextRelay(_Relay, HubConsumer):
    """A ``HubConsumer``: a text frame that parses as JSON is a request, anything else is said."""

    async def on_connect(self) -> None:
        await self.join_room(ROOM)
        await self.send_text(f"id:{self.id}")

    async def on_message(self, msg: Message) -> None:
        if not msg.is_text:
            await self.hub.broadcast_to_room(ROOM, msg.data)
            return
        try:
            content = msg.json()
        except ValueError:
            await self.hub.broadcast_to_room(ROOM, msg.text())
            return
        await self.act(content)


class JsonRelay(_Relay, JsonHubConsumer):
    """A ``JsonHubConsumer``: every frame must be JSON (else ``on_error``)."""

    async def on_connect(self) -> None:
        await self.join_room(ROOM)
        await self.send_text(f"id:{self.id}")

    async def on_json(self, content: Any) -> None:
        await self.act(content)


class Bystander(HubConsumer):
    async def on_connect(self) -> None:
        await self.join_room(ROOM)
        await self.send_text(f"id:{self.id}")


# -- what an attacker sends ------------------------------------------------------------------

lone_surrogate = st.sampled_from(["\ud800", "\udfff", "\udc80", "x\ud83d"])
#: Text as JSON may carry it: anything, lone surrogates included.
wild_text = st.text(max_size=40) | st.builds(
    lambda a, s, b: a + s + b, st.text(max_size=8), lone_surrogate, st.text(max_size=8)
)
names = wild_text | st.text(min_size=250, max_size=300) | st.sampled_from(["", " ", "a.b", "*"])


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


requests = st.builds(
    lambda op, value: json.dumps({"op": op, "value": value}),
    st.sampled_from(["say", "json", "echo", "join", "leave", "user", "group", "group_send"]),
    names | st.integers() | st.none() | st.lists(st.integers(), max_size=3),
)
frames = st.one_of(
    requests,
    wild_text.map(lambda text: json.dumps({"op": "say", "value": text})),
    wild_text.map(lambda text: json.dumps(text)),  # a bare JSON string, \\ud800 escapes included
    st.text(max_size=60),  # not JSON at all
    st.binary(max_size=60),  # binary frames, invalid UTF-8 included
    st.integers(min_value=1, max_value=3000).map(_nested),  # deep nesting
    st.integers(min_value=MAX_SIZE + 1, max_value=MAX_SIZE * 3).map(lambda n: "x" * n),
    st.just(b"\xff\xfe" * 10),
)


async def _send(conn: Conn, frame: str | bytes) -> None:
    """One frame from the client (empty ones too, which ``send_to`` refuses)."""
    key = "text" if isinstance(frame, str) else "bytes"
    await conn.comm.send_input({"type": "websocket.receive", key: frame})


def _sendable(frame: Any) -> None:
    """A real server must be able to put every text frame on the wire as UTF-8."""
    if isinstance(frame, str):
        frame.encode("utf-8")  # raises on a lone surrogate, as daphne and uvicorn do


async def _hears(bystander: Conn, probe: str) -> bool:
    """True once the bystander receives ``probe`` (whatever else the room said before it)."""
    while True:
        got = await bystander.comm.receive_from(timeout=WAIT)
        _sendable(got)
        if got == probe:
            return True


async def _attacker_state(attacker: Conn) -> int | None:
    """None while the attacker's connection is open, else the code it was closed with."""
    comm = attacker.comm
    while not await comm.receive_nothing(timeout=scaled(0.05)):
        out = await comm.output_queue.get()
        _sendable(out.get("text"))
        if out["type"] == "websocket.close":
            return int(out.get("code", 1000))
    return None


async def _run(consumer: type[HubConsumer], sequence: list[str | bytes]) -> None:
    wshub = {"CHANNEL_LAYER": ALIAS, "CONFIG": {"max_message_size": MAX_SIZE}}
    async with hub_clients(ALIAS, wshub) as clients:
        attacker = await clients.connect(consumer)
        bystander = await clients.connect(Bystander)
        hub = attacker.comm.hub
        closed: int | None = None
        for number, frame in enumerate(sequence):
            if closed is None:
                await _send(attacker, frame)
                closed = await _attacker_state(attacker)
            probe = f"probe-{number}"
            await hub.broadcast_to_room(ROOM, probe)
            assert await _hears(bystander, probe), frame
        assert closed is None or closed in DOCUMENTED_CLOSES, closed
        assert hub.client_count() == (2 if closed is None else 1)
        await _fresh_client_still_served(clients, hub)


async def _fresh_client_still_served(clients: Clients, hub: Any) -> None:
    """A client that connects after the attack joins the room and hears it."""
    late = await clients.connect(Bystander)
    await hub.broadcast_to_room(ROOM, "after")
    assert await _hears(late, "after")


@FUZZ
@given(sequence=st.lists(frames, min_size=1, max_size=6))
async def test_hostile_frames_never_cut_a_room_off_hub_consumer(sequence: list[Any]) -> None:
    await _run(TextRelay, sequence)


@FUZZ
@given(sequence=st.lists(frames, min_size=1, max_size=6))
async def test_hostile_frames_never_cut_a_room_off_json_consumer(sequence: list[Any]) -> None:
    await _run(JsonRelay, sequence)


#: The long tier (``./dev slow``): twenty times the examples, longer sequences.
FULL = settings(FUZZ, max_examples=int(scaled(500)))


@pytest.mark.slow
@FULL
@given(sequence=st.lists(frames, min_size=1, max_size=20))
async def test_full_fuzz_hub_consumer(sequence: list[Any]) -> None:
    await _run(TextRelay, sequence)


@pytest.mark.slow
@FULL
@given(sequence=st.lists(frames, min_size=1, max_size=20))
async def test_full_fuzz_json_consumer(sequence: list[Any]) -> None:
    await _run(JsonRelay, sequence)
