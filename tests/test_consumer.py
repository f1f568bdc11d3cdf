"""HubConsumer behaviour: hooks and signals, handshake rejection, errors, limits, identity.

Each test gets a fresh ``InMemoryHubLayer`` under its own alias (so its own
hub) and drives consumers through ``HubCommunicator``. Consumers send
``id:<client id>`` at the end of ``on_connect``, so a test knows the client
is registered before it goes on. ``WSHUB`` is overridden per test where
hooks, config or limits matter; settings are read when a client connects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from channels.layers import channel_layers
from django.dispatch import Signal
from django.test import override_settings

from tests.inprocess import WAIT, Clients, hub_clients
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer, JsonHubConsumer, Message, get_hub, signals
from wshub_channels.connection import consumer as consumer_module
from wshub_channels.connection import inbound as inbound_module
from wshub_channels.errors import AuthenticationFailed, RateLimitExceeded, Unauthorized
from wshub_channels.hooks import Hooks
from wshub_channels.hub.hub import Hub
from wshub_channels.types import Client

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-consumer"
HERE = __name__  # dotted path of this module, for WSHUB["HOOKS"]

#: What the recording hooks, consumer and signal receivers saw, in order.
recorded: list[str] = []


# -- consumers and hooks -------------------------------------------------------------------


class Base(HubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.send_text(f"id:{self.id}")

    async def on_error(self, error: Exception) -> None:
        await self.send_text(f"error:{type(error).__name__}:{error}")


class Echo(Base):
    """Echoes text, and runs ``join:<room>`` / ``leave:<room>`` / ``close`` commands."""

    async def on_message(self, msg: Message) -> None:
        text = msg.text() if msg.is_text else ""
        op, _, arg = text.partition(":")
        if op == "join":
            await self.join_room(arg)
        elif op == "leave":
            await self.leave_room(arg)
        elif op == "close":
            await self.close(code=4002)
            return
        await self.send_text(f"echo:{text}" if msg.is_text else "echo-bytes")


class RecordingHooks(Hooks):
    async def before_connect(self, client: Client) -> None:
        recorded.append("hub.before_connect")

    async def on_connect(self, client: Client) -> None:
        recorded.append("hub.on_connect")

    async def before_message(self, client: Client, msg: Message) -> Message:
        recorded.append("hub.before_message")
        return msg

    async def on_message(self, client: Client, msg: Message) -> None:
        recorded.append("hub.on_message")

    async def before_room_join(self, client: Client, room: str) -> None:
        recorded.append(f"hub.before_room_join:{room}")

    async def on_room_join(self, client: Client, room: str) -> None:
        recorded.append(f"hub.on_room_join:{room}")

    async def before_room_leave(self, client: Client, room: str) -> None:
        recorded.append(f"hub.before_room_leave:{room}")

    async def on_room_leave(self, client: Client, room: str) -> None:
        recorded.append(f"hub.on_room_leave:{room}")

    async def on_close(self, client: Client, code: int) -> None:
        recorded.append(f"hub.on_close:{code}")


class Recorder(Echo):
    async def before_connect(self) -> None:
        recorded.append("consumer.before_connect")

    async def on_connect(self) -> None:
        recorded.append("consumer.on_connect")
        await super().on_connect()

    async def before_message(self, msg: Message) -> Message:
        recorded.append("consumer.before_message")
        return msg

    async def on_message(self, msg: Message) -> None:
        recorded.append("consumer.on_message")
        await super().on_message(msg)

    async def before_room_join(self, room: str) -> None:
        recorded.append(f"consumer.before_room_join:{room}")

    async def on_room_join(self, room: str) -> None:
        recorded.append(f"consumer.on_room_join:{room}")

    async def before_room_leave(self, room: str) -> None:
        recorded.append(f"consumer.before_room_leave:{room}")

    async def on_room_leave(self, room: str) -> None:
        recorded.append(f"consumer.on_room_leave:{room}")

    async def disconnect(self, code: int) -> None:
        recorded.append(f"consumer.disconnect:{code}")

    async def on_close(self, code: int) -> None:
        recorded.append(f"consumer.on_close:{code}")


class DenyHooks(Hooks):
    """Refuses handshakes whose query string has ``deny``."""

    async def before_connect(self, client: Client) -> None:
        if b"deny" in client.scope["query_string"]:  # type: ignore[attr-defined]
            raise Unauthorized("denied by the hub")


class Gatekeeper(Base):
    """Accepts only handshakes with a ``token`` in the query string."""

    async def before_connect(self) -> None:
        if "token" not in parse_qs(self.scope["query_string"].decode()):
            raise AuthenticationFailed("no token")

    async def on_connect(self) -> None:
        recorded.append(f"connected:{self.id}")
        await super().on_connect()


class PrefixHooks(Hooks):
    async def before_message(self, client: Client, msg: Message) -> Message:
        return Message("hub:" + msg.text(), msg.client_id)


class Transformer(Base):
    async def before_message(self, msg: Message) -> Message:
        if "reject" in msg.text():
            raise Unauthorized("rejected")
        return Message(msg.text().upper(), msg.client_id)

    async def on_message(self, msg: Message) -> None:
        await self.send_text(f"echo:{msg.text()}")


class Fragile(Base):
    async def on_message(self, msg: Message) -> None:
        if msg.text() == "boom":
            raise ValueError("boom")
        await self.send_text(f"pong:{msg.text()}")


class JsonEcho(JsonHubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.send_text(f"id:{self.id}")

    async def on_json(self, content: Any) -> None:
        await self.send_json({"echo": content})

    async def on_error(self, error: Exception) -> None:
        await self.send_text(f"error:{type(error).__name__}:{error}")


class GroupChat(HubConsumer):
    """A stock Channels group chat on a HubConsumer: groups, group_add, group_send, send."""

    channel_layer_alias = ALIAS
    groups = ["stock-chat"]

    async def on_connect(self) -> None:
        await self.channel_layer.group_add("stock-extra", self.channel_name)
        await self.send(text_data=f"id:{self.id}")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert text_data is not None
        group = "stock-extra" if text_data.startswith("extra:") else "stock-chat"
        await self.channel_layer.group_send(group, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


@dataclass
class FakeUser:
    pk: Any
    is_authenticated: bool


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    recorded.clear()
    async with hub_clients(ALIAS) as made:
        yield made
    recorded.clear()


@pytest.fixture
def listen() -> Iterator[Callable[[Signal, Any], None]]:
    """Connect a receiver for the test only (strongly referenced)."""
    connected: list[tuple[Signal, Any]] = []

    def connect(signal: Signal, receiver: Any) -> None:
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


def hub() -> Hub:
    return get_hub(ALIAS)


#: The collector whose counts these tests read (what ``hub.stats`` used to keep).
DEBUG = "wshub_channels.metrics.DebugMetrics"


def handler_errors(kind: str) -> int:
    return int(hub().metrics.stats()["errors"].get(kind, 0))


def refusals() -> int:
    return int(hub().metrics.stats().get("handshakes_refused", 0))


# -- hooks and signals ---------------------------------------------------------------------------


async def test_hook_order_over_a_connection_life(
    clients: Clients, listen: Callable[[Signal, Any], None]
) -> None:
    """Each event runs the WSHUB hook, then the consumer's override, then the signal."""
    seen_clients: list[Any] = []

    def record(name: str, key: str | None = None) -> Any:
        async def receiver(sender: Any, client: Any, **kwargs: Any) -> None:
            assert sender is Recorder
            seen_clients.append(client)
            recorded.append(f"signal.{name}" + (f":{kwargs[key]}" if key else ""))

        return receiver

    listen(signals.client_connected, record("connected"))
    listen(signals.message_received, record("message"))
    listen(signals.room_joined, record("room_joined", "room"))
    listen(signals.room_left, record("room_left", "room"))
    listen(signals.client_disconnected, record("disconnected", "code"))
    with override_settings(WSHUB={"HOOKS": f"{HERE}.RecordingHooks"}):
        a = await clients.connect(Recorder)
        assert await a.ask("join:r") == "echo:join:r"
        assert await a.ask("leave:r") == "echo:leave:r"
        await a.comm.disconnect(code=4321, timeout=WAIT)
    message = ["hub.before_message", "consumer.before_message"]
    message += ["hub.on_message", "consumer.on_message"]
    assert recorded == [
        "hub.before_connect",
        "consumer.before_connect",
        "hub.on_connect",
        "consumer.on_connect",
        "signal.connected",
        *message,
        "hub.before_room_join:r",
        "consumer.before_room_join:r",
        "hub.on_room_join:r",
        "consumer.on_room_join:r",
        "signal.room_joined:r",
        "signal.message",
        *message,
        "hub.before_room_leave:r",
        "consumer.before_room_leave:r",
        "hub.on_room_leave:r",
        "consumer.on_room_leave:r",
        "signal.room_left:r",
        "signal.message",
        "consumer.disconnect:4321",
        "hub.on_close:4321",
        "consumer.on_close:4321",
        "signal.disconnected:4321",
    ]
    assert {client.id for client in seen_clients} == {a.id}
    assert all(isinstance(client, Recorder) for client in seen_clients)


