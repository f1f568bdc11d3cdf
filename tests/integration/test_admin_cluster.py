"""The admin pages from a plain WSGI process, listing and acting on a 2-node Redis cluster.

Two server processes (daphne, uvicorn) host the clients; a third process
serves only the Django admin with wsgiref on a file database, its hub in
publisher mode on the same bus. Users: ``boss`` (staff, view and change),
``viewer`` (staff, view only), ``plain`` (not staff).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.rig.admin import AdminServer, start_admin_server
from tests.rig.redis_cluster import RedisCluster
from tests.rig.servers import AsgiServer, StartAsgiServer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
CONNECTIONS = "/admin/wshub_channels/connection/"
HISTORY = {"blue": {"size": 50}}


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def bus(request: pytest.FixtureRequest) -> Bus:
    """One Redis, then a Redis Cluster (3 masters, 3 replicas)."""
    if request.param == "redis-cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return Bus("redis-cluster", "redis", (cluster.url,))
    return Bus("redis", "redis", (request.getfixturevalue("redis_url"),))


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"ad{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def nodes(asgi_server: StartAsgiServer, bus: Bus, prefix: str) -> Iterator[list[AsgiServer]]:
    servers = [
        asgi_server(kind, APP, node_env(bus, prefix, i, HISTORY=HISTORY))  # type: ignore[arg-type]
        for i, kind in enumerate(("daphne", "uvicorn"))
    ]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def admin_server(
    bus: Bus, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminServer]:
    env = node_env(bus, prefix, HISTORY=HISTORY)
    with start_admin_server(env, tmp_path_factory.mktemp("admin")) as server:
        yield server


class Browser:
    """An HTTP client with cookies that logs in to the admin like a person would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: list[tuple[str, str]]) -> tuple[int, str]:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        body = urllib.parse.urlencode([("csrfmiddlewaretoken", token), *fields]).encode()
        headers = {"Referer": self.base + path, "Content-Type": "application/x-www-form-urlencoded"}
        return self._open(urllib.request.Request(self.base + path, body, headers))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=scaled(20)) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def login(self, user: str) -> str:
        self.get("/admin/login/")
        _, page = self.post(
            "/admin/login/?next=/admin/",
            [("username", user), ("password", "pw"), ("next", "/admin/")],
        )
        return page


@pytest.fixture
async def crowd(nodes: list[AsgiServer]) -> AsyncIterator[list[Peer]]:
    """Two clients on each node: user a0/a1 in room ``blue`` on node 0, b0/b1 on node 1."""
    peers = []
    for node, server in enumerate(nodes):
        for i in range(2):
            user = f"{'ab'[node]}{i}"
            url = server.ws_url("/ws/control/") + f"?user={user}&rooms=blue,n{node}"
            peers.append(await Peer.open(url))
    yield peers
    for peer in peers:
        await peer.close()


def cells(page: str, css_class: str) -> list[str]:
    return re.findall(rf'<td class="{css_class}">([^<]*)</td>', page)


async def test_staff_see_both_nodes_and_disconnect_exactly_the_selected(
    admin_server: AdminServer, crowd: list[Peer]
) -> None:
    boss = Browser(admin_server.url)
    assert "Log out" in boss.login("boss") or "logout" in boss.login("boss")
    status, page = await asyncio.to_thread(boss.get, CONNECTIONS)
    assert status == 200, page[-2000:]
    listed = set(cells(page, "client-id"))
    assert {p.id for p in crowd} <= listed
    assert len({p.id.rsplit("!", 1)[0] for p in crowd}) == 2  # two nodes
    for peer in crowd:
        assert peer.id in page
    _, by_room = await asyncio.to_thread(boss.get, CONNECTIONS + "?q=n1&by=room")
    assert set(cells(by_room, "client-id")) == {p.id for p in crowd[2:]}
    _, by_user = await asyncio.to_thread(boss.get, CONNECTIONS + "?q=a1&by=user")
    assert set(cells(by_user, "client-id")) == {crowd[1].id}

    chosen = [crowd[0], crowd[3]]  # one on each node
    fields = [("action", "disconnect"), *(("ids", p.id) for p in chosen)]
    status, after = await asyncio.to_thread(boss.post, CONNECTIONS, fields)
    assert status == 200 and "disconnected 2 of 2" in after.lower()
    for peer in chosen:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(peer.ws.recv(), scaled(5))
    for peer in (crowd[1], crowd[2]):
        assert await peer.call("json") is not None  # still open and served

    status, rooms = await asyncio.to_thread(boss.get, "/admin/wshub_channels/room/")
    assert status == 200 and "blue" in rooms
    status, nodes_page = await asyncio.to_thread(boss.get, "/admin/wshub_channels/node/")
    assert status == 200 and len(re.findall(r'<tr class="node">', nodes_page)) == 2


async def test_the_send_form_reaches_a_room_on_both_nodes(
    admin_server: AdminServer, crowd: list[Peer]
) -> None:
    boss = Browser(admin_server.url)
    boss.login("boss")
    await asyncio.to_thread(boss.get, CONNECTIONS)
    fields = [("action", "send"), ("kind", "room"), ("target", "blue"), ("text", "from admin")]
    status, page = await asyncio.to_thread(boss.post, CONNECTIONS, fields)
    assert status == 200 and "sent to room" in page.lower()
    for peer in crowd:
        assert await peer.next() == "from admin"


async def test_non_staff_are_refused_and_viewers_may_not_act(
    admin_server: AdminServer, crowd: list[Peer]
) -> None:
    plain = Browser(admin_server.url)
    plain.login("plain")
    status, page = await asyncio.to_thread(plain.get, CONNECTIONS)
    assert crowd[0].id not in page and "login" in page.lower()  # sent back to the login form
    viewer = Browser(admin_server.url)
    viewer.login("viewer")
    status, page = await asyncio.to_thread(viewer.get, CONNECTIONS)
    assert status == 200 and crowd[0].id in page
    assert "Disconnect selected" not in page
    status, _ = await asyncio.to_thread(
        viewer.post, CONNECTIONS, [("action", "disconnect"), ("ids", crowd[0].id)]
    )
    assert status == 403
    assert await crowd[0].call("json") is not None  # not disconnected


def test_the_wsgi_process_logged_no_traceback(admin_server: AdminServer) -> None:
    out = subprocess.run(
        ["grep", "-c", "Traceback", str(admin_server.log)], capture_output=True, text=True
    )
    assert out.stdout.strip() == "0", admin_server.log.read_text()[-3000:]


async def test_the_rooms_page_shows_a_history_rooms_position(
    admin_server: AdminServer, crowd: list[Peer]
) -> None:
    for n in range(3):
        await crowd[0].call("broadcast_to_room", room="blue", text=f"h{n}")
    position = (await crowd[2].call("history", room="blue", limit=0))["position"]
    viewer = Browser(admin_server.url)
    viewer.login("viewer")
    status, rooms = await asyncio.to_thread(viewer.get, "/admin/wshub_channels/room/?q=blue")
    assert status == 200, rooms[-2000:]
    assert cells(rooms, "history") == [f"offset {position[0]}, epoch {position[1]}"]
    _, others = await asyncio.to_thread(viewer.get, "/admin/wshub_channels/room/?q=n0")
    assert cells(others, "history") == ["-"]
