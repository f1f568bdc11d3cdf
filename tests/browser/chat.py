"""The demo chat page as a person uses it: pick a nickname, join rooms, write, read.

Selectors are the page's ids (``demo_project/chat/templates/chat/index.html``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.rig.browser import PageErrors, new_page
from tests.rig.timing import t

__all__ = ["Crowd", "Person", "crowd"]

expect.set_options(timeout=t(10) * 1000)


@dataclass
class Person:
    """One person (a browser context: their own session) and their first tab."""

    nick: str
    page: Page
    errors: PageErrors = field(init=False)

    def __post_init__(self) -> None:
        self.errors = PageErrors(self.page)

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    def pick_nickname(self, nick: str, room: str = "lobby") -> None:
        self.page.goto("/?" + urlencode({"room": room}))
        self.page.fill("#nick-input", nick)
        self.page.click("#nick-form button[type=submit]")

    def wait_connected(self, page: Page | None = None) -> None:
        expect((page or self.page).locator("#status")).to_contain_text(f"connected as {self.nick}")

    def open_tab(self, room: str = "lobby") -> Page:
        """Another tab of this person (same session, so the same nickname)."""
        tab = self.context.new_page()
        tab.goto("/?" + urlencode({"room": room}))
        self.wait_connected(tab)
        return tab

    def join(self, room: str) -> None:
        self.page.fill("#new-room-name", room)
        self.page.press("#new-room-name", "Enter")

    def say(self, text: str) -> None:
        self.page.fill("#say-input", text)
        self.page.press("#say-input", "Enter")

    def write_to(self, nick: str, text: str) -> None:
        self.page.fill("#dm-to", nick)
        self.page.fill("#dm-text", text)
        self.page.press("#dm-text", "Enter")

    def tab_of(self, room: str, page: Page | None = None) -> Locator:
        return (page or self.page).locator(f'#tabs .tab[data-room="{room}"]')

    def count_of(self, room: str) -> Locator:
        return self.page.locator(f'#rooms li[data-room="{room}"] .count')

    def person_listed(self, nick: str) -> Locator:
        return self.page.locator(f'#people li[data-nick="{nick}"]')

    @property
    def messages(self) -> Locator:
        return self.page.locator("#messages .msg")

    @property
    def notice(self) -> Locator:
        return self.page.locator("#notice")

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    def dms(self, page: Page | None = None) -> Locator:
        return (page or self.page).locator("#dms .dm")


class Crowd:
    """People entering the chat on servers of one test; their contexts close at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.people: list[Person] = []

    def arrive(self, base_url: str) -> Person:
        """A new person on the site at ``base_url``, before picking a nickname."""
        person = Person("", new_page(self.browser, base_url))
        self.people.append(person)
        return person

    def enter(self, base_url: str, nick: str, room: str = "lobby") -> Person:
        """A new person, connected with ``nick`` and in ``room``."""
        person = self.arrive(base_url)
        person.nick = nick
        person.pick_nickname(nick, room)
        person.wait_connected()
        expect(person.tab_of(room)).to_be_visible()
        return person

    def leave(self, person: Person) -> None:
        person.context.close()
        self.people.remove(person)

    def close(self) -> None:
        for person in self.people:
            person.context.close()
        self.people.clear()


@contextmanager
def crowd(browser: Browser) -> Iterator[Crowd]:
    people = Crowd(browser)
    try:
        yield people
    finally:
        people.close()
