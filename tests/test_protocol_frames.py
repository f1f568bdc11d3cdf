"""Client protocol v1, the pure part: reading client frames, writing server frames, error codes."""

from __future__ import annotations

import json

import pytest

from wshub_channels.core.history import Position
from wshub_channels.core.protocol import (
    MAX_REF,
    AuthFrame,
    BadFrame,
    JoinFrame,
    LeaveFrame,
    PongFrame,
    SendFrame,
    error_code,
    error_frame,
    error_message,
    joined_frame,
    left_frame,
    ping_frame,
    presence_frame,
    read_frame,
    welcome_frame,
)
from wshub_channels.errors import (
    AlreadyInRoom,
    EmptyRoomName,
    HubError,
    InvalidFrame,
    InvalidName,
    MaxRoomsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    TokenExpired,
    Unauthorized,
)

pytestmark = pytest.mark.unit


def frame(**fields: object) -> str:
    return json.dumps(fields)


def test_the_four_client_frames_are_read() -> None:
    since = {"offset": 7, "epoch": "e1"}
    assert read_frame(frame(t="join", room="a", since=since, ref="1")) == JoinFrame(
        "a", Position(7, "e1"), "1"
    )
    assert read_frame(frame(t="join", room="a", since=None, ref=2)) == JoinFrame("a", None, 2)
    assert read_frame(frame(t="join", room="a")) == JoinFrame("a", None, None)
    assert read_frame(frame(t="leave", room="a", ref="3")) == LeaveFrame("a", "3")
    assert read_frame(frame(t="send", room="a", data="hi", ref="4")) == SendFrame("a", "hi", "4")
    assert read_frame('{"t":"pong"}') == PongFrame()
    assert read_frame(frame(t="auth", token="x")) == AuthFrame()


@pytest.mark.parametrize(
    "data",
    [
        b'{"t":"join"}',  # binary frames are the application's
        "hello",  # text that is not JSON
        '{"type":"say","text":"t is not the key"}',  # JSON without "t"
        '{"t": "join"',  # broken JSON: not ours to read
        "[1,2]",
        '"t"',
        "",
        "   ",
    ],
)
def test_frames_without_t_belong_to_the_application(data: str | bytes) -> None:
    assert read_frame(data) is None


def test_an_escaped_t_key_is_still_the_protocols() -> None:
    assert read_frame('{"\\u0074":"pong"}') == PongFrame()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (frame(t="jump"), "unknown frame type 'jump'"),
        (frame(t=5), '"t" is a string'),
        (frame(t="join", ref="r"), '"room": a string'),
        (frame(t="join", room=3, ref="r"), '"room": a string'),
        (frame(t="join", room="a", since=5, ref="r"), '"since"'),
        (frame(t="join", room="a", since={"offset": "1", "epoch": "e"}, ref="r"), '"since"'),
        (frame(t="join", room="a", since={"offset": True, "epoch": "e"}, ref="r"), '"since"'),
        (frame(t="join", room="a", since={"offset": -1, "epoch": "e"}, ref="r"), "offset"),
        (frame(t="join", room="a", since={"offset": 1}, ref="r"), '"since"'),
        (frame(t="send", room="a", data={"x": 1}, ref="r"), '"data": a string'),
        (frame(t="send", room="a", ref="r"), '"data": a string'),
    ],
)
def test_bad_frames_are_refused_with_their_ref(data: str, words: str) -> None:
    with pytest.raises(BadFrame, match=words) as caught:
        read_frame(data)
    assert caught.value.code == "bad_frame"
    expected_ref = json.loads(data).get("ref")
    assert caught.value.ref == expected_ref
    assert error_code(caught.value) == "bad_frame"


@pytest.mark.parametrize("ref", [True, 1.5, ["x"], {"a": 1}, "r" * (MAX_REF + 1)])
def test_a_bad_ref_is_a_bad_frame_without_a_ref(ref: object) -> None:
    with pytest.raises(BadFrame, match='"ref"') as caught:
        read_frame(frame(t="leave", room="a", ref=ref))
    assert caught.value.ref is None


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AlreadyInRoom("x"), "already_in_room"),
        (NotInRoom("x"), "not_in_room"),
        (RoomFull("x"), "room_full"),
        (MaxRoomsReached("x"), "max_rooms"),
        (Unauthorized("x"), "unauthorized"),
        (TokenExpired("x"), "unauthorized"),
        (PermissionError("x"), "unauthorized"),
        (InvalidName("x"), "invalid_name"),
        (EmptyRoomName("x"), "invalid_name"),
        (InvalidFrame("x"), "bad_frame"),
        (RateLimitExceeded("x"), "rate_limited"),
        (HubError("x"), "hub_error"),
        (RuntimeError("x"), "server_error"),
    ],
)
def test_hub_errors_map_to_stable_codes(error: Exception, code: str) -> None:
    assert error_code(error) == code


def test_only_the_hubs_own_errors_are_told_as_they_are() -> None:
    assert error_message(RoomFull("room 'a' is full")) == "room 'a' is full"
    assert error_message(RuntimeError("password=hunter2")) == "the server could not do that"


def test_server_frames_are_compact_json_with_every_field() -> None:
    assert json.loads(welcome_frame("c1", "n1", 20)) == {
        "t": "welcome",
        "v": 1,
        "client": "c1",
        "node": "n1",
        "ping": 20,
    }
    assert json.loads(joined_frame("a", True, Position(4, "e"), "1")) == {
        "t": "joined",
        "room": "a",
        "recovered": True,
        "offset": 4,
        "epoch": "e",
        "ref": "1",
    }
    plain = json.loads(joined_frame("a", False, None, None))
    assert plain["offset"] is None and plain["epoch"] is None and plain["ref"] is None
    assert json.loads(left_frame("a", None)) == {"t": "left", "room": "a", "ref": None}
    assert json.loads(error_frame("room_full", "full", 3)) == {
        "t": "error",
        "code": "room_full",
        "message": "full",
        "ref": 3,
    }
    assert json.loads(ping_frame()) == {"t": "ping"}
    assert json.loads(presence_frame("a", "joined", "c", None, "n")) == {
        "t": "presence",
        "room": "a",
        "event": "joined",
        "client": "c",
        "user": None,
        "node": "n",
    }
    for text in (welcome_frame("c", "n", 1), joined_frame("é", True, None, "1")):
        assert "\n" not in text and ": " not in text
    assert "é" in joined_frame("é", True, None, "1")  # UTF-8, not \\u escapes
