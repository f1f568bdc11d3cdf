"""The Outbound's direct path: only an idle connection writes straight to the socket.

A fake :class:`DirectWriter` stands for the server's transport: it takes a
frame when ``ready`` and refuses it otherwise. Whatever it refuses, and
anything pushed while a write is in flight or frames wait, takes the ASGI send.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.test_outbound import FakeSend, Harness, settle
from wshub_channels.config import Config
from wshub_channels.connection.directwrite import _through_session_wrapper, detect
from wshub_channels.connection.outbound import Outbound
from wshub_channels.core.frames import data_message
from wshub_channels.core.wsframe import encode_frame
from wshub_channels.types import AsgiMessage

pytestmark = pytest.mark.unit


class FakeWriter:
    kind = "fake"

    def __init__(self) -> None:
        self.ready = True
        self.frames: list[bytes] = []

    def write(self, data: str | bytes) -> bool:
        if not self.ready:
            return False
        self.frames.append(encode_frame(data))
        return True


def harness(send: Any, writer: FakeWriter, **config: Any) -> Harness:
    h = Harness(send, **config)
    h.out = Outbound(send, Config(**config), h._drop, h._close_request, writer)
    return h


async def test_an_idle_connection_writes_directly_and_counts_it_sent() -> None:
    send, writer = FakeSend(), FakeWriter()
    h = harness(send, writer)
    assert h.push("a", b"b") == [True, True]
    assert writer.frames == [encode_frame("a"), encode_frame(b"b")]
    assert send.written == [] and h.out.sent == 2 and h.out.direct == 2
    assert h.out.direct_kind == "fake"


async def test_a_refused_direct_write_takes_the_asgi_send() -> None:
    send, writer = FakeSend(), FakeWriter()
    h = harness(send, writer)
    writer.ready = False  # the server's buffer is not empty, or the socket not open
    h.push("a")
    writer.ready = True
    h.push("b")
    assert send.written == ["a"] and writer.frames == [encode_frame("b")]
    assert h.out.sent == 2 and h.out.direct == 1


async def test_nothing_is_written_directly_while_a_write_is_in_flight_or_frames_wait() -> None:
    """Order holds: behind a suspended ASGI write every frame queues, then drains in order."""
    send, writer = FakeSend(block=True), FakeWriter()
    h = harness(send, writer)
    writer.ready = False
    h.push("a")  # suspends: in flight
    writer.ready = True
    h.push("b", "c")
    assert writer.frames == [] and h.out.queued == 2
    send.release()
    await h.out.flush(1)
    assert send.written == ["a", "b", "c"] and writer.frames == []
    h.push("d")  # idle again
    assert writer.frames == [encode_frame("d")]


async def test_coalesced_batches_are_written_directly_once_per_batch() -> None:
    send, writer = FakeSend(), FakeWriter()
    h = harness(send, writer, coalesce_writes=True)
    h.push("a", "b", "c")
    assert writer.frames == []  # coalescing waits for the end of the loop iteration
    await settle()
    assert writer.frames == [encode_frame("a\nb\nc")] and send.written == []
    assert h.out.sent == 3 and h.out.direct == 1


async def test_drop_policies_apply_behind_a_stalled_write_as_on_the_asgi_path() -> None:
    send, writer = FakeSend(block=True), FakeWriter()
    h = harness(send, writer, send_queue_size=2, drop_policy="drop_oldest")
    writer.ready = False
    h.push("a", "b", "c", "d")
    assert h.drops == ["b"] and h.reasons == ["drop_oldest"]
    send.release()
    await h.out.flush(1)
    assert send.written == ["a", "c", "d"]


async def test_direct_writes_off_uses_only_the_asgi_send() -> None:
    send, writer = FakeSend(), FakeWriter()
    h = harness(send, writer, direct_writes=False)
    h.push("a")
    assert send.written == ["a"] and writer.frames == [] and h.out.direct_kind is None


async def test_a_send_the_hub_does_not_know_gets_no_direct_writer() -> None:
    """A plain coroutine, or a middleware's wrapper around the server's send: ASGI only."""

    async def plain(message: AsgiMessage) -> None:
        pass

    class Wrapper:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def send(self, message: AsgiMessage) -> None:
            await self.inner(message)

    assert detect(plain) is None
    assert detect(Wrapper(plain).send) is None
    assert detect(functools.partial(plain)) is None


def test_channels_session_wrapper_is_looked_through() -> None:
    from channels.sessions import InstanceSessionWrapper

    async def inner(message: AsgiMessage) -> None:
        pass

    wrapper = InstanceSessionWrapper.__new__(InstanceSessionWrapper)
    wrapper.real_send = inner
    assert _through_session_wrapper(wrapper.send) is inner
    assert _through_session_wrapper(inner) is inner


def test_each_message_builds_its_frame_once_for_every_recipient() -> None:
    """The fan-out shares one payload object: every recipient gets the same frame bytes."""
    from wshub_channels.connection.directwrite import frames

    message = data_message("shared " * 20)
    first = frames.frame(message["text"])
    assert all(frames.frame(message["text"]) is first for _ in range(100))


async def test_a_writer_that_raises_leaves_the_connection_on_the_asgi_path() -> None:
    """A server that changed under us: the frame still goes out, by ASGI, from then on."""

    class Broken(FakeWriter):
        def write(self, data: str | bytes) -> bool:
            raise AttributeError("no such attribute in this server version")

    send = FakeSend()
    h = harness(send, Broken())
    h.push("a", "b")
    assert send.written == ["a", "b"] and h.out.direct == 0 and h.out.direct_kind is None


async def test_auth_middleware_stack_hands_the_consumer_a_send_the_hub_sees_through() -> None:
    """``AuthMiddlewareStack`` (cookies, sessions, auth) wraps send in Channels' session
    wrapper; the consumer's ``send`` unwraps to the server's own."""
    from channels.auth import AuthMiddlewareStack

    seen: list[Any] = []

    async def consumer(scope: Any, receive: Any, send: Any) -> None:
        seen.append(send)

    async def server_send(message: AsgiMessage) -> None:
        pass

    async def receive() -> AsgiMessage:
        return {"type": "websocket.connect"}

    app = AuthMiddlewareStack(consumer)
    await app({"type": "websocket", "headers": [], "path": "/"}, receive, server_send)
    assert seen and seen[0] is not server_send
    assert _through_session_wrapper(seen[0]) is server_send
