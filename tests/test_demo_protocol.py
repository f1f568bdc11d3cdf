"""The demo chat's rules on nicknames, room names and chat lines (pure)."""

from __future__ import annotations

import pytest

from demo_project.chat.protocol import (
    MAX_NICK,
    MAX_ROOM,
    MAX_TEXT,
    ChatError,
    clean_nickname,
    clean_room,
    clean_text,
)


def test_names_are_trimmed_and_inner_spaces_collapsed() -> None:
    assert clean_nickname("  ada   lovelace \t") == "ada lovelace"
    assert clean_room(" Tea  Room ") == "tea room"  # rooms compare lower-case


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "bad_nickname"),
        ("   ", "bad_nickname"),
        (None, "bad_nickname"),
        (42, "bad_nickname"),
        ("x" * (MAX_NICK + 1), "bad_nickname"),
        ("bell\x07", "bad_nickname"),
        ("zero\u200bwidth", "bad_nickname"),  # a format character (Cf) hides in names
    ],
)
def test_bad_nicknames_are_refused_with_a_code(value: object, code: str) -> None:
    with pytest.raises(ChatError) as caught:
        clean_nickname(value)
    assert caught.value.code == code
    assert caught.value.message


def test_markup_and_unicode_are_ordinary_names() -> None:
    assert clean_nickname("<i>sly</i>") == "<i>sly</i>"
    assert clean_room("café ☕") == "café ☕"
    assert len(clean_room("r" * MAX_ROOM)) == MAX_ROOM
    with pytest.raises(ChatError, match="at most"):
        clean_room("r" * (MAX_ROOM + 1))


def test_chat_lines_must_have_text_and_fit() -> None:
    assert clean_text(" <b>hi</b> ") == " <b>hi</b> "  # kept as typed; the page shows text
    for empty in ("", "  \n", None):
        with pytest.raises(ChatError) as caught:
            clean_text(empty)
        assert caught.value.code == "empty"
    with pytest.raises(ChatError) as caught:
        clean_text("x" * (MAX_TEXT + 1))
    assert caught.value.code == "too_long"
