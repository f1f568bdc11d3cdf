"""Limits, origin checks, rate limits, middleware, hooks, signals and metrics,
through real daphne and uvicorn processes and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.peer import Peer, hub_server
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("kind", ["daphne", "uvicorn"])]

HOOKED = {
    "HOOKS": "tests.apps.policies.RecordingHooks",
    "MIDDLEWARE": ["tests.apps.policies.outer", "tests.apps.policies.inner"],
    "METRICS": "wshub_channels.metrics.DebugMetrics",
}


@pytest.fixture
def serve(asgi_server: StartAsgiServer) -> Iterator[Callable[..., AsgiServer]]:
    started: list[AsgiServer] = []

    def start(kind: str, **settings: Any) -> AsgiServer:
        server: AsgiServer = hub_server(asgi_server, kind, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def echo_client(server: AsgiServer, query: str = "", **kwargs: Any) -> ClientConnection:
    ws = await connect(server.ws_url(f"/ws/policy/{query}"), open_timeout=scaled(5), **kwargs)
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == "ready"
    return ws


async def refused_status(server: AsgiServer, query: str = "", **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url(f"/ws/policy/{query}"), open_timeout=scaled(5), **kwargs)
    return int(refused.value.response.status_code)


async def ask(ws: ClientConnection, text: str) -> str:
    await ws.send(text)
    reply = await asyncio.wait_for(ws.recv(), scaled(3))
    assert isinstance(reply, str)
    return reply


def close_code(kind: str, code: int) -> int:
    """The code a client sees: daphne can only send 1000 and 3000-4999, so 1xxx -> 4xxx."""
    return code + 3000 if kind == "daphne" and code != 1000 else code


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), scaled(3))
    return ws.close_code


@pytest.fixture
async def clients() -> AsyncIterator[list[ClientConnection]]:
    opened: list[ClientConnection] = []
    yield opened
    for ws in opened:
        await ws.close()


async def test_max_connections_refuses_then_frees_a_slot(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """Past max_connections the handshake gets 403; a closed connection frees its slot."""
    server = serve(kind, LIMITS={"max_connections": 2})
    clients += [await echo_client(server), await echo_client(server)]
    assert await refused_status(server) == 403
    await clients.pop(0).close()

    async def reconnected() -> bool:
        try:
            clients.append(await echo_client(server))
        except InvalidStatus:
            return False
        return True

    await async_wait_until(reconnected, scaled(2.5), what="the freed slot")
    assert len(clients) == 2


async def test_max_connections_per_user(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """A known user over the limit gets 403; one identified after accept is closed with 1013."""
    server = serve(kind, LIMITS={"max_connections_per_user": 1})
    clients.append(await echo_client(server, "?auth=alice"))
    assert await refused_status(server, "?auth=alice") == 403
    clients.append(await echo_client(server, "?auth=bob"))
    clients.append(await echo_client(server, "?user=carol"))
    late = await connect(server.ws_url("/ws/policy/?user=carol"), open_timeout=scaled(5))
    assert await closed_with(late) == close_code(kind, 1013)


async def test_room_limits(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """max_rooms_per_client raises MaxRoomsReached; max_clients_per_room raises RoomFull."""
    server = serve(kind, LIMITS={"max_rooms_per_client": 2, "max_clients_per_room": 2})
    a, b, c = [await echo_client(server) for _ in range(3)]
    clients += [a, b, c]
    assert await ask(a, "join:r1") == "joined:r1"
    assert await ask(a, "join:r2") == "joined:r2"
    assert await ask(a, "join:r3") == "error:MaxRoomsReached"
    assert await ask(b, "join:r1") == "joined:r1"
    assert await ask(c, "join:r1") == "error:RoomFull"
    assert await ask(c, "ping") == "echo:ping"


async def _burst(ws: ClientConnection, count: int, size: int = 4) -> tuple[int, int]:
    for n in range(count):
        await ws.send(str(n % 10) * size)
    echoes = errors = 0
    for _ in range(count):
        reply = await asyncio.wait_for(ws.recv(), scaled(3))
        if str(reply).startswith("echo:"):
            echoes += 1
        else:
            assert reply == "error:RateLimitExceeded"
            errors += 1
    return echoes, errors


async def test_rate_limit_by_messages(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """Messages over the rate reach on_error as RateLimitExceeded; the connection stays."""
    server = serve(kind, LIMITS={"max_messages_per_second": 5})
    ws = await echo_client(server)
    clients.append(ws)
    echoes, errors = await _burst(ws, 20)
    assert 5 <= echoes <= 8 and errors == 20 - echoes
    await asyncio.sleep(scaled(1.2))
    assert await ask(ws, "ping") == "echo:ping"


async def test_rate_limit_by_bytes(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """Bytes over the byte rate are refused the same way."""
    server = serve(kind, LIMITS={"max_bytes_per_second": 2000})
    ws = await echo_client(server)
    clients.append(ws)
    echoes, errors = await _burst(ws, 10, size=500)
    assert 4 <= echoes <= 5 and errors == 10 - echoes


async def test_rate_limit_can_close_with_1008(kind: str, serve: Callable[..., AsgiServer]) -> None:
    """With close_on_rate_limit the offending connection is closed with 1008."""
    server = serve(
        kind, LIMITS={"max_messages_per_second": 1}, CONFIG={"close_on_rate_limit": True}
    )
    ws = await echo_client(server)
    await ws.send("one")
    await ws.send("two")
    assert await closed_with(ws) == close_code(kind, 1008)


async def test_oversized_frame_closes_with_1009(
    kind: str, serve: Callable[..., AsgiServer]
) -> None:
    """A frame over max_message_size closes the connection with 1009."""
    server = serve(kind, CONFIG={"max_message_size": 1000})
    ws = await echo_client(server)
    assert await ask(ws, "x" * 900) == "echo:" + "x" * 900
    await ws.send("y" * 2000)
    assert await closed_with(ws) == close_code(kind, 1009)


async def test_origin_rules(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """Same-origin by default, allow-all, and a custom callable by dotted path."""
    default = serve(kind)
    assert await refused_status(default, origin="http://evil.example") == 403
    same = f"http://127.0.0.1:{default.port}"
    clients.append(await echo_client(default, origin=same))  # type: ignore[arg-type]
    clients.append(await echo_client(default))  # no Origin header: allowed
    anything = serve(kind, CONFIG={"check_origin": "wshub_channels.origin.allow_all_origins"})
    clients.append(await echo_client(anything, origin="http://evil.example"))  # type: ignore[arg-type]
    custom = serve(kind, CONFIG={"check_origin": "tests.apps.policies.trusted_header_only"})
    assert await refused_status(custom) == 403
    clients.append(await echo_client(custom, additional_headers={"x-trusted": "yes"}))


def _ordered(events: list[str], expected: list[str]) -> bool:
    """True if ``expected`` appears in ``events`` as a contiguous run."""
    n = len(expected)
    return any(events[i : i + n] == expected for i in range(len(events) - n + 1))


async def test_middleware_order_and_hook_order(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """The first middleware is outermost; hub-wide hooks run before the consumer's."""
    server = serve(kind, **HOOKED)
    ws = await echo_client(server)
    clients.append(ws)
    assert await ask(ws, "ping") == "echo:ping"
    events = json.loads(await ask(ws, "events"))
    assert _ordered(events, ["hook:before_connect", "consumer:before_connect"])
    assert _ordered(events, ["hook:on_connect", "consumer:on_connect"])
    around = ["mw:outer:before", "mw:inner:before", "hook:on_message", "handler"]
    assert _ordered(events, [*around, "mw:inner:after", "mw:outer:after"])


