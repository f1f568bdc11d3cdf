"""Names must encode as strict UTF-8: rooms, user ids, group and channel names.

A name with a lone surrogate (``"x\\ud800"``) is a valid Python ``str`` that
msgpack cannot encode; accepted once, it would break every heartbeat and
answer that carries it. These tests feed fixed and random names through the
validators: each name is either refused with a typed error or round-trips
through msgpack and the subject encoder.
"""

from __future__ import annotations

import re

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wshub_channels.core.names import subject_token, validate_room, validate_user_id
from wshub_channels.errors import InvalidName
from wshub_channels.layers import InMemoryHubLayer

pytestmark = pytest.mark.unit

SURROGATES = ["x\ud800", "\udfff", "room\udc80tail", "\ud83d"]
#: Any code point, lone surrogates often (the default text strategy leaves them out).
ANY_TEXT = st.text(
    st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    max_size=120,
)


@pytest.mark.parametrize("name", SURROGATES)
def test_rooms_and_user_ids_with_lone_surrogates_are_refused(name: str) -> None:
    """A room or user id that is not strict UTF-8 raises InvalidName naming the rule."""
    with pytest.raises(InvalidName, match="UTF-8"):
        validate_room(name)
    with pytest.raises(InvalidName, match="UTF-8"):
        validate_user_id(name)


def test_unicode_rooms_and_user_ids_stay_valid() -> None:
    """Strict UTF-8 is any str without lone surrogates: emoji, CJK and NUL pass."""
    for name in ("🎉", "日本語 ルーム", "a\x00b", "ü" * 256):
        assert validate_room(name) == name and validate_user_id(name) == name


@pytest.mark.parametrize("name", ["x!\ud800", "x\ud800", "ok.group", "bad name", "x" * 100])
def test_invalid_group_and_channel_names_are_typeerror_and_invalidname(name: str) -> None:
    """Channels wants TypeError for a bad name; the hub's callers catch InvalidName. Both."""
    layer = InMemoryHubLayer()
    for check in (layer.require_valid_group_name, layer.require_valid_channel_name):
        if name == "ok.group":
            assert check(name)
            continue
        with pytest.raises(TypeError) as caught:
            check(name)
        assert isinstance(caught.value, InvalidName)


def _round_trips(name: str) -> None:
    assert msgpack.unpackb(msgpack.packb(name, use_bin_type=True), raw=False) == name
    assert re.fullmatch(r"[a-z0-9]+", subject_token(name))


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_random_rooms_and_user_ids_are_refused_or_round_trip(name: str) -> None:
    """Every random str is refused with InvalidName, or encodes on the bus as it is."""
    for validate in (validate_room, validate_user_id):
        try:
            accepted = validate(name)
        except InvalidName:
            continue
        assert accepted == name
        _round_trips(name)


_LAYER = InMemoryHubLayer()


@settings(max_examples=400, deadline=None)
@given(st.one_of(ANY_TEXT, st.from_regex(r"\A[a-zA-Z0-9._-]{1,40}(![\w.-]{0,20})?\Z")))
def test_random_group_and_channel_names_are_refused_or_round_trip(name: str) -> None:
    """Every random name is refused with a TypeError that is an InvalidName, or encodes."""
    for check in (_LAYER.require_valid_group_name, _LAYER.require_valid_channel_name):
        try:
            check(name)
        except TypeError as exc:
            assert isinstance(exc, InvalidName)
            continue
        _round_trips(name)
