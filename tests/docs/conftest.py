"""Docs tests: name the site screenshots at the end of the run."""

from __future__ import annotations

import pytest

from tests.docs import test_site_browser


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if test_site_browser.SAVED:
        terminalreporter.section("docs site screenshots")
        for path in test_site_browser.SAVED:
            terminalreporter.write_line(str(path))