async def test_hooks_reject_and_transform(
    kind: str, serve: Callable[..., AsgiServer], clients: list[ClientConnection]
) -> None:
    """Each before_* hook can reject; before_message can transform; errors reach on_error."""
    server = serve(kind, **HOOKED)
    assert await refused_status(server, "?deny=1") == 403
    ws = await echo_client(server)
    clients.append(ws)
    assert await ask(ws, "shout:hi") == "echo:SHOUT:HI"
    assert await ask(ws, "forbidden") == "error:Unauthorized"
    assert await ask(ws, "join:vip") == "error:Unauthorized"
    assert await ask(ws, "join:sticky") == "joined:sticky"
    assert await ask(ws, "leave:sticky") == "error:Unauthorized"
    assert await ask(ws, "boom") == "error:RuntimeError"
    assert await ask(ws, "ping") == "echo:ping"
    events = json.loads(await ask(ws, "events"))
    for event in ("hook:on_room_join:sticky", "hook:on_error:RuntimeError"):
        assert event in events


async def test_signals_sync_and_async_and_a_raising_receiver(
    kind: str, serve: Callable[..., AsgiServer]
) -> None:
    """Every client signal reaches sync and async receivers; a raising one harms nobody."""
    server = serve(kind, **HOOKED)
    first = await echo_client(server)
    assert await ask(first, "join:lobby") == "joined:lobby"
    assert await ask(first, "leave:lobby") == "left:lobby"
    assert await ask(first, "join:boom-room") == "joined:boom-room"  # its receiver raises
    assert await ask(first, "boom") == "error:RuntimeError"
    await first.close()
    second = await echo_client(server)
    events: list[str] = []

    async def disconnect_seen() -> bool:
        events[:] = json.loads(await ask(second, "events"))
        return "signal:client_disconnected:async" in events

    await async_wait_until(disconnect_seen, scaled(2.5), what="client_disconnected")
    for name in (
        "client_connected",
        "client_disconnected",
        "message_received",
        "room_joined",
        "room_left",
        "hub_error",
        "hub_state_changed",
    ):
        assert f"signal:{name}:sync" in events and f"signal:{name}:async" in events, name
    stats = json.loads(await ask(second, "stats"))
    assert stats["hub"]["signal_errors"] == 1
    assert stats["metrics"]["errors"]["signal_receiver"] == 1
    await second.close()


