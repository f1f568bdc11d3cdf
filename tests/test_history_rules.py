"""The pure vocabulary of room history: positions, rules and WSHUB["HISTORY"] parsing."""

from __future__ import annotations

import pytest

from wshub_channels.core.history import HistoryRule, HistoryRules, Position

pytestmark = pytest.mark.unit


def test_the_first_matching_pattern_wins_in_setting_order() -> None:
    rules = HistoryRules.parse(
        {"chat.vip": {"size": 10, "ttl": 5}, "chat.*": {"size": 200, "ttl": 600}}
    )
    assert rules.rule_for("chat.vip") == HistoryRule(10, 5)
    assert rules.rule_for("chat.lobby") == HistoryRule(200, 600)
    assert rules.rule_for("lobby") is None
    assert rules.rule_for("Chat.lobby") is None  # case-sensitive
    assert rules.rule_for("chat.vip") == HistoryRule(10, 5)  # cached answer is the same


def test_no_setting_means_no_room_keeps_history() -> None:
    for setting in (None, {}):
        rules = HistoryRules.parse(setting)
        assert not rules
        assert rules.rule_for("anything") is None


def test_ttl_defaults_to_five_minutes() -> None:
    assert HistoryRules.parse({"r": {"size": 3}}).rule_for("r") == HistoryRule(3, 300)


@pytest.mark.parametrize(
    ("setting", "names"),
    [
        ({"chat.*": {"size": 0, "ttl": 1}}, "size"),
        ({"chat.*": {"size": True, "ttl": 1}}, "size"),
        ({"chat.*": {"size": 5, "ttl": 0}}, "ttl"),
        ({"chat.*": {"size": 5, "ttl": "1"}}, "ttl"),
        ({"chat.*": {"ttl": 5}}, "chat.*"),
        ({"chat.*": {"size": 5, "maxlen": 1}}, "chat.*"),
        ({"": {"size": 5}}, "pattern"),
        ({"chat.*": 5}, "chat.*"),
    ],
)
def test_a_bad_entry_is_refused_by_name(setting: dict[str, object], names: str) -> None:
    with pytest.raises(ValueError, match=names.replace(".", r"\.").replace("*", r"\*")):
        HistoryRules.parse(setting)


def test_a_setting_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="maps room patterns"):
        HistoryRules.parse([("chat.*", {"size": 1})])  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [-1, 1.5, True, "3"])
def test_a_position_offset_is_a_non_negative_int(offset: object) -> None:
    with pytest.raises(ValueError, match="offset"):
        Position(offset, "e")  # type: ignore[arg-type]


def test_positions_compare_by_value() -> None:
    assert Position(3, "e") == Position(3, "e") != Position(3, "f")
    with pytest.raises(ValueError, match="epoch"):
        Position(3, None)  # type: ignore[arg-type]