async def test_before_connect_authentication_failed_refuses_the_handshake(
    clients: Clients,
) -> None:
    """AuthenticationFailed in before_connect refuses the handshake and frees the slot."""
    with override_settings(WSHUB={"LIMITS": {"max_connections": 1}, "METRICS": DEBUG}):
        comm = clients.communicator(Gatekeeper)
        connected, code = await comm.connect(timeout=WAIT)
        assert (connected, code) == (False, 1008)
        await comm.wait(timeout=WAIT)  # the consumer stopped by itself
        assert hub().client_count() == 0
        assert refusals() == 1
        assert recorded == []  # on_connect never ran
        a = await clients.connect(Gatekeeper, "token=t")  # the one slot is free again
        assert recorded == [f"connected:{a.id}"]
        assert hub().client_count() == 1


async def test_hub_wide_before_connect_unauthorized_refuses_the_handshake(
    clients: Clients,
) -> None:
    """A WSHUB hook raising Unauthorized in before_connect refuses before the consumer's."""
    with override_settings(WSHUB={"HOOKS": f"{HERE}.DenyHooks"}):
        comm = clients.communicator(Gatekeeper, "token=t&deny=1")
        assert await comm.connect(timeout=WAIT) == (False, 1008)
        await comm.wait(timeout=WAIT)
        assert hub().client_count() == 0 and recorded == []
        await clients.connect(Gatekeeper, "token=t")
        assert hub().client_count() == 1


