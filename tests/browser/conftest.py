"""Browser fixtures: ``browser`` (headless Chromium) and where screenshots go.

``browser`` is module-scoped: while playwright's sync API is alive it marks
an event loop as running in this thread, so it must not outlive the sync
tests of one module (see ``tests/rig/browser.py``). It skips, naming what is
missing, where Chromium or playwright cannot be had. Screenshots
(``tests.rig.browser.screenshot``) go to ``artifacts/`` in pytest's temporary
directory, or to ``WSHUB_TEST_ARTIFACTS``; the path is printed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.rig import browser as rig

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's screenshots are saved."""
    rig.set_artifacts_dir(tmp_path_factory.getbasetemp() / "artifacts")
    return rig.artifacts_dir()


@pytest.fixture(scope="module")
def browser(artifacts_dir: Path) -> Iterator[Browser]:
    """Headless Chromium (Debian's), or a skip that says what is missing."""
    reason = rig.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with rig.launch_browser() as launched:
        yield launched


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shots = rig.saved_screenshots()
    if shots:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(shots)} saved in {shots[0].parent}")
        for path in shots:
            terminalreporter.write_line(f"  {path.name}")
