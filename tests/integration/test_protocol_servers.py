"""Client protocol v1 through real daphne and uvicorn processes and a real WebSocket client.

The server is ``tests/apps/protocol_app.py`` (``ProtocolHubConsumer``, pings every
half unit) with room history on ``h.*`` rooms. The client is ``websockets``,
offering ``"wshub.v1"`` (and a token where the test says so), reading frames
as a browser would, coalesced ones split on newlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.test_token_servers import Browser
from tests.rig.servers import AsgiServer, StartAsgiServer, manage
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.protocol_app:application"
PING = scaled(0.5)
HISTORY = {"h.*": {"size": 5, "ttl": 60}}


@pytest.fixture(scope="module")
def proto_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db: Path = tmp_path_factory.mktemp("proto-db") / "db.sqlite3"
    settings = {"HISTORY": HISTORY, "CONFIG": {"coalesce_writes": True}}
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.auth_settings",
        "WSHUB_AUTH_DB": str(db),
        "WSHUB_TEST_PING": str(PING),
        "WSHUB_TEST_SETTINGS": json.dumps(settings),
    }
    done = manage(env, "migrate", "--noinput", "--skip-checks")
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(
    request: pytest.FixtureRequest, asgi_server: StartAsgiServer, proto_env: dict[str, str]
) -> Iterator[AsgiServer]:
    srv = asgi_server(request.param, "tests.apps.protocol_app:application", proto_env)
    yield srv
    srv.stop()


class Client:
    """A protocol client: frames split as wshub.js splits them, pings answered on request."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[Any] = []
        self.answer_pings = True

    async def next(self, timeout: float | None = None) -> Any:
        """The next frame that is not a ping (pings are answered, or ignored)."""
        while True:
            if not self.pending:
                raw = await asyncio.wait_for(self.ws.recv(), timeout or scaled(5))
                if isinstance(raw, bytes):
                    return raw
                for line in raw.split("\n"):
                    if line:
                        try:
                            self.pending.append(json.loads(line))
                        except ValueError:
                            self.pending.append(line)
            item = self.pending.pop(0)
            if isinstance(item, dict) and item.get("t") == "ping":
                if self.answer_pings:
                    await self.ws.send('{"t":"pong"}')
                continue
            return item

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def ask(self, **frame: Any) -> Any:
        await self.send(**frame)
        return await self.next()

    async def msgs(self, count: int) -> list[Any]:
        got = [await self.next() for _ in range(count)]
        assert all(isinstance(m, dict) and m.get("t") == "msg" for m in got), got
        return got


@asynccontextmanager
async def dial(
    server: AsgiServer, path: str = "/ws/proto/", token: str | None = None
) -> AsyncIterator[Client]:
    offered = ["wshub.v1"] + ([f"wshub.token.{token}"] if token else [])
    # daphne sometimes keeps the TCP connection after the closing handshake: do not
    # wait the default 10 s for it.
    ws = await connect(
        server.ws_url(path),
        subprotocols=offered,  # type: ignore[arg-type]
        open_timeout=scaled(5),
        close_timeout=scaled(1),
    )
    try:
        assert ws.subprotocol == "wshub.v1"
        yield Client(ws)
    finally:
        await ws.close()


async def welcomed(client: Client) -> dict[str, Any]:
    welcome = await client.next()
    assert welcome["t"] == "welcome" and welcome["v"] == 1, welcome
    return dict(welcome)


async def test_welcome_then_join_send_and_msg_frames_with_positions(server: AsgiServer) -> None:
    """welcome first; joined answers the ref; a send reaches the room as msg frames that
    carry the room, the offset (one more each time) and the epoch."""
    async with dial(server) as alice, dial(server) as bob:
        welcome = await welcomed(alice)
        assert welcome["client"] and welcome["node"] and welcome["ping"] == pytest.approx(PING)
        await welcomed(bob)
        joined = await alice.ask(t="join", room="h.tea", since=None, ref="1")
        assert joined["t"] == "joined" and joined["ref"] == "1" and joined["room"] == "h.tea"
        assert isinstance(joined["offset"], int) and isinstance(joined["epoch"], str)
        start = joined["offset"]  # 0: nothing stored yet (the epoch begins with the first)
        assert (await bob.ask(t="join", room="h.tea", since=None, ref="b1"))["t"] == "joined"
        for n in range(3):
            await alice.send(t="send", room="h.tea", data=f"line {n}", ref=f"s{n}")
        for reader in (alice, bob):
            got = await reader.msgs(3)
            assert [m["data"] for m in got] == ["line 0", "line 1", "line 2"]
            assert [m["offset"] for m in got] == [start + 1, start + 2, start + 3]
            assert {m["room"] for m in got} == {"h.tea"}
            assert len({m["epoch"] for m in got}) == 1 and got[0]["epoch"]