async def test_debug_metrics_after_a_scripted_workload(
    kind: str, serve: Callable[..., AsgiServer]
) -> None:
    """DebugMetrics counts connections, messages, rooms and errors exactly."""
    server = serve(kind, **HOOKED)
    one, two = await echo_client(server), await echo_client(server)
    for text in ("a", "b", "c", "join:r", "leave:r"):
        await ask(one, text)
    for text in ("a", "b", "c"):
        await ask(two, text)
    assert await ask(two, "boom") == "error:RuntimeError"
    await one.close()
    stats: dict[str, Any] = {}

    async def one_left() -> bool:
        stats.update(json.loads(await ask(two, "stats"))["metrics"])
        return bool(stats["connections_active"] == 1)

    await async_wait_until(one_left, scaled(2.5), what="the first client's close")
    assert stats["connections_total"] == 2 and stats["connections_active"] == 1
    assert stats["room_joins"] == 1 and stats["room_leaves"] == 1 and stats["rooms_active"] == 0
    assert stats["errors"] == {"message_handling": 1}
    # Received: 5 + 3 + boom + one "stats" per poll; sent: 2 ready + 8 replies + error + polls.
    polls = stats["messages_received"] - 9
    assert polls >= 1 and stats["messages_sent"] == 11 + polls - 1
    assert stats["message_bytes_count"] == stats["messages_received"]
    await two.close()


async def test_send_dropped_signal_fires_on_drops(kind: str, asgi_server: StartAsgiServer) -> None:
    """The send_dropped signal fires, sync and async, for every drop (uvicorn backpressure)."""
    if kind == "daphne":
        pytest.skip("daphne's send never blocks, so its queues never overflow")
    from tests.integration.stalled import StalledClient

    server = hub_server(asgi_server, kind, CONFIG={"send_queue_size": 4}, METRICS=HOOKED["METRICS"])
    try:
        slow = await StalledClient(server.ws_url("/ws/control/")).open()
        control = await Peer.open(server.ws_url("/ws/control/"))
        await control.call("flood", client=slow.id, count=100, size=64 * 1024)
        stats: dict[str, Any] = {}

        async def all_signalled() -> bool:
            stats.update(await control.call("lookup"))
            return bool(stats["events"].get("signal:send_dropped:async") == stats["send_dropped"])

        await async_wait_until(all_signalled, scaled(2.5), what="a signal per drop")
        assert stats["send_dropped"] > 0
        assert stats["events"]["signal:send_dropped:sync"] == stats["send_dropped"]
        assert stats["events"]["signal:send_dropped:async"] == stats["send_dropped"]
        slow.close()
        await control.close()
    finally:
        server.stop()
