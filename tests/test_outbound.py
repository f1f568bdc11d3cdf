"""The outbound driver against fake ASGI sends: direct writes, queueing, timeouts, drops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.rig.timing import async_wait_until, t
from wshub_channels.config import Config, DropPolicy
from wshub_channels.connection.gone import client_gone
from wshub_channels.connection.outbound import Outbound
from wshub_channels.core.frames import data_message
from wshub_channels.core.sendqueue import Frame
from wshub_channels.errors import ConnectionClosed, SendBufferFull
from wshub_channels.types import AsgiMessage

pytestmark = pytest.mark.unit


class FakeSend:
    """An ASGI send that records frames; with ``block`` it suspends until ``release()``."""

    def __init__(
        self,
        *,
        block: bool = False,
        sleeps: int = 0,
        errors: dict[Frame, BaseException] | None = None,
    ) -> None:
        self.errors = errors or {}  # frame -> what writing it raises (after the sleeps)
        self.started: list[Frame] = []
        self.written: list[Frame] = []
        self.cancelled = 0
        self.sleeps = sleeps
        self._gate = asyncio.Event()
        if not block:
            self._gate.set()

    def release(self) -> None:
        self._gate.set()

    async def __call__(self, message: AsgiMessage) -> None:
        assert message["type"] == "websocket.send"
        frame: Frame = message["text"] if message.get("text") is not None else message["bytes"]
        self.started.append(frame)
        try:
            for _ in range(self.sleeps):
                await asyncio.sleep(0)
            if not self._gate.is_set():
                await self._gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if frame in self.errors:
            raise self.errors[frame]
        self.written.append(frame)


class Harness:
    """An Outbound on a fake send, recording what it reports."""

    def __init__(self, send: Any, **config: Any) -> None:
        self.send = send
        self.drops: list[Frame] = []
        self.reasons: list[str] = []  # the drop reason of each of drops, in step
        self.disconnects = 0  # slow-client close requests
        self.failures: list[BaseException] = []  # failed-write close requests
        self.out = Outbound(send, Config(**config), self._drop, self._close_request)

    def _drop(self, frame: Frame, reason: str) -> None:
        self.drops.append(frame)
        self.reasons.append(reason)

    def _close_request(self, error: BaseException | None) -> None:
        if error is None:
            self.disconnects += 1
        else:
            self.failures.append(error)

    def push(self, *frames: Frame) -> list[bool]:
        return [self.out.push(data_message(frame)) for frame in frames]


async def settle(steps: int = 20) -> None:
    """Let the loop run a few iterations (tasks that can run, run)."""
    for _ in range(steps):
        await asyncio.sleep(0)


def test_text_frame_picks_text_or_bytes() -> None:
    """str becomes a text message, bytes a binary one."""
    assert data_message("é") == {"type": "websocket.send", "text": "é"}
    assert data_message(b"\x00") == {"type": "websocket.send", "bytes": b"\x00"}


async def test_a_send_that_completes_at_once_is_written_in_the_callers_step() -> None:
    """Idle and non-suspending: each push is written before it returns, with no task."""
    h = Harness(FakeSend())
    tasks = asyncio.all_tasks()
    assert h.push("a", b"b", "c") == [True, True, True]
    assert h.send.written == ["a", b"b", "c"]  # no await in between: no task could have run
    assert asyncio.all_tasks() == tasks and h.out.queued == 0


async def test_a_suspending_write_queues_later_pushes_and_drains_them_in_order() -> None:
    """The first write suspends; later pushes wait in the queue and follow it in order."""
    h = Harness(FakeSend(block=True))
    assert h.push("a", "b", b"c", "d") == [True] * 4
    assert h.send.started == ["a"] and h.send.written == []
    assert h.out.queued == 3
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == ["a", "b", b"c", "d"] and h.out.queued == 0
    h.push("e")  # idle again: written at once
    assert h.send.written[-1] == "e"


async def test_any_awaitable_send_is_driven_like_a_coroutine() -> None:
    """A send that returns a plain future is awaited by a task, and the queue follows it."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    written: list[Frame] = []

    def send(message: AsgiMessage) -> asyncio.Future[None]:
        written.append(message["text"])
        future: asyncio.Future[None] = loop.create_future()
        futures.append(future)
        return future

    h = Harness(send)
    h.push("a", "b")
    assert written == ["a"] and h.out.queued == 1
    futures[0].set_result(None)
    await async_wait_until(lambda: len(futures) == 2, t(2), what="the second write")
    futures[1].set_result(None)
    await h.out.flush(t(2))
    assert written == ["a", "b"] and not h.out.closed


