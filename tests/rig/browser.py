"""Headless Chromium for tests: Debian's ``chromium`` driven by the Python ``playwright`` package.

The browser is the system's (``shutil.which("chromium")``, or ``WSHUB_CHROMIUM``):
never run ``playwright install``, which downloads a browser build of its own.
Where Chromium or playwright is missing, :func:`unavailable_reason` says which,
and the ``browser`` fixture (``tests/browser/conftest.py``) skips with it.

Use::

    with launch_browser() as browser:          # or the ``browser`` fixture
        page = new_page(browser, server.http_url)
        page.goto("/")
        screenshot(page, "front")               # <artifacts>/front.png, path printed

Screenshots go to :func:`artifacts_dir`: ``WSHUB_TEST_ARTIFACTS`` when set, else
the directory the test session configured (``artifacts/`` in pytest's temporary
directory), else a fresh temporary directory. They are never committed.

This uses playwright's sync API. While a sync ``Playwright`` is alive it marks
its event loop as running in the thread that started it, so code that starts
an event loop of its own (``asyncio.run``, async tests) cannot run in that
thread meanwhile: keep a browser's lifetime within sync tests (the fixture is
module-scoped for this reason).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .timing import t

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

__all__ = [
    "ARTIFACTS_ENV",
    "CHROMIUM_ENV",
    "PageErrors",
    "artifacts_dir",
    "find_chromium",
    "launch_browser",
    "new_page",
    "saved_screenshots",
    "screenshot",
    "set_artifacts_dir",
    "unavailable_reason",
]

CHROMIUM_ENV = "WSHUB_CHROMIUM"
ARTIFACTS_ENV = "WSHUB_TEST_ARTIFACTS"
#: Arguments for Chromium in a container: tests run as root (no sandbox there) and
#: /dev/shm is often tiny.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage")

_artifacts: Path | None = None
_saved: list[Path] = []


def find_chromium() -> str | None:
    """The Chromium binary: ``WSHUB_CHROMIUM`` if set, else ``chromium`` on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium")


def unavailable_reason() -> str | None:
    """None when a browser can be launched; else a sentence naming what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        where = os.environ.get(CHROMIUM_ENV) or "chromium on PATH"
        return (
            f"Chromium not found ({where}): install Debian's package with "
            "`apt-get install chromium` (.ci/run does this when it runs as root)"
        )
    return None


@contextlib.contextmanager
def launch_browser(headless: bool = True) -> Iterator[Browser]:
    """Launch the system's Chromium; close it, and playwright, on exit."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(),
            headless=headless,
            args=list(CHROMIUM_ARGS),
            timeout=t(30) * 1000,
        )
        try:
            yield browser
        finally:
            browser.close()


class PageErrors:
    """Uncaught script errors and console errors of one page, to assert there are none."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("pageerror", lambda error: self.messages.append(f"uncaught: {error}"))
        page.on("console", self._console)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.messages.append(f"console: {msg.text}")


def new_page(
    browser: Browser,
    base_url: str | None = None,
    *,
    width: int = 1280,
    height: int = 760,
) -> Page:
    """A page in a fresh browser context (its own cookies: one person).

    ``page.goto("/x")`` is relative to ``base_url``. Waits default to 10 time
    units. Another tab of the same person: ``page.context.new_page()``;
    ``PageErrors(page)`` collects a page's script errors.
    """
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
    context.set_default_timeout(t(10) * 1000)
    return context.new_page()


def set_artifacts_dir(path: Path) -> None:
    """Where :func:`screenshot` saves from now on (unless ``WSHUB_TEST_ARTIFACTS`` is set)."""
    global _artifacts
    _artifacts = path


def artifacts_dir() -> Path:
    """The directory test artifacts (screenshots) are saved in; made on first use."""
    global _artifacts
    configured = os.environ.get(ARTIFACTS_ENV)
    if configured:
        path = Path(configured)
    else:
        if _artifacts is None:
            _artifacts = Path(tempfile.mkdtemp(prefix="wshub-artifacts-"))
        path = _artifacts
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``<artifacts>/<name>.png``, print and return its path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "page"
    path = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=full_page)
    _saved.append(path)
    print(f"screenshot saved: {path}")
    return path


def saved_screenshots() -> list[Path]:
    """Every screenshot saved in this process so far."""
    return list(_saved)