async def test_a_plain_room_has_no_positions_and_user_sends_have_no_room(
    server: AsgiServer,
) -> None:
    async with dial(server) as alice:
        await welcomed(alice)
        joined = await alice.ask(t="join", room="plain", ref=1)
        assert (joined["offset"], joined["epoch"], joined["ref"]) == (None, None, 1)
        await alice.send(t="send", room="plain", data="hello", ref=2)
        (got,) = await alice.msgs(1)
        assert (got["room"], got["data"]) == ("plain", "hello")
        assert "offset" not in got and "epoch" not in got
        await alice.ws.send("broadcast:to all")  # a broadcast: no room
        assert await alice.next() == {"t": "msg", "room": None, "data": "to all"}


async def test_rejoin_with_since_replays_what_was_missed(server: AsgiServer) -> None:
    """A client that left at a position gets the missed messages, in order, then live ones."""
    async with dial(server) as alice, dial(server) as bob:
        await welcomed(alice), await welcomed(bob)
        await alice.ask(t="join", room="h.gap", ref="1")
        await bob.ask(t="join", room="h.gap", ref="1")
        await alice.send(t="send", room="h.gap", data="seen", ref="s")
        (seen,) = await bob.msgs(1)
        await alice.msgs(1)
        await bob.ask(t="leave", room="h.gap", ref="2")
        for n in range(3):
            await alice.send(t="send", room="h.gap", data=f"missed {n}", ref=n)
        await alice.msgs(3)
        since = {"offset": seen["offset"], "epoch": seen["epoch"]}
        await bob.send(t="join", room="h.gap", since=since, ref="3")
        replayed = await bob.msgs(3)
        assert [m["data"] for m in replayed] == ["missed 0", "missed 1", "missed 2"]
        rejoined = await bob.next()
        assert rejoined["t"] == "joined" and rejoined["recovered"] is True
        assert rejoined["offset"] == replayed[-1]["offset"]
        await alice.send(t="send", room="h.gap", data="live", ref=9)
        (live,) = await bob.msgs(1)
        assert live["data"] == "live" and live["offset"] == rejoined["offset"] + 1


async def test_a_gap_older_than_the_history_is_not_recovered(server: AsgiServer) -> None:
    """More missed than the room keeps (5): joined says recovered false, with the room's
    position, and live messages go on from there."""
    async with dial(server) as alice, dial(server) as bob:
        await welcomed(alice), await welcomed(bob)
        await alice.ask(t="join", room="h.long", ref="1")
        await bob.ask(t="join", room="h.long", ref="1")
        await alice.send(t="send", room="h.long", data="seen", ref="s")
        (seen,) = await bob.msgs(1)
        await bob.ask(t="leave", room="h.long", ref="2")
        for n in range(HISTORY["h.*"]["size"] + 2):
            await alice.send(t="send", room="h.long", data=f"gone {n}", ref=n)
        last = (await alice.msgs(HISTORY["h.*"]["size"] + 3))[-1]
        since = {"offset": seen["offset"], "epoch": seen["epoch"]}
        await bob.send(t="join", room="h.long", since=since, ref="3")
        while (frame := await bob.next())["t"] != "joined":
            assert frame["t"] == "msg"  # whatever is still kept may come first
        assert frame["recovered"] is False
        assert (frame["offset"], frame["epoch"]) == (last["offset"], last["epoch"])
        await alice.send(t="send", room="h.long", data="live", ref="l")
        (live,) = await bob.msgs(1)
        assert (live["data"], live["offset"]) == ("live", last["offset"] + 1)


async def test_leave_left_and_a_server_side_leave(server: AsgiServer) -> None:
    async with dial(server) as alice:
        await welcomed(alice)
        await alice.ask(t="join", room="a", ref="1")
        await alice.ask(t="join", room="b", ref="2")
        assert await alice.ask(t="leave", room="a", ref="3") == {
            "t": "left",
            "room": "a",
            "ref": "3",
        }
        await alice.ws.send("kick:b")  # the app takes the client out
        assert await alice.next() == {"t": "left", "room": "b", "ref": None}
        await alice.send(t="send", room="b", data="x", ref="4")
        error = await alice.next()
        assert (error["t"], error["code"], error["ref"]) == ("error", "not_in_room", "4")