async def test_a_write_past_write_timeout_disconnects_the_client() -> None:
    """A write stuck longer than write_timeout is abandoned and on_overflow_disconnect runs."""
    h = Harness(FakeSend(block=True), write_timeout=t(0.05))
    h.push("stuck", "behind")
    await async_wait_until(lambda: h.disconnects > 0, t(2), what="the disconnect")
    assert h.disconnects == 1 and h.out.closed and h.out.queued == 0
    assert h.send.cancelled == 1 and h.send.written == [] and h.failures == []
    assert h.drops == ["behind"] and h.reasons == ["disconnect"]  # abandoned, and counted
    with pytest.raises(ConnectionClosed):
        h.push("after")


async def test_flush_waits_for_queued_writes() -> None:
    """flush() returns once every queued frame is written."""
    h = Harness(FakeSend(sleeps=3))
    h.push(*(f"m{n}" for n in range(5)))
    assert len(h.send.written) < 5
    await h.out.flush(t(2))
    assert h.send.written == [f"m{n}" for n in range(5)]


async def test_flush_gives_up_at_its_timeout() -> None:
    """flush() on a stuck write returns after its timeout; the frames stay queued."""
    h = Harness(FakeSend(block=True), write_timeout=0)
    h.push("a", "b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await h.out.flush(t(0.05))
    assert t(0.05) <= loop.time() - started < t(1)
    assert h.send.written == [] and h.out.queued == 1 and not h.out.closed


async def test_close_abandons_queued_frames_and_reports_each_dropped() -> None:
    """After close(), queued frames are never written, each is reported dropped with
    the close's reason (once), and push raises ConnectionClosed."""
    h = Harness(FakeSend(block=True))
    h.push("a", "b", "c")
    h.out.close("shutdown")
    h.out.close()
    assert h.out.closed and h.out.queued == 0
    assert h.drops == ["b", "c"] and h.reasons == ["shutdown", "shutdown"]
    with pytest.raises(ConnectionClosed):
        h.push("d")
    h.send.release()  # the write in flight finishes; nothing follows it
    await async_wait_until(lambda: h.send.written == ["a"], t(2), what="the write in flight")
    await settle()
    assert h.send.written == ["a"] and h.drops == ["b", "c"]


async def full(**config: Any) -> Harness:
    """A harness whose queue (size 2) is full behind one suspended write."""
    h = Harness(FakeSend(block=True), send_queue_size=2, **config)
    assert h.push("a", "b", "c") == [True] * 3
    assert h.out.queued == 2
    return h


async def test_put_with_timeout_raises_send_buffer_full_and_drops_nothing() -> None:
    """put(timeout=) on a full queue raises SendBufferFull after the timeout; no drop."""
    h = await full()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SendBufferFull):
        await h.out.put(data_message("d"), timeout=t(0.05))
    assert loop.time() - started >= t(0.05)
    assert h.drops == []
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == ["a", "b", "c"]


async def test_put_waits_for_room_then_queues() -> None:
    """put(timeout=) returns as soon as a write frees room, and its frame goes out last."""
    h = await full()
    waiting = asyncio.ensure_future(h.out.put(data_message("d"), timeout=t(5)))
    await settle()
    assert not waiting.done()
    h.send.release()
    await asyncio.wait_for(waiting, t(2))
    await h.out.flush(t(2))
    assert h.send.written == ["a", "b", "c", "d"] and h.drops == []


async def test_put_on_a_closed_connection_raises() -> None:
    """put() raises ConnectionClosed once closed, with or without a timeout."""
    h = await full()
    waiting = asyncio.ensure_future(h.out.put(data_message("d"), timeout=t(5)))
    await settle()
    h.out.close()  # wakes the waiter
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(waiting, t(2))
    with pytest.raises(ConnectionClosed):
        h.out.push(data_message("e"))


async def test_offer_drops_and_reports_when_the_queue_stays_full() -> None:
    """offer() waits its timeout, then drops the message through on_drop, without raising."""
    h = await full()
    await h.out.push_within(data_message("d"), t(0.05))
    assert h.drops == ["d"] and h.disconnects == 0
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == ["a", "b", "c"]


