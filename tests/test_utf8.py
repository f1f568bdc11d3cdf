"""The one strict-UTF-8 test, shared by frames and names."""

from __future__ import annotations

import pytest

from wshub_channels.utf8 import lone_surrogate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "at"),
    [("", None), ("plain", None), ("é😀", None), ("\ud800", 0), ("ok\udfffx", 2), ("😀\ud83d", 1)],
)
def test_lone_surrogate_finds_the_first_one(text: str, at: int | None) -> None:
    assert lone_surrogate(text) == at