async def test_foreign_origin_is_refused_by_the_default_check(clients: Clients) -> None:
    """With the default same-origin check a foreign Origin is refused, a matching one accepted."""
    foreign = [(b"host", b"example.com"), (b"origin", b"http://evil.com")]
    comm = clients.communicator(Echo, headers=foreign)
    assert await comm.connect(timeout=WAIT) == (False, 1008)
    await comm.wait(timeout=WAIT)
    assert hub().client_count() == 0
    same = [(b"host", b"example.com"), (b"origin", b"http://example.com")]
    await clients.connect(Echo, headers=same)
    assert hub().client_count() == 1


async def test_before_message_transforms_and_rejects(clients: Clients) -> None:
    """The hub's before_message runs first, the consumer's may transform, and a raise rejects."""
    with override_settings(WSHUB={"HOOKS": f"{HERE}.PrefixHooks", "METRICS": DEBUG}):
        a = await clients.connect(Transformer)
        assert await a.ask("hello") == "echo:HUB:HELLO"
        assert await a.ask("reject me") == "error:Unauthorized:rejected"
        assert await a.ask("again") == "echo:HUB:AGAIN"  # nothing was echoed for the reject
        assert handler_errors("message_handling") == 1


async def test_handler_error_goes_to_on_error_and_hub_error_and_connection_survives(
    clients: Clients, listen: Callable[[Signal, Any], None]
) -> None:
    """A raising handler reaches on_error and hub_error; the connection answers the next message."""
    errors: list[tuple[str, Exception]] = []

    async def on_hub_error(sender: Any, client: Any, error: Exception, **kwargs: Any) -> None:
        errors.append((client.id, error))

    listen(signals.hub_error, on_hub_error)
    with override_settings(WSHUB={"METRICS": DEBUG}):
        a = await clients.connect(Fragile)
        assert await a.ask("boom") == "error:ValueError:boom"
        await async_wait_until(lambda: errors, WAIT, what="the hub_error signal")
        assert [(cid, type(err), str(err)) for cid, err in errors] == [(a.id, ValueError, "boom")]
        assert await a.ask("ping") == "pong:ping"
        assert handler_errors("message_handling") == 1
        assert hub().get_client(a.id) is not None