async def test_offer_applies_the_configured_policy() -> None:
    """Under drop_oldest, offer() on a queue that stays full evicts the oldest frame."""
    h = await full(drop_policy=DropPolicy.DROP_OLDEST)
    await h.out.push_within(data_message("d"), t(0.05))
    assert h.drops == ["b"]
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == ["a", "c", "d"]


async def test_offer_waits_for_room_then_queues() -> None:
    """offer() queues the message once room frees up within the timeout."""
    h = await full()
    waiting = asyncio.ensure_future(h.out.push_within(data_message("d"), t(5)))
    await settle()
    assert not waiting.done()
    h.send.release()
    await asyncio.wait_for(waiting, t(2))
    await h.out.flush(t(2))
    assert h.send.written == ["a", "b", "c", "d"] and h.drops == []


async def test_offer_on_a_closed_connection_does_nothing() -> None:
    """offer() after close neither raises nor reports a drop of its own."""
    h = await full()
    h.out.close()
    await h.out.push_within(data_message("d"), t(0.05))
    assert h.drops == ["b", "c"] and h.out.queued == 0


@pytest.mark.parametrize(
    ("policy", "accepted", "dropped", "written"),
    [
        (DropPolicy.DROP_NEWEST, False, ["d"], ["a", "b", "c"]),
        (DropPolicy.DROP_OLDEST, True, ["b"], ["a", "c", "d"]),
        (DropPolicy.DISCONNECT, False, ["d"], ["a", "b", "c"]),
    ],
)
async def test_push_on_a_full_queue_applies_the_drop_policy(
    policy: DropPolicy, accepted: bool, dropped: list[str], written: list[str]
) -> None:
    """Each policy reports its drop through on_drop; only DISCONNECT asks to disconnect."""
    h = await full(drop_policy=policy)
    assert h.push("d") == [accepted]
    assert h.drops == dropped and h.reasons == [policy.value]
    assert h.out.sent == 3 + accepted  # a frame the policy refused is not counted as sent
    assert h.disconnects == (1 if policy is DropPolicy.DISCONNECT else 0)
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == written


async def test_disconnect_is_requested_once_but_every_drop_is_reported() -> None:
    """Repeated overflow under DISCONNECT reports each drop and asks to disconnect once."""
    h = await full(drop_policy=DropPolicy.DISCONNECT)
    h.push("d", "e", "f")
    assert h.drops == ["d", "e", "f"] and h.disconnects == 1


async def test_coalescing_writes_a_burst_at_the_end_of_the_loop_iteration() -> None:
    """With coalescing, a burst waits for the loop to turn, then leaves as joined frames."""
    h = Harness(FakeSend(), coalesce_writes=True, coalesce_max_bytes=9)
    h.push("a", "é", "😀", b"x", "b", "c" * 20, "d")
    assert h.send.written == [] and h.out.queued == 7
    await asyncio.sleep(0)
    # "a\né\n😀" is 9 bytes (5 characters); binary is never joined; "c"*20 is over the cap.
    assert h.send.written == ["a\né\n😀", b"x", "b", "c" * 20, "d"]
    h.push("e")
    await h.out.flush(t(2))  # flush does not wait for the loop to turn
    assert h.send.written[-1] == "e"


# -- failed writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("sleeps", [0, 2], ids=["at-once", "after-suspending"])
async def test_a_failed_write_asks_to_close_once_and_reports_the_queue_dropped(
    sleeps: int,
) -> None:
    """A write that raises (not a client gone) asks the owner to close with the error,
    once; every frame queued behind it is reported dropped as write_failed."""
    error = UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
    h = Harness(FakeSend(sleeps=sleeps, errors={"bad": error}), coalesce_writes=False)
    h.push("ok")
    await h.out.flush(t(2))
    if sleeps:
        h.push("bad", "q1", "q2")  # the write suspends first: two frames queue behind it
    else:
        h.push("bad")  # fails inside push, before anything can queue
    await async_wait_until(lambda: h.out.closed, t(2), what="the failed write")
    assert h.failures == [error] and h.disconnects == 0
    assert h.drops == (["q1", "q2"] if sleeps else []) and set(h.reasons) <= {"write_failed"}
    with pytest.raises(ConnectionClosed):
        h.push("after")
    assert h.send.written == ["ok"] and h.failures == [error]


