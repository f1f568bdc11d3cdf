"""The browser rig says what is missing instead of failing, and keeps screenshots apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig import browser


def test_a_missing_chromium_is_named_in_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(browser.CHROMIUM_ENV, str(tmp_path / "no-chromium-here"))
    assert browser.find_chromium() is None
    reason = browser.unavailable_reason()
    assert reason is not None
    assert "Chromium not found" in reason and "apt-get install chromium" in reason
    with pytest.raises(RuntimeError, match="Chromium not found"), browser.launch_browser():
        pass


def test_artifacts_go_where_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(browser.ARTIFACTS_ENV, str(tmp_path / "shots"))
    assert browser.artifacts_dir() == tmp_path / "shots"
    assert (tmp_path / "shots").is_dir()