async def test_json_consumer_invalid_json_goes_to_on_error(clients: Clients) -> None:
    """JsonHubConsumer reports invalid JSON to on_error as ValueError and keeps going."""
    a = await clients.connect(JsonEcho)
    reply = await a.ask("{not json")
    assert reply.startswith("error:ValueError:invalid JSON from client")
    assert await a.ask('{"a": [1, "é"]}') == '{"echo":{"a":[1,"é"]}}'


@pytest.mark.parametrize(
    "frame",
    [{"text": "y" * 17}, {"text": "é" * 9}, {"bytes": b"z" * 17}],
    ids=["text", "multibyte-text", "bytes"],
)
async def test_oversized_frame_closes_with_1009(clients: Clients, frame: dict[str, Any]) -> None:
    """A frame over max_message_size (in bytes) closes the connection with 1009."""
    with override_settings(WSHUB={"CONFIG": {"max_message_size": 16}, "METRICS": DEBUG}):
        a = await clients.connect(Echo)
        assert await a.ask("x" * 16) == "echo:" + "x" * 16  # at the limit: handled
        await a.comm.send_input({"type": "websocket.receive", **frame})
        closed = await a.comm.receive_output(timeout=WAIT)
        assert closed["type"] == "websocket.close" and closed["code"] == 1009
        assert hub().get_client(a.id) is None
        assert handler_errors("message_too_big") == 1


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("key", ["max_message_rate", "max_messages_per_second"])
async def test_rate_limit_reports_rate_limit_exceeded(
    clients: Clients, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Past LIMITS rate (either name) a message is not handled but reported; the client stays."""
    clock = FrozenClock()
    monkeypatch.setattr(consumer_module, "clock", clock)
    monkeypatch.setattr(inbound_module, "clock", clock)
    with override_settings(WSHUB={"LIMITS": {key: 2}, "METRICS": DEBUG}):
        a = await clients.connect(Echo)
        for text in ("1", "2", "3", "4"):
            await a.comm.send_to(text_data=text)
        replies = [await a.next() for _ in range(4)]
        error = f"error:{RateLimitExceeded.__name__}:rate limit exceeded"
        assert replies == ["echo:1", "echo:2", error, error]
        assert handler_errors("rate_limit_exceeded") == 2
        assert hub().get_client(a.id) is not None
        clock.now += 1.0  # one second refills two tokens
        assert await a.ask("5") == "echo:5"
        assert await a.ask("6") == "echo:6"
        assert await a.ask("7") == error


async def test_set_metadata_refuses_a_non_msgpack_value(clients: Clients) -> None:
    """set_metadata raises TypeError for a value msgpack cannot carry and keeps the old data."""
    a = await clients.connect(Echo)
    client = hub().get_client(a.id)
    assert client is not None
    client.set_metadata("role", "admin")
    client.set_metadata("nested", {"a": [1, 2.5, None, b"x"]})
    for bad in (object(), {1, 2}, {"k": object()}):
        with pytest.raises(TypeError):
            client.set_metadata("bad", bad)
    assert "bad" not in client.metadata
    assert client.get_metadata("role") == "admin"
    assert client.get_metadata("missing", "dflt") == "dflt"
    client.delete_metadata("role")
    assert client.get_metadata("role") is None
    assert client.metadata == {"nested": {"a": [1, 2.5, None, b"x"]}}


async def test_user_id_defaults_from_an_authenticated_scope_user(clients: Clients) -> None:
    """user_id is str(scope['user'].pk) for an authenticated user, None for an anonymous one."""
    a = await clients.connect(Echo, user=FakeUser(pk=42, is_authenticated=True))
    anon = await clients.connect(Echo, user=FakeUser(pk=None, is_authenticated=False))
    found = hub().get_client_by_user_id("42")
    assert found is not None and found.id == a.id and found.user_id == "42"
    anonymous = hub().get_client(anon.id)
    assert anonymous is not None and anonymous.user_id is None
    await hub().send_to_user("42", "for 42")
    assert await a.next() == "for 42"


async def test_rooms_reflect_joins_and_are_empty_once_closed(clients: Clients) -> None:
    """rooms, in_room and room_count follow joins and leaves, and are empty after close."""
    a, b = await clients.connect(Echo), await clients.connect(Echo)
    client_a, client_b = hub().get_client(a.id), hub().get_client(b.id)
    assert client_a is not None and client_b is not None
    assert client_a.rooms == frozenset() and client_a.room_count == 0
    for text in ("join:x", "join:y", "join:z", "leave:z"):
        assert await a.ask(text) == f"echo:{text}"
    assert await b.ask("join:x") == "echo:join:x"
    assert client_a.rooms == frozenset({"x", "y"})
    assert client_a.in_room("x") and not client_a.in_room("z")
    assert client_a.room_count == 2
    assert not client_a.is_closed and client_a.closed_at is None

    await a.comm.disconnect(timeout=WAIT)  # closed by the client
    assert client_a.rooms == frozenset() and client_a.room_count == 0
    assert not client_a.in_room("x")
    assert client_a.is_closed and client_a.closed_at is not None

    await b.comm.send_to(text_data="close")  # closed by the server
    closed = await b.comm.receive_output(timeout=WAIT)
    assert closed["type"] == "websocket.close" and closed["code"] == 4002
    assert client_b.rooms == frozenset() and client_b.room_count == 0
    assert client_b.is_closed
    assert hub().room_names() == []


async def test_stock_group_add_and_group_send_handlers_work(clients: Clients) -> None:
    """Stock groups, group_add, group_send and type-dispatched handlers work as in Channels."""
    a, b = await clients.connect(GroupChat), await clients.connect(GroupChat)
    await a.comm.send_to(text_data="hi all")
    assert await a.next() == "hi all"
    assert await b.next() == "hi all"
    await b.comm.send_to(text_data="extra:yo")
    assert await a.next() == "extra:yo"
    assert await b.next() == "extra:yo"
    await a.comm.disconnect(timeout=WAIT)
    await b.comm.send_to(text_data="still here")
    assert await b.next() == "still here"
    layer = channel_layers[ALIAS]
    assert set(layer.local_members("g", "stock-chat") or ()) == {b.id}
    assert set(layer.local_members("g", "stock-extra") or ()) == {b.id}


class Limited(Echo):
    """Echo behind ``rate_limit_middleware(1)``: one message per second."""


def one_per_second() -> Any:
    from wshub_channels.middleware import rate_limit_middleware

    return rate_limit_middleware(1)


async def test_rate_limit_middleware_ends_as_the_limits_do(clients: Clients) -> None:
    """A message rate_limit_middleware refuses is reported as rate_limit_exceeded (not as a
    handler error) and, with close_on_rate_limit, closes with 1008: as the Limits do."""
    wshub = {
        "MIDDLEWARE": [f"{HERE}.one_per_second"],
        "CONFIG": {"close_on_rate_limit": True},
        "METRICS": DEBUG,
    }
    with override_settings(WSHUB=wshub):
        a = await clients.connect(Limited)
        await a.comm.send_to(text_data="1")
        await a.comm.send_to(text_data="2")
        assert await a.next() == "echo:1"
        assert (
            await a.next() == f"error:{RateLimitExceeded.__name__}:more than 1 messages per second"
        )
        closed = await a.comm.receive_output(timeout=WAIT)
        assert closed["type"] == "websocket.close" and closed["code"] == 1008
        assert handler_errors("rate_limit_exceeded") == 1
        assert handler_errors("message_handling") == 0