async def test_a_write_that_fails_in_the_queue_task_reports_the_rest() -> None:
    """A queued frame whose write raises: the frames behind it are dropped as write_failed."""
    boom = RuntimeError("server refused the frame")
    h = Harness(FakeSend(sleeps=2, errors={"b": boom}))
    h.push("a", "b", "c", "d")
    await async_wait_until(lambda: h.out.closed, t(2), what="the failed write")
    assert h.send.written == ["a"] and h.failures == [boom]
    assert h.drops == ["c", "d"] and h.reasons == ["write_failed", "write_failed"]


class ClientDisconnected(OSError):
    """What uvicorn raises once the client has gone."""


class ConnectionClosedOK(Exception):
    """Named as websockets names a closed connection."""


@pytest.mark.parametrize(
    "gone",
    [
        ClientDisconnected(),
        ConnectionResetError(),
        ConnectionClosedOK(),
        RuntimeError("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'."),
    ],
    ids=repr,
)
async def test_a_client_gone_is_not_a_write_failure(gone: BaseException) -> None:
    """The errors servers raise once the socket is closed stop the queue quietly: no
    close request (the server reports the disconnect); the rest is dropped as closed."""
    assert client_gone(gone)
    h = Harness(FakeSend(sleeps=1, errors={"a": gone}))
    h.push("a", "b")
    await async_wait_until(lambda: h.out.closed, t(2), what="the stop")
    assert h.failures == [] and h.disconnects == 0
    assert h.drops == ["b"] and h.reasons == ["closed"]


def test_real_failures_are_not_taken_for_a_client_gone() -> None:
    """An encoding error or an unexpected RuntimeError is a write failure."""
    assert not client_gone(UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"))
    assert not client_gone(RuntimeError("something else"))
    assert not client_gone(ValueError("Got invalid WebSocket reply message"))


# -- the byte budget ---------------------------------------------------------------------------


async def test_the_byte_budget_drops_behind_a_stuck_write() -> None:
    """Behind a suspended write, frames queue until send_queue_bytes, then drop."""
    h = Harness(FakeSend(block=True), send_queue_size=100, send_queue_bytes=10)
    assert h.push("in-flight", "aaaaa", "bbbbb", "c") == [True, True, True, False]
    assert h.drops == ["c"] and h.out.queued == 2 and h.out.queued_bytes == 10
    h.send.release()
    await h.out.flush(t(2))
    assert h.send.written == ["in-flight", "aaaaa", "bbbbb"] and h.out.queued_bytes == 0


async def test_a_frame_over_the_budget_to_an_idle_client_is_written_at_once() -> None:
    """The budget bounds what waits: a large frame to an idle client goes straight out."""
    h = Harness(FakeSend(), send_queue_bytes=4)
    assert h.push("x" * 100) == [True]
    assert h.send.written == ["x" * 100] and h.drops == []


async def test_put_waits_for_byte_room_and_returns_whether_it_queued() -> None:
    """put(timeout=) waits until the bytes fit; put() without one returns False on a drop."""
    h = Harness(FakeSend(block=True), send_queue_size=100, send_queue_bytes=6)
    h.push("in-flight", "aaaaa")
    assert h.out.push(data_message("bb")) is False
    waiting = asyncio.ensure_future(h.out.put(data_message("cc"), timeout=t(5)))
    await settle()
    assert not waiting.done()
    h.send.release()
    assert await asyncio.wait_for(waiting, t(2)) is True
    await h.out.flush(t(2))
    assert h.send.written == ["in-flight", "aaaaa", "cc"] and h.drops == ["bb"]


async def test_put_for_a_frame_over_the_budget_waits_until_the_client_is_idle() -> None:
    """A frame larger than the budget has room once nothing is queued or in flight."""
    h = Harness(FakeSend(block=True), send_queue_bytes=4)
    h.push("a")
    waiting = asyncio.ensure_future(h.out.put(data_message("x" * 10), timeout=t(5)))
    await settle()
    h.send.release()
    assert await asyncio.wait_for(waiting, t(2)) is True
    await h.out.flush(t(2))
    assert h.send.written == ["a", "x" * 10]
