"""The codecs of the bus: envelopes, Channels messages, hub payloads and presence."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from wshub_channels.core.wire import (
    ENVELOPE_MAJOR,
    Envelope,
    Kind,
    UnknownEnvelopeVersion,
    decode_envelope,
    decode_hub_payload,
    decode_presence,
    encode_envelope,
    encode_hub_payload,
    encode_presence,
    pack_message,
    unpack_message,
)

pytestmark = pytest.mark.unit


def test_envelope_round_trip_and_version_check() -> None:
    """Envelopes round-trip; an unknown major version raises UnknownEnvelopeVersion."""
    data = encode_envelope(Kind.ROOM, "node", "room", b"\x00payload")
    env = decode_envelope(data)
    assert (env.kind, env.origin, env.target, env.payload) == (
        Kind.ROOM,
        "node",
        "room",
        b"\x00payload",
    )
    with pytest.raises(UnknownEnvelopeVersion):
        decode_envelope(msgpack.packb([2, 0, 1, "n", "t", b"", None]))
    with pytest.raises(ValueError):
        decode_envelope(b"\x93\x01")


def test_envelope_stays_readable_by_minor_zero_nodes() -> None:
    """Six meaningful fields, then the nil that minor-0 decoders (seven or more) need."""
    fields = msgpack.unpackb(encode_envelope(Kind.GROUP, "n", "g", b"p"), raw=False)
    assert fields[0] == ENVELOPE_MAJOR and fields[2:6] == [1, "n", "g", b"p"]
    assert len(fields) >= 7 and fields[6] is None


def test_seven_field_envelope_of_minor_zero_still_decodes() -> None:
    """A node of minor version 0 sent a seventh, unused field: it is ignored."""
    old = msgpack.packb([1, 0, Kind.DIRECT, "old", "chan!x", b"body", {"x": 1}], use_bin_type=True)
    assert decode_envelope(old) == Envelope(Kind.DIRECT, "old", "chan!x", b"body")


def test_later_minor_versions_may_add_fields() -> None:
    """Trailing fields of a newer minor version are ignored."""
    newer = msgpack.packb([1, 9, Kind.USER, "n", "u", b"", "extra", 2], use_bin_type=True)
    assert decode_envelope(newer) == Envelope(Kind.USER, "n", "u", b"")


@pytest.mark.parametrize("major", [0, 2, 99, "1", None])
def test_unknown_major_version_is_rejected(major: Any) -> None:
    """Any major version but ours raises UnknownEnvelopeVersion, a ValueError."""
    data = msgpack.packb([major, 0, Kind.GROUP, "n", "g", b""], use_bin_type=True)
    with pytest.raises(UnknownEnvelopeVersion):
        decode_envelope(data)
    assert issubclass(UnknownEnvelopeVersion, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"kind": 1}),
        msgpack.packb([1, 0, 1, "n", "t"]),
        msgpack.packb("text"),
    ],
)
def test_malformed_envelopes_raise_value_error(data: bytes) -> None:
    """Undecodable bytes, a non-list or too few fields raise ValueError."""
    with pytest.raises(ValueError):
        decode_envelope(data)


def test_only_used_kinds_remain() -> None:
    """The kinds on the wire keep their numbers; retired ones are gone."""
    assert {k.name: k.value for k in Kind} == {
        "GROUP": 1,
        "DIRECT": 2,
        "ROOM": 3,
        "USER": 4,
        "BROADCAST": 5,
        "PRESENCE": 9,
        "ROOM_EVENT": 10,
    }


def test_sender_pid_travels_in_the_seventh_field() -> None:
    """Minor 2 carries the sender's pid; a nil there (minor 0 and 1) decodes as None."""
    env = decode_envelope(encode_envelope(Kind.ROOM, "n", "r", b"x", 4242))
    assert env == Envelope(Kind.ROOM, "n", "r", b"x", 4242)
    older = msgpack.packb([1, 1, Kind.ROOM, "n", "r", b"x", None], use_bin_type=True)
    assert decode_envelope(older).sender is None


def test_pack_message_names_the_bad_path() -> None:
    """pack_message reports the first bad key path."""
    with pytest.raises(TypeError, match=r"a\.b\[2\]\.c"):
        pack_message({"a": {"b": [1, 2, {"c": 1j}]}})


