"""Reconnects in the demo chat, in headless Chromium: wshub.js against the real servers.

- Two nodes on Redis (daphne, uvicorn) with room history (``DEMO_HISTORY_SIZE``
  messages per room): the daphne node is restarted while two pages are open on
  it and a third person, on the other node, writes meanwhile; both pages come
  back by themselves and show what they missed, in order, once.
- A page whose network is cut (a TCP proxy between it and the server) for
  longer than the room's history keeps shows "reloaded" when it comes back.
- 100 wshub.js clients in one page (100 pages are too heavy for 2 cores),
  dropped at once by a killed server that stays down 3 s, reconnect spread
  over at least 2 s: full jitter, no thundering herd. The times are taken in
  the page, at each client's ``open``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.chat import Crowd, Person, crowd
from tests.integration.buses import INTERVAL
from tests.rig.browser import screenshot
from tests.rig.demo import DEMO_APP, demo_env, migrate
from tests.rig.proxy import TcpProxy
from tests.rig.servers import AsgiServer, StartAsgiServer, restart_asgi_server
from tests.rig.timing import t
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

HISTORY_SIZE = 4
HERD = 100
DOWN = 3.0  # seconds the killed server stays down: long enough for the backoff to spread


@pytest.fixture(scope="module")
def cluster(
    asgi_server: StartAsgiServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[AsgiServer], dict[str, str]]]:
    db: Path = tmp_path_factory.mktemp("demo-recovery-db") / "db.sqlite3"
    env = demo_env(
        db,
        WSHUB_LAYER="redis",
        REDIS_URL=redis_url,
        WSHUB_PREFIX=f"rec{uuid.uuid4().hex[:8]}",
        WSHUB_PRESENCE_INTERVAL=str(scaled(INTERVAL)),
        DEMO_HISTORY_SIZE=str(HISTORY_SIZE),
        DEMO_RATE="50",
    )
    migrate(env)
    started = [asgi_server("daphne", DEMO_APP, env), asgi_server("uvicorn", DEMO_APP, env)]
    yield started, env
    for node in started:
        node.stop()  # not at the end of the session: later tests need the CPU


@pytest.fixture(scope="module")
def solo(
    asgi_server: StartAsgiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AsgiServer, dict[str, str]]]:
    db: Path = tmp_path_factory.mktemp("demo-herd-db") / "db.sqlite3"
    env = demo_env(db, DEMO_TABS=str(HERD + 20))
    migrate(env)
    started = asgi_server("daphne", DEMO_APP, env)
    yield started, env
    started.stop()


@pytest.fixture
def people(browser: Browser) -> Iterator[Crowd]:
    with crowd(browser) as gathered:
        yield gathered


def lines(person: Person) -> list[str]:
    """The chat lines the page shows in the current room, as "from text"."""
    script = """(els) => els.map((e) =>
        `${e.querySelector(".from").textContent} ${e.querySelector(".text").textContent}`)"""
    found: list[str] = person.messages.evaluate_all(script)
    return found


def test_a_restarted_server_brings_both_pages_back_with_what_they_missed(
    cluster: tuple[list[AsgiServer], dict[str, str]], people: Crowd
) -> None:
    (one, two), env = cluster
    alice = people.enter(one.http_url, "alice", "harbour")
    bob = people.enter(one.http_url, "bob", "harbour")
    carol = people.enter(two.http_url, "carol", "harbour")
    alice.say("before the restart")
    for person in (alice, bob, carol):
        expect(person.messages.last).to_have_text(re.compile(r"alice\s*before the restart"))

    def write_while_down() -> None:
        for person in (alice, bob):
            expect(person.status).to_contain_text("reconnecting")
        for n in range(3):
            carol.say(f"missed {n}")
        expect(carol.messages).to_have_count(4)

    restart_asgi_server(one, env, down_for=scaled(1), while_down=write_while_down)

    expected = ["alice before the restart", "carol missed 0", "carol missed 1", "carol missed 2"]
    for person in (alice, bob):
        person.wait_connected()
        expect(person.messages).to_have_count(4)
        assert lines(person) == expected, lines(person)
        expect(person.page.locator("#messages .reloaded")).to_have_count(0)
    screenshot(bob.page, "recovered-after-restart")
    bob.say("and live again")
    for person in (alice, carol):
        expect(person.messages.last).to_have_text(re.compile(r"bob\s*and live again"))
    assert lines(alice) == [*expected, "bob and live again"]
    for person in (alice, bob):  # Chromium logs each refused attempt while the server is down
        assert [m for m in person.errors.messages if "WebSocket connection" not in m] == []


def test_a_page_offline_past_the_history_shows_reloaded(
    cluster: tuple[list[AsgiServer], dict[str, str]], people: Crowd
) -> None:
    (one, _), _env = cluster
    with TcpProxy(one.port) as proxy:
        dora = people.enter(proxy.http_url, "dora", "pier")
        erin = people.enter(one.http_url, "erin", "pier")
        erin.say("seen by both")
        expect(dora.messages.last).to_have_text(re.compile(r"erin\s*seen by both"))
        proxy.cut()
        expect(dora.status).to_contain_text("reconnecting")
        for n in range(HISTORY_SIZE + 2):  # more than the room keeps
            erin.say(f"gone {n}")
        expect(erin.messages).to_have_count(HISTORY_SIZE + 3)
        proxy.restore()
        dora.wait_connected()
        reloaded = dora.page.locator("#messages .reloaded")
        expect(reloaded).to_have_count(1)
        expect(reloaded).to_contain_text("reloaded")
        screenshot(dora.page, "reloaded")
        erin.say("after the gap")
        expect(dora.messages.last).to_have_text(re.compile(r"erin\s*after the gap"))


HERD_SCRIPT = """async (n) => {
  const { connect } = await import("/static/wshub_channels/wshub.js");
  const url = `ws://${location.host}/ws/chat/`;
  window.herd = [];
  for (let i = 0; i < n; i++) {
    const member = { opens: [], closes: 0 };
    member.client = connect(url, {
      onOpen: () => member.opens.push(Date.now()),
      onClose: () => { member.closes += 1; },
    });
    window.herd.push(member);
  }
}"""


def test_a_hundred_clients_spread_their_reconnects_over_two_seconds(
    solo: tuple[AsgiServer, dict[str, str]], people: Crowd
) -> None:
    server, env = solo
    host = people.enter(server.http_url, "herd", "lobby")
    page = host.page
    page.evaluate(HERD_SCRIPT, HERD)
    page.wait_for_function("() => window.herd.every((m) => m.opens.length === 1)")
    restart_asgi_server(server, env, down_for=DOWN, kill=True)
    page.wait_for_function(
        "() => window.herd.every((m) => m.opens.length >= 2)", timeout=t(60) * 1000
    )
    times = page.evaluate("() => window.herd.map((m) => m.opens[1])")
    spread = (max(times) - min(times)) / 1000
    ordered = sorted((x - min(times)) / 1000 for x in times)
    quartiles = [round(ordered[int(q * (len(ordered) - 1))], 2) for q in (0, 0.25, 0.5, 0.75, 1)]
    print(f"{HERD} reconnects after {DOWN} s down: spread {spread:.2f} s, quartiles {quartiles}")
    assert spread >= 2.0, quartiles
    page.evaluate("() => window.herd.forEach((m) => m.client.close())")
    host.wait_connected()  # the page's own connection came back too
