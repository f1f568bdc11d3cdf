"""Interest: local memberships, first and last member."""

from __future__ import annotations

import pytest

from wshub_channels.core.membership import Interest

pytestmark = pytest.mark.unit


def test_interest_reports_first_and_last_member() -> None:
    """add says when a name gains its first member; discard when it loses the last."""
    interest = Interest()
    assert interest.add("r", "room", "a", 0) is True
    assert interest.add("r", "room", "b", 0) is False
    assert interest.add("g", "room", "a", 0) is True  # a group is not a room
    assert interest.discard("r", "room", "a") is False
    assert interest.remove_member("b") == [("r", "room")]
    assert interest.remove_member("a") == [("g", "room")]
    assert interest.sizes() == {"names": 0, "memberships": 0, "members": 0}
