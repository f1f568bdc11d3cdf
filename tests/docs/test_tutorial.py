"""The tutorial works as written: its project serves the page, and two WebSocket
clients speaking ``wshub.js``'s protocol chat through it.

The project is built from the page's own blocks (:mod:`tests.docs.tutorial`) in a
temporary directory and served by its ``runserver`` (daphne's). The clients do
what the page's script does: offer ``wshub.v1``, join the room, send a line. Where
Chromium is installed, the page itself chats between two tabs, as the page says.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.docs.site import save_screenshot
from tests.docs.tutorial import build_project, serve
from tests.rig.browser import PageErrors, launch_browser, new_page, unavailable_reason
from tests.rig.servers import AsgiServer
from tests.rig.timing import t

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tutorial_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    project = tmp_path_factory.mktemp("tutorial-project")
    written = build_project(project)
    assert {p.relative_to(project).as_posix() for p in written} >= {
        "mysite/settings.py",
        "mysite/asgi.py",
        "mysite/urls.py",
        "chat/consumers.py",
        "chat/routing.py",
        "chat/views.py",
        "chat/templates/chat/room.html",
    }
    server = serve(project, project)
    yield server
    server.stop()


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=t(10)) as response:
        return response.status, response.read().decode()


def _frame(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next protocol frame of ``kind`` (pings and others are skipped)."""
    while True:
        frame = json.loads(ws.recv(timeout=t(5)))
        if frame.get("t") == kind:
            return frame


def _join(ws: ClientConnection, room: str) -> ClientConnection:
    assert ws.subprotocol == "wshub.v1"
    assert _frame(ws, "welcome")["v"] == 1
    ws.send(json.dumps({"t": "join", "room": room, "since": None, "ref": "j1"}))
    assert _frame(ws, "joined")["room"] == room
    return ws


def test_tutorial_page_and_client_are_served(tutorial_server: AsgiServer) -> None:
    """The room page loads wshub.js from the app's static files, which are served."""
    status, page = _get(tutorial_server.http_url + "/chat/kitchen/")
    assert status == 200 and "Room kitchen" in page
    assert "/static/wshub_channels/wshub.js" in page
    status, script = _get(tutorial_server.http_url + "/static/wshub_channels/wshub.js")
    assert status == 200 and "export function connect" in script


def test_tutorial_project_chats(tutorial_server: AsgiServer) -> None:
    """A line one tab sends reaches both tabs, trimmed; a blank line reaches nobody."""
    url = tutorial_server.ws_url("/ws/chat/")
    options: dict[str, Any] = {"subprotocols": [Subprotocol("wshub.v1")], "proxy": None}
    with (
        connect(url, open_timeout=t(10), **options) as alice,
        connect(url, open_timeout=t(10), **options) as bob,
    ):
        _join(alice, "lobby")
        _join(bob, "lobby")
        alice.send(json.dumps({"t": "send", "room": "lobby", "data": "   ", "ref": "s0"}))
        alice.send(json.dumps({"t": "send", "room": "lobby", "data": " hello bob ", "ref": "s1"}))
        for ws in (bob, alice):
            message = _frame(ws, "msg")
            assert (message["room"], message["data"]) == ("lobby", "hello bob")


def test_tutorial_page_chats_between_two_tabs(tutorial_server: AsgiServer) -> None:
    """Two tabs of the tutorial's page: a line typed in one shows in both, as text."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    line = "<b>hello</b> from tab one"
    with launch_browser() as browser:
        first = new_page(browser, tutorial_server.http_url)
        second = first.context.new_page()
        errors = [PageErrors(first), PageErrors(second)]
        missing: list[str] = []
        for tab in (first, second):
            tab.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        for tab in (first, second):
            tab.goto("/")
            tab.locator("#text:enabled").wait_for()  # the page has joined its room
        first.fill("#text", line)
        first.press("#text", "Enter")
        for name, tab in (("one", first), ("two", second)):
            tab.locator("#log li", has_text=line).wait_for()
            assert tab.locator("#log b").count() == 0  # shown as text, never as markup
            save_screenshot(tab, f"docs-tutorial-chat-tab-{name}")
        # The only thing the page asks for and does not get is the browser's favicon.
        assert {url.rsplit("/", 1)[1] for url in missing} <= {"favicon.ico"}, missing
        refused = [m for e in errors for m in e.messages if "Failed to load resource" not in m]
        assert refused == []
