"""Docs tests: name the site screenshots at the end of the run."""

from __future__ import annotations

import pytest

from tests.docs.site import SAVED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SAVED:
        terminalreporter.section("docs site screenshots")
        for path in SAVED:
            terminalreporter.write_line(str(path))