def test_message_round_trip() -> None:
    """A Channels message survives pack and unpack (tuples become lists)."""
    message = {"type": "t", "b": b"\x00", "n": None, "l": (1, 2), "d": {"k": 1.5}}
    assert unpack_message(pack_message(message)) == {**message, "l": [1, 2]}


@pytest.mark.parametrize("data", ["text é", b"\x00\xffbinary", ""])
def test_hub_payload_round_trip(data: str | bytes) -> None:
    """Text stays text, bytes stay bytes, and the excluded ids come back sorted."""
    payload = encode_hub_payload(data, {"c2", "c1"})
    assert decode_hub_payload(payload) == (data, ["c1", "c2"], None)
    assert payload == msgpack.packb([data, ["c1", "c2"]], use_bin_type=True)


def test_hub_payload_of_a_history_room_carries_its_position() -> None:
    """Minor 3: offset and epoch follow; fields a later minor adds are ignored."""
    payload = encode_hub_payload("hi", [], (7, "ep"))
    assert decode_hub_payload(payload) == ("hi", [], (7, "ep"))
    later = msgpack.packb(["hi", [], 7, "ep", "future"], use_bin_type=True)
    assert decode_hub_payload(later).position == (7, "ep")


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",
        msgpack.packb("just data"),
        msgpack.packb(["data"]),
        msgpack.packb(["data", [], "more"]),
        msgpack.packb([1, []]),
        msgpack.packb(["data", "c1"]),
        msgpack.packb(["data", [1]]),
        msgpack.packb(["data", [], 0, "ep"]),
        msgpack.packb(["data", [], 3, ""]),
        msgpack.packb(["data", [], "3", "ep"]),
    ],
)
def test_malformed_hub_payload_raises_value_error(payload: bytes) -> None:
    """Anything but [str | bytes, [str, ...]] raises ValueError."""
    with pytest.raises(ValueError):
        decode_hub_payload(payload)


def test_presence_round_trip() -> None:
    """A heartbeat decodes to its op and node info, as encoded today on the wire."""
    info = {"node_id": "abc", "clients": 3, "rooms": {"lobby": 2}}
    payload = encode_presence("beat", info)
    assert decode_presence(payload) == ("beat", info)
    assert payload == msgpack.packb({"op": "beat", "info": info}, use_bin_type=True)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",
        msgpack.packb(["beat", {}]),
        msgpack.packb({"info": {}}),
        msgpack.packb({"op": "beat"}),
        msgpack.packb({"op": 1, "info": {}}),
        msgpack.packb({"op": "bye", "info": [1]}),
    ],
)
def test_malformed_presence_raises_value_error(payload: bytes) -> None:
    """A presence message without a str op and a dict info raises ValueError."""
    with pytest.raises(ValueError):
        decode_presence(payload)


@pytest.mark.parametrize(
    "fields",
    [
        [1, "2", Kind.GROUP, "n", "g", b""],  # minor
        [1, 2, "1", "n", "g", b""],  # kind
        [1, 2, True, "n", "g", b""],  # kind: a bool is not a kind
        [1, 2, Kind.GROUP, 5, "g", b""],  # origin
        [1, 2, Kind.GROUP, "n", None, b""],  # target
        [1, 2, Kind.GROUP, "n", "g", "text"],  # payload
        [1, 2, Kind.DIRECT, "n", "c!x", [1, 2]],  # payload
    ],
)
def test_every_envelope_field_is_type_checked(fields: list[Any]) -> None:
    """A field of the wrong type makes the envelope malformed: ValueError, not a crash later."""
    with pytest.raises(ValueError, match="malformed envelope"):
        decode_envelope(msgpack.packb(fields, use_bin_type=True))


@pytest.mark.parametrize("body", [[1, 2], "text", 7, None, {b"type": "x"}])
def test_unpack_message_refuses_what_is_not_a_message(body: Any) -> None:
    """A Channels message is a dict with str keys; anything else raises ValueError."""
    with pytest.raises(ValueError, match="not a Channels message"):
        unpack_message(msgpack.packb(body, use_bin_type=True))
    with pytest.raises(ValueError):
        unpack_message(b"\xc1")
