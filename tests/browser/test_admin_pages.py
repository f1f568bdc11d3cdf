"""The admin's Connections, Rooms and Nodes pages in headless Chromium, with screenshots.

Two hub nodes (daphne, uvicorn) on Redis hold six clients; the admin is a
plain WSGI process on the same bus. A staff user logs in and opens the three
pages; each shows what the cluster holds, and is saved as a screenshot.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.sync.client import connect

from tests.integration.buses import Bus, node_env
from tests.rig.admin import AdminServer, start_admin_server
from tests.rig.browser import new_page, screenshot
from tests.rig.servers import AsgiServer, StartAsgiServer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"


@pytest.fixture(scope="module")
def cluster(
    asgi_server: StartAsgiServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[AsgiServer], AdminServer]]:
    bus = Bus("redis", "redis", (redis_url,))
    prefix = f"ab{uuid.uuid4().hex[:8]}"
    nodes = [
        asgi_server(kind, APP, node_env(bus, prefix, i))  # type: ignore[arg-type]
        for i, kind in enumerate(("daphne", "uvicorn"))
    ]
    try:
        with start_admin_server(node_env(bus, prefix), tmp_path_factory.mktemp("ab")) as admin:
            yield nodes, admin
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def clients(cluster: tuple[list[AsgiServer], AdminServer]) -> Iterator[list[str]]:
    """Six clients: users ann, bo and cy, in rooms lobby and team-<node>."""
    nodes, _ = cluster
    ids = []
    with contextlib.ExitStack() as stack:
        for i in range(6):
            user = ("ann", "bo", "cy")[i % 3]
            url = nodes[i % 2].ws_url("/ws/control/") + f"?user={user}&rooms=lobby,team-{i % 2}"
            ws = stack.enter_context(connect(url, open_timeout=scaled(5)))
            ids.append(json.loads(ws.recv(timeout=scaled(5)))["hello"])
        yield ids


def logged_in(browser: Browser, admin: AdminServer) -> Page:
    page = new_page(browser, admin.url)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    return page


def test_the_three_admin_pages_show_the_cluster(
    browser: Browser, cluster: tuple[list[AsgiServer], AdminServer], clients: list[str]
) -> None:
    _, admin = cluster
    page = logged_in(browser, admin)
    expect(page.get_by_role("link", name="Connections")).to_be_visible()

    page.goto("/admin/wshub_channels/connection/")
    rows = page.locator("tr.connection")
    expect(rows).to_have_count(6)
    for client_id in clients:
        expect(page.locator("td.client-id", has_text=client_id)).to_have_count(1)
    screenshot(page, "admin-connections")

    page.goto("/admin/wshub_channels/connection/?q=team-1&by=room")
    expect(page.locator("tr.connection")).to_have_count(3)

    page.goto("/admin/wshub_channels/room/")
    lobby = page.locator("tr.room", has_text="lobby")
    expect(lobby).to_contain_text("6")
    expect(page.locator("tr.room")).to_have_count(3)
    screenshot(page, "admin-rooms")

    page.goto("/admin/wshub_channels/node/")
    expect(page.locator("tr.node")).to_have_count(2)
    expect(page.locator("#content-main")).to_contain_text("connected")
    screenshot(page, "admin-nodes")
