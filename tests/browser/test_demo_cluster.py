"""The demo chat as a two-node cluster on Redis: each person's page on a different node.

Node 1 is daphne, node 2 uvicorn, both serving ``demo_project.asgi`` with
``WSHUB_LAYER=redis`` and one sqlite database. Messages, direct messages,
presence events and nickname checks cross nodes at once; room counts from the
other node arrive with its heartbeat, so they may lag by one presence interval.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.chat import Crowd, crowd
from tests.integration.buses import INTERVAL
from tests.rig.browser import screenshot
from tests.rig.demo import DEMO_APP, demo_env, migrate
from tests.rig.servers import AsgiServer, StartAsgiServer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes(
    asgi_server: StartAsgiServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[AsgiServer]]:
    db: Path = tmp_path_factory.mktemp("demo-cluster-db") / "db.sqlite3"
    env = demo_env(
        db,
        WSHUB_LAYER="redis",
        REDIS_URL=redis_url,
        WSHUB_PREFIX=f"demo{uuid.uuid4().hex[:8]}",
        WSHUB_PRESENCE_INTERVAL=str(scaled(INTERVAL)),
    )
    migrate(env)
    started = [asgi_server("daphne", DEMO_APP, env), asgi_server("uvicorn", DEMO_APP, env)]
    yield started
    for node in started:
        node.stop()  # not at the end of the session: later tests need the CPU


@pytest.fixture
def people(browser: Browser) -> Iterator[Crowd]:
    with crowd(browser) as gathered:
        yield gathered


def test_two_people_on_two_nodes_share_a_room(nodes: list[AsgiServer], people: Crowd) -> None:
    one, two = nodes
    alice = people.enter(one.http_url, "alice", "harbour")

    # The nickname is taken cluster-wide: refused on the other node too.
    rival = people.arrive(two.http_url)
    rival.pick_nickname("alice", "harbour")
    expect(rival.page.locator("#nick-error")).to_contain_text("is in use by someone else")
    people.leave(rival)

    bob = people.enter(two.http_url, "bob", "harbour")
    node_of = re.compile(r"to node (\S+)")
    nodes_seen = {
        node_of.search(person.status.inner_text()).group(1)  # type: ignore[union-attr]
        for person in (alice, bob)
    }
    assert len(nodes_seen) == 2, nodes_seen

    # Presence events and "who is here" cross nodes at once.
    expect(alice.page.locator("#messages")).to_contain_text("bob joined #harbour")
    expect(alice.person_listed("bob")).to_be_visible()
    expect(bob.person_listed("alice")).to_be_visible()

    alice.say("hello from node one")
    expect(bob.messages.last).to_have_text(re.compile(r"alice\s*hello from node one"))
    bob.say("hello from node two")
    expect(alice.messages.last).to_have_text(re.compile(r"bob\s*hello from node two"))

    bob.write_to("alice", "a word across nodes")
    expect(alice.dms()).to_have_text([re.compile(r"bob → you\s*a word across nodes")])

    # Counts include the other node's member within a presence interval or so.
    expect(alice.count_of("harbour")).to_have_text("2")
    expect(bob.count_of("harbour")).to_have_text("2")
    screenshot(alice.page, "cluster-node1-alice")
    screenshot(bob.page, "cluster-node2-bob")

    people.leave(bob)
    expect(alice.page.locator("#messages")).to_contain_text("bob left #harbour")
    expect(alice.count_of("harbour")).to_have_text("1")
    assert alice.errors.messages == []
