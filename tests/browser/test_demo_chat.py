"""The demo chat in headless Chromium, people as separate browser contexts, on one daphne node.

The server is the demo project as users run it (``demo_project.asgi`` on the
in-memory layer, a fresh sqlite database made with ``migrate``), with small
limits so that they can be reached: 3 people per room, 5 messages a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.chat import Crowd, crowd
from tests.rig.browser import screenshot
from tests.rig.demo import DEMO_APP, create_user, demo_env, migrate
from tests.rig.servers import AsgiServer, StartAsgiServer

pytestmark = pytest.mark.integration

ROOM_SIZE = 3
RATE = 5
LOGIN = ("ada", "a-demo-password-1")


@pytest.fixture(scope="module")
def server(
    asgi_server: StartAsgiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsgiServer]:
    db: Path = tmp_path_factory.mktemp("demo-db") / "db.sqlite3"
    env = demo_env(db, DEMO_ROOM_SIZE=str(ROOM_SIZE), DEMO_RATE=str(RATE))
    migrate(env)
    create_user(env, *LOGIN)
    started = asgi_server("daphne", DEMO_APP, env)
    yield started
    started.stop()  # not at the end of the session: later tests need the CPU


@pytest.fixture
def people(browser: Browser) -> Iterator[Crowd]:
    with crowd(browser) as gathered:
        yield gathered


def test_a_message_typed_in_one_page_appears_in_the_other(
    server: AsgiServer, people: Crowd
) -> None:
    """Two people in one room: each sees the other's line, and who is in the room."""
    alice = people.enter(server.http_url, "alice", "tea")
    bob = people.enter(server.http_url, "bob", "tea")
    expect(alice.person_listed("bob")).to_be_visible()
    expect(bob.person_listed("alice")).to_be_visible()
    expect(alice.page.locator("#messages")).to_contain_text("bob joined #tea")

    alice.say("hello bob")
    expect(bob.messages.last).to_have_text(re.compile(r"alice\s*hello bob"))
    bob.say("hi alice")
    expect(alice.messages.last).to_have_text(re.compile(r"bob\s*hi alice"))
    expect(alice.messages).to_have_count(2)

    screenshot(alice.page, "chat-alice")
    screenshot(bob.page, "chat-bob")
    people.leave(bob)
    expect(alice.person_listed("bob")).to_have_count(0)
    expect(alice.page.locator("#messages")).to_contain_text("bob left #tea")
    assert alice.errors.messages == []


def test_html_in_a_message_shows_as_text(server: AsgiServer, people: Crowd) -> None:
    """Markup a person types is shown literally, never parsed: no element, no script."""
    mallory = people.enter(server.http_url, "mallory", "html")
    victim = people.enter(server.http_url, "victim", "html")
    payload = '<img src=x onerror="window.pwned=1"><b>bold</b><script>window.pwned=2</script>'
    mallory.say(payload)
    line = victim.messages.last
    expect(line.locator(".text")).to_have_text(payload)
    assert line.locator("img, b, script").count() == 0
    assert victim.page.evaluate("window.pwned") is None
    # A nickname with markup is text too.
    sly = people.enter(server.http_url, "<i>sly</i>", "html")
    sly.say("hi")
    expect(victim.messages.last.locator(".from")).to_have_text("<i>sly</i>")
    assert victim.page.locator("#messages i, #people i").count() == 0
    screenshot(victim.page, "markup-as-text")


def test_a_direct_message_reaches_every_tab_of_its_target_and_no_one_else(
    server: AsgiServer, people: Crowd
) -> None:
    alice = people.enter(server.http_url, "alice", "dm")
    bob = people.enter(server.http_url, "bob", "dm")
    bob_tab2 = bob.open_tab("dm-other")
    carol = people.enter(server.http_url, "carol", "elsewhere")

    alice.write_to("bob", "psst, bob")
    expect(bob.dms()).to_have_text([re.compile(r"alice → you\s*psst, bob")])
    expect(bob.dms(bob_tab2)).to_have_text([re.compile(r"alice → you\s*psst, bob")])
    expect(alice.dms()).to_have_text([re.compile(r"you → bob\s*psst, bob")])
    # Carol and the room see nothing of it (a later DM to carol proves hers arrived in time).
    bob.write_to("carol", "ping")
    expect(carol.dms()).to_have_text([re.compile(r"bob → you\s*ping")])
    expect(alice.messages).to_have_count(0)

    screenshot(bob_tab2, "dm-bob-second-tab")

    alice.write_to("nobody-here", "hello?")
    expect(alice.notice).to_contain_text("Nobody called 'nobody-here' is connected")


