"""Token auth through real daphne and uvicorn processes and a real WebSocket client.

The server (``tests/apps/auth_app.py``) logs users in over HTTP with a cookie
session and hands out tokens bound to it; the client sends them back in the
subprotocols or in a first frame, with no cookie. Refusals must reach the
client as close codes (4401, 4419), not as a bare 403, and a refused client
is never counted.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.rig.servers import AsgiServer, StartAsgiServer, manage
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.auth_app:application"


@pytest.fixture(scope="module")
def auth_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db: Path = tmp_path_factory.mktemp("token-db") / "db.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.auth_settings",
        "WSHUB_AUTH_DB": str(db),
        "WSHUB_TEST_SETTINGS": json.dumps({"METRICS": "wshub_channels.metrics.DebugMetrics"}),
    }
    done = manage(env, "migrate", "--noinput", "--skip-checks")
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(
    request: pytest.FixtureRequest, asgi_server: StartAsgiServer, auth_env: dict[str, str]
) -> Iterator[AsgiServer]:
    srv = asgi_server(request.param, APP, auth_env)
    yield srv
    srv.stop()


class Browser:
    """The app's own HTTP side, with its session cookie (the WebSocket gets no cookie)."""

    def __init__(self, server: AsgiServer) -> None:
        self.base = server.http_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    async def post(self, path: str) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            req = urllib.request.Request(self.base + path, data=b"", method="POST")
            with self.opener.open(req, timeout=scaled(10)) as response:
                return dict(json.loads(response.read()))

        return await asyncio.to_thread(call)

    async def login(self, user: str, max_age: int = 300) -> dict[str, Any]:
        return await self.post(f"/login/?user={user}&max_age={max_age}")


async def dial(server: AsgiServer, path: str, token: str | None = None) -> ClientConnection:
    offered = ["wshub.v1"] + ([f"wshub.token.{token}"] if token else [])
    return await connect(server.ws_url(path), subprotocols=offered, open_timeout=scaled(5))  # type: ignore[list-item]


async def hello(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), scaled(5))))


async def close_code(ws: ClientConnection) -> int | None:
    """The code the server closed with, once it closed (no frame may come first)."""
    with pytest.raises(ConnectionClosed):
        frame = await asyncio.wait_for(ws.recv(), scaled(10))
        pytest.fail(f"a refused client got a frame: {frame!r}")
    return ws.close_code


async def stats(server: AsgiServer, browser: Browser) -> dict[str, Any]:
    """Counts as an admitted observer sees them (itself included)."""
    ws = await dial(server, "/ws/header/", (await browser.login("observer"))["token"])
    await hello(ws)
    await ws.send("stats")
    found = dict(json.loads(await asyncio.wait_for(ws.recv(), scaled(5))))
    await ws.close()
    return found


async def test_a_header_token_admits_without_a_cookie(server: AsgiServer) -> None:
    """The server selects wshub.v1, never echoes the token; the hub knows the user."""
    token = (await Browser(server).login("ada"))["token"]
    ws = await dial(server, "/ws/header/", token)
    assert ws.subprotocol == "wshub.v1"
    assert ws.response is not None
    assert token not in str(ws.response.headers)
    greeting = await hello(ws)
    assert greeting["name"] == "ada" and greeting["user"]
    await ws.send("hi")
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == f"{greeting['user']}:hi"
    await ws.close()


async def test_a_first_message_token_admits(server: AsgiServer) -> None:
    token = (await Browser(server).login("bob"))["token"]
    ws = await dial(server, "/ws/token/")
    assert ws.subprotocol == "wshub.v1"
    await ws.send(json.dumps({"t": "auth", "token": token}))
    await ws.send("right after")
    greeting = await hello(ws)
    assert greeting["name"] == "bob"
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == f"{greeting['user']}:right after"
    await ws.close()


async def test_refusals_are_told_apart_by_close_code_and_never_counted(
    server: AsgiServer,
) -> None:
    """Expired: 4419; forged, missing, replayed after logout or a password change: 4401.
    On both paths; none of them takes a slot or shows in a count."""
    browser = Browser(server)
    before = await stats(server, browser)
    short = await browser.login("cat", max_age=1)
    forged = short["token"][:-4] + ("AAAA" if not short["token"].endswith("AAAA") else "BBBB")
    await asyncio.sleep(max(0.0, short["expires"] - time.time()) + 0.05)  # past its expiry
    assert await close_code(await dial(server, "/ws/header/", short["token"])) == 4419
    assert await close_code(await dial(server, "/ws/header/", forged)) == 4401
    assert await close_code(await dial(server, "/ws/header/")) == 4401
    ws = await dial(server, "/ws/token/")
    await ws.send(json.dumps({"t": "auth", "token": short["token"]}))
    assert await close_code(ws) == 4419
    ws = await dial(server, "/ws/token/")
    await ws.send(json.dumps({"t": "auth", "token": forged}))
    assert await close_code(ws) == 4401

    replayed = (await browser.login("cat"))["token"]
    ws = await dial(server, "/ws/header/", replayed)
    await hello(ws)
    await ws.close()
    await browser.post("/logout/")
    assert await close_code(await dial(server, "/ws/header/", replayed)) == 4401
    ws = await dial(server, "/ws/token/")
    await ws.send(json.dumps({"t": "auth", "token": replayed}))
    assert await close_code(ws) == 4401

    changed = (await browser.login("dan"))["token"]
    await browser.post("/password/?user=dan")
    assert await close_code(await dial(server, "/ws/header/", changed)) == 4401

    after = await stats(server, browser)
    assert after["clients"] == 1  # the observer alone
    admitted = after["connections_total"] - before["connections_total"]
    assert admitted == 2  # the replayed token's first use, and this observer
    refused = {
        k: after.get(k, 0) - before.get(k, 0) for k in after if k.startswith("refused_Token")
    }
    assert refused == {
        "refused_TokenExpired": 2,
        "refused_TokenInvalid": 2,
        "refused_TokenMissing": 1,
        "refused_TokenRevoked": 3,
    }
