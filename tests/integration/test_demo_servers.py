"""The demo project serves under the three ways the README runs it: ``manage.py runserver``
(daphne's), ``daphne`` and ``uvicorn``.

Each run plays a person without a browser: the page, the probes, the admin,
picking a nickname (a form with its CSRF token, kept in the session cookie), then
the chat WebSocket with that cookie, speaking client protocol v1 as the page's
wshub.js does: hello, the room list, join, who, send, and a refused join of
the members room.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from tests.rig.demo import DEMO_APP, demo_env, migrate, start_runserver
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import t

pytestmark = pytest.mark.integration

KINDS = ("runserver", "daphne", "uvicorn")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db: Path = tmp_path_factory.mktemp("demo-servers-db") / "db.sqlite3"
    env = demo_env(db)
    migrate(env)
    return env


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    env: dict[str, str],
    asgi_server: StartAsgiServer,
    tmp_path: Path,
) -> Iterator[AsgiServer]:
    if request.param == "runserver":
        started = start_runserver(env, tmp_path)
    else:
        started = asgi_server(request.param, DEMO_APP, env)
    yield started
    started.stop()


class Browserless:
    """An HTTP client with a cookie jar and no proxies: loopback only."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=t(10)) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")})
        request = urllib.request.Request(
            self.base + path, data=data.encode(), headers={"Referer": self.base + "/"}
        )
        try:
            with self.opener.open(request, timeout=t(10)) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name and c.value is not None)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def frames(ws: ClientConnection) -> list[dict[str, Any]]:
    """The objects of the next text frame, as the page sees them: a ``msg`` frame's data
    is the chat's own object; pings are answered."""
    found = []
    for line in str(ws.recv(timeout=t(10))).split("\n"):
        obj = json.loads(line)
        if obj.get("t") == "ping":
            ws.send('{"t":"pong"}')
        elif obj.get("t") == "msg":
            found.append(json.loads(obj["data"]))
        else:
            found.append(obj)
    return found


def receive(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next object whose "type" (the chat's) or "t" (the protocol's) is ``kind``
    (others, like room lists and presence, are skipped)."""
    while True:
        for msg in frames(ws):
            if msg.get("type", msg.get("t")) == kind:
                return msg


@pytest.mark.parametrize("server", KINDS, indirect=True)
def test_the_demo_serves_pages_probes_and_the_chat(server: AsgiServer) -> None:
    person = Browserless(server.http_url)
    status, page = person.get("/")
    assert status == 200 and 'id="nick-form"' in page
    for probe in ("/healthz", "/readyz"):
        assert person.get(probe)[0] == 200
    assert "python_info" in person.get("/metrics")[1]
    assert person.get("/admin/login/")[0] == 200
    assert person.get("/static/chat/chat.js")[0] == 200

    nick = f"tester-{uuid.uuid4().hex[:6]}"
    status, page = person.post("/nickname", {"nick": nick, "room": "lobby"})
    assert status == 200 and 'id="chat"' in page  # redirected to the chat page

    with chat_socket(server, person) as ws:
        hello = receive(ws, "hello")
        assert hello["nick"] == nick
        assert {"lobby", "members", "random"} <= {r["name"] for r in receive(ws, "rooms")["rooms"]}
        ws.send(json.dumps({"t": "join", "room": "lobby", "since": None, "ref": "1"}))
        assert receive(ws, "joined")["ref"] == "1"
        ws.send(json.dumps({"type": "who", "room": "lobby"}))
        assert [m["nick"] for m in receive(ws, "who")["members"]] == [hello["nick"]]
        ws.send(json.dumps({"t": "send", "room": "lobby", "data": "<b>hi</b>", "ref": "2"}))
        assert receive(ws, "message")["text"] == "<b>hi</b>"
        ws.send(json.dumps({"t": "join", "room": "members", "ref": "3"}))
        refused = receive(ws, "error")
        assert (refused["code"], refused["ref"]) == ("unauthorized", "3")
        metrics = person.get("/metrics")[1]
        assert "wshub_connections_active 1.0" in metrics
        assert "wshub_messages_received_total 4.0" in metrics  # join, who, send, join


def chat_socket(server: AsgiServer, person: Browserless) -> ClientConnection:
    headers = {"Cookie": person.cookie_header()}
    return connect(
        server.ws_url("/ws/chat/"),
        origin=Origin(server.http_url),
        additional_headers=headers,
        subprotocols=[Subprotocol("wshub.v1")],
        proxy=None,
    )


def with_nickname(server: AsgiServer, nick: str) -> Browserless:
    person = Browserless(server.http_url)
    person.get("/")
    status, _ = person.post("/nickname", {"nick": nick})
    assert status == 200
    return person


def closed_with(ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; return the close code and what came before it."""
    seen: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            seen.extend(frames(ws))
    return ws.close_code, seen


@pytest.mark.parametrize("server", ["uvicorn"], indirect=True)
def test_two_people_who_picked_one_nickname_at_once_the_later_connection_gives_way(
    server: AsgiServer,
) -> None:
    """Both forms passed while neither was connected; the first to connect keeps it."""
    nick = f"twin-{uuid.uuid4().hex[:6]}"
    first, second = with_nickname(server, nick), with_nickname(server, nick)
    with chat_socket(server, first) as kept:
        assert receive(kept, "hello")["nick"] == nick
        with chat_socket(server, second) as refused:
            code, seen = closed_with(refused)
        assert code == 4409
        assert [m["code"] for m in seen if m.get("type") == "error"] == ["nickname_taken"]
        kept.send(json.dumps({"t": "join", "room": "lobby", "ref": "1"}))
        assert receive(kept, "joined")["room"] == "lobby"  # the first one is unharmed


@pytest.mark.parametrize("server", ["daphne"], indirect=True)
def test_tabs_of_one_nickname_are_limited_per_node(server: AsgiServer) -> None:
    """max_connections_per_user (8): the ninth tab is closed with 1013 (4013 under daphne)."""
    person = with_nickname(server, f"tabs-{uuid.uuid4().hex[:6]}")
    with contextlib.ExitStack() as tabs:
        for _ in range(8):
            receive(tabs.enter_context(chat_socket(server, person)), "hello")
        with chat_socket(server, person) as ninth:
            code, seen = closed_with(ninth)
        assert code == 4013
        assert not [m for m in seen if m.get("type") == "hello"]


@pytest.mark.parametrize("server", ["daphne", "uvicorn"], indirect=True)
def test_a_chat_line_with_a_lone_surrogate_reaches_nobody_and_the_room_carries_on(
    server: AsgiServer,
) -> None:
    """A line holding "x\\ud800" (valid JSON UTF-8 cannot encode): its writer is told the line
    was refused, the other person in the room still gets the next line."""
    writer = with_nickname(server, f"w-{uuid.uuid4().hex[:6]}")
    reader = with_nickname(server, f"r-{uuid.uuid4().hex[:6]}")
    with chat_socket(server, writer) as ws_w, chat_socket(server, reader) as ws_r:
        for ws in (ws_w, ws_r):
            receive(ws, "hello")
            ws.send(json.dumps({"t": "join", "room": "lobby", "ref": "1"}))
            receive(ws, "joined")
        ws_w.send(json.dumps({"t": "send", "room": "lobby", "data": "x\ud800", "ref": "2"}))
        refused = receive(ws_w, "error")
        assert (refused["code"], refused["ref"]) == ("bad_frame", "2")
        ws_w.send(json.dumps({"t": "send", "room": "lobby", "data": "next", "ref": "3"}))
        assert receive(ws_r, "message")["text"] == "next"
        assert receive(ws_w, "message")["text"] == "next"