def test_room_counts_update_live(server: AsgiServer, people: Crowd) -> None:
    """Counts in the room list follow joins and leaves, in every page, without a reload."""
    alice = people.enter(server.http_url, "alice", "counts")
    expect(alice.count_of("counts")).to_have_text("1")
    bob = people.enter(server.http_url, "bob", "counts")
    expect(alice.count_of("counts")).to_have_text("2")
    expect(bob.count_of("counts")).to_have_text("2")

    bob.join("garden")  # a new room appears in everyone's list
    expect(bob.tab_of("garden")).to_be_visible()
    expect(alice.count_of("garden")).to_have_text("1")
    bob.tab_of("counts").locator(".leave").click()
    expect(alice.count_of("counts")).to_have_text("1")
    people.leave(bob)
    expect(alice.page.locator('#rooms li[data-room="garden"]')).to_have_count(0)


def test_a_rate_limit_rejection_is_shown(server: AsgiServer, people: Crowd) -> None:
    hasty = people.enter(server.http_url, "hasty", "fast")
    reader = people.enter(server.http_url, "reader", "fast")
    hasty.page.evaluate(
        """() => { for (let i = 0; i < 20; i++) {
            document.getElementById("say-input").value = "burst " + i;
            document.getElementById("say").requestSubmit(); } }"""
    )
    expect(hasty.notice).to_be_visible()
    expect(hasty.notice).to_contain_text(f"Slow down: at most {RATE} messages a second")
    expect(hasty.notice).to_have_attribute("data-code", "rate_limited")
    expect(reader.messages.first).to_contain_text("burst 0")
    assert reader.messages.count() < 20
    screenshot(hasty.page, "rate-limited")


def test_a_full_room_is_refused_with_a_message(server: AsgiServer, people: Crowd) -> None:
    for nick in ("p1", "p2", "p3"):
        people.enter(server.http_url, nick, "small")
    late = people.enter(server.http_url, "late", "lobby")
    late.join("small")
    expect(late.notice).to_contain_text("Room 'small' is full")
    expect(late.tab_of("small")).to_have_count(0)


def test_a_nickname_in_use_is_refused(server: AsgiServer, people: Crowd) -> None:
    """Someone else connected holds the nickname: the form says so; the same person's
    tabs share theirs."""
    people.enter(server.http_url, "unique", "lobby")
    rival = people.arrive(server.http_url)
    rival.pick_nickname("unique")
    expect(rival.page.locator("#nick-error")).to_have_text(
        "The nickname 'unique' is in use by someone else."
    )
    rival.nick = "unique2"
    rival.pick_nickname("unique2")
    rival.wait_connected()


def test_the_members_room_needs_a_login_and_shows_the_name(
    server: AsgiServer, people: Crowd
) -> None:
    guest = people.enter(server.http_url, "guest", "lobby")
    guest.join("members")
    expect(guest.notice).to_contain_text("Room 'members' is for logged-in people: log in first.")
    expect(guest.notice).to_have_attribute("data-code", "unauthorized")  # the protocol's code

    member = people.enter(server.http_url, "adal", "lobby")
    member.page.click("#login-link")
    member.page.fill("#id_username", LOGIN[0])
    member.page.fill("#id_password", LOGIN[1])
    member.page.click("#login-submit")
    member.wait_connected()
    expect(member.page.locator("#my-login")).to_have_text(LOGIN[0])
    expect(member.tab_of("members")).to_be_visible()  # the login lands in the members room
    member.say("only members read this")
    expect(member.messages.last.locator(".from")).to_have_text(f"{LOGIN[0]} (adal)")
    expect(guest.count_of("members")).to_have_text("1")
    screenshot(member.page, "members-room")