async def test_errors_never_end_the_connection(server: AsgiServer) -> None:
    async with dial(server) as alice:
        await welcomed(alice)
        await alice.ask(t="join", room="a", ref="1")
        for frame, code in [
            ({"t": "join", "room": "a", "ref": "2"}, "already_in_room"),
            ({"t": "join", "room": "x" * 300, "ref": "3"}, "invalid_name"),
            ({"t": "join", "room": "a", "since": "yesterday", "ref": "4"}, "bad_frame"),
            ({"t": "wave", "ref": "5"}, "bad_frame"),
            ({"t": "send", "room": "a", "ref": "6"}, "bad_frame"),
            ({"t": "leave", "room": "zz", "ref": "7"}, "not_in_room"),
        ]:
            error = await alice.ask(**frame)
            assert (error["t"], error["code"], error["ref"]) == ("error", code, frame["ref"])
            assert error["message"]
        assert await alice.ask(t="leave", room="a", ref="8") == {
            "t": "left",
            "room": "a",
            "ref": "8",
        }


async def test_app_frames_pass_unchanged_both_ways(server: AsgiServer) -> None:
    async with dial(server) as alice:
        await welcomed(alice)
        for text in ('{"type":"mine","n":1}', "not json", '["t"]'):
            await alice.ws.send(text)
            assert await alice.next() == "app:" + text
        await alice.ws.send(b"\x00\x01")
        assert await alice.next() == "app:\x00\x01"


async def test_presence_frames_for_rooms_that_announce(server: AsgiServer) -> None:
    async with dial(server) as alice, dial(server) as bob:
        await welcomed(alice)
        bob_id = (await welcomed(bob))["client"]
        await alice.ask(t="join", room="p.room", ref="1")
        await bob.ask(t="join", room="p.room", ref="1")
        event = await alice.next()
        assert event["t"] == "presence" and event["room"] == "p.room"
        assert (event["event"], event["client"]) == ("joined", bob_id)
        await bob.ask(t="leave", room="p.room", ref="2")
        assert (await alice.next())["event"] == "left"


async def test_pings_keep_an_answering_client_and_close_a_silent_one(server: AsgiServer) -> None:
    """Both get pings; the one that answers stays past many intervals, the other is
    closed with 1011 (4011 under daphne)."""
    async with dial(server) as talker, dial(server) as mute:
        await welcomed(talker), await welcomed(mute)
        mute.answer_pings = False
        talking = asyncio.create_task(talker.next(timeout=scaled(60)))  # answers pings
        muted = asyncio.create_task(mute.next(timeout=scaled(60)))  # reads, never answers
        # The close frame is what counts (daphne may hold the TCP connection after it).
        deadline = asyncio.get_running_loop().time() + scaled(6) * PING
        while mute.ws.protocol.close_rcvd is None:
            assert asyncio.get_running_loop().time() < deadline, "the silent client is open"
            await asyncio.sleep(0.02)
        assert mute.ws.protocol.close_rcvd.code == (4011 if server.kind == "daphne" else 1011)
        await asyncio.sleep(3 * PING)  # the talker lives on
        assert not talking.done()
        for task in (talking, muted):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        await talker.ws.send("still here?")
        assert await talker.next() == "app:still here?"


async def test_a_token_and_the_protocol_together(server: AsgiServer, proto_env: Any) -> None:
    """The token in the subprotocols, or in a first auth frame: one accept, wshub.v1
    selected, welcome before the app's hello, then the protocol works."""
    browser = Browser(server)
    token = (await browser.login("ada"))["token"]
    async with dial(server, "/ws/proto-token/", token) as ada:
        assert token not in str(ada.ws.response.headers if ada.ws.response else "")
        welcome = await welcomed(ada)
        hello = await ada.next()
        assert hello["name"] == "ada" and hello["hello"] == welcome["client"]
        assert (await ada.ask(t="join", room="h.t", ref="1"))["t"] == "joined"
    token = (await browser.login("bea"))["token"]
    async with dial(server, "/ws/proto-token/") as bea:
        await bea.send(t="auth", token=token)
        await welcomed(bea)
        assert (await bea.next())["name"] == "bea"
        assert (await bea.ask(t="join", room="h.t", ref="1"))["t"] == "joined"
        error = await bea.ask(t="auth", token=token)
        assert error["code"] == "unexpected_auth"


async def test_a_client_that_does_not_offer_the_protocol_is_plain(server: AsgiServer) -> None:
    ws = await connect(server.ws_url("/ws/proto/"), open_timeout=scaled(5))
    try:
        assert ws.subprotocol is None
        await ws.send('{"t":"join","room":"a"}')
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == 'app:{"t":"join","room":"a"}'
    finally:
        await ws.close()
