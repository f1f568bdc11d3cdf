"""Frames built once: byte for byte what websockets' and wsproto's server encoders write."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from wsproto.frame_protocol import FrameProtocol

from wshub_channels.core.wsframe import FrameCache, encode_frame, frame_header

pytestmark = pytest.mark.unit

SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, 200_000]


def _websockets(data: str | bytes) -> bytes:
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, data).serialize(mask=False, extensions=[])


def _wsproto(data: str | bytes) -> bytes:
    return FrameProtocol(client=False, extensions=[]).send_data(data, fin=True)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("binary", [False, True])
def test_a_frame_is_byte_for_byte_what_websockets_and_wsproto_write(
    size: int, binary: bool
) -> None:
    data: str | bytes = (
        bytes(range(256)) * (size // 256) + bytes(size % 256) if binary else "x" * size
    )
    assert encode_frame(data) == _websockets(data) == _wsproto(data)


@pytest.mark.parametrize("text", ["é", "日本語", "emoji 🎉 " * 40, "a\nb", "é" * 70_000])
def test_text_is_framed_as_utf8_with_its_byte_length(text: str) -> None:
    frame = encode_frame(text)
    assert frame == _websockets(text) == _wsproto(text)
    assert frame.endswith(text.encode())


def test_headers_switch_length_forms_at_126_and_65536() -> None:
    assert frame_header(0x1, 125) == b"\x81\x7d"
    assert frame_header(0x1, 126) == b"\x81\x7e\x00\x7e"
    assert frame_header(0x2, 65535) == b"\x82\x7e\xff\xff"
    assert frame_header(0x2, 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_the_cache_builds_once_per_payload_object() -> None:
    cache = FrameCache()
    payload = "hello " * 10
    first = cache.frame(payload)
    assert cache.frame(payload) is first  # N recipients, one build
    other = "".join(["hello "] * 10)  # equal, but another object: built again, same bytes
    assert other is not payload
    rebuilt = cache.frame(other)
    assert rebuilt == first and rebuilt is not first
    assert cache.frame(b"\x00\x01") == b"\x82\x02\x00\x01"
    cache.clear()
    assert cache.frame(b"\x00\x01") == b"\x82\x02\x00\x01"


def test_a_lone_surrogate_raises_and_is_not_cached() -> None:
    cache = FrameCache()
    good = cache.frame("ok")
    with pytest.raises(UnicodeEncodeError):
        cache.frame("x\ud800")
    assert cache.frame("ok") == good
