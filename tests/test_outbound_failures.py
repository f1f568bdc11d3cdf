"""Frames that cannot go out: text UTF-8 cannot encode, writes that fail, drops counted.

In-process, through ``HubCommunicator`` on a private hub. Text with a lone
surrogate is refused at the sender with ``InvalidFrame``, on every send path,
so a room never receives it; a write the server refuses ends that one
connection with 1011 and its disconnect path; every discarded frame is counted
by reason, and only accepted frames count as sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.inprocess import WAIT, Clients, hub_clients
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer, InvalidFrame, Message, get_hub
from wshub_channels.message import check_text, dump_json
from wshub_channels.metrics import DebugMetrics
from wshub_channels.types import AsgiMessage

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-outbound-failures"
LONE = "x\ud800"  # valid JSON ("x\\ud800") that UTF-8 cannot encode
closed_with: list[int] = []


class Room(HubConsumer):
    """Joins "r"; ``say:<text>`` broadcasts to it, ``lone:<op>`` tries a lone surrogate."""

    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.join_room("r")
        await self.send_text(f"id:{self.id}")

    async def on_error(self, error: Exception) -> None:
        await self.send_text(f"error:{type(error).__name__}")

    async def on_close(self, code: int) -> None:
        closed_with.append(code)

    async def on_message(self, msg: Message) -> None:
        op, _, arg = msg.text().partition(":")
        hub = self.hub
        if op == "say":
            await hub.broadcast_to_room("r", arg)
        elif op == "lone":
            sends: dict[str, Any] = {
                "room": lambda: hub.broadcast_to_room("r", LONE),
                "room_json": lambda: hub.broadcast_to_room("r", dump_json({"t": LONE})),
                "broadcast": lambda: hub.broadcast_text(LONE),
                "broadcast_json": lambda: hub.broadcast_json({"t": LONE}),
                "user": lambda: hub.send_to_user("u", LONE),
                "client": lambda: hub.send_to_client(self.id, LONE),
                "send_text": lambda: self.send_text(LONE),
                "send_json": lambda: self.send_json([LONE]),
                "stock_send": lambda: self.send(text_data=LONE),
            }
            await sends[arg]()


class FailingWrites(Room):
    """A server whose send refuses the frame "unwritable" after suspending once."""

    async def on_connect(self) -> None:
        assert self._outbound is not None
        real = self._outbound._send

        async def send(message: AsgiMessage) -> None:
            if message.get("text") == "unwritable":
                await asyncio.sleep(0)
                raise UnicodeEncodeError("utf-8", "unwritable", 0, 1, "refused on purpose")
            await real(message)

        self._outbound._send = send
        await super().on_connect()

    async def on_message(self, msg: Message) -> None:
        if msg.text() == "fail":
            for text in ("unwritable", "behind-1", "behind-2"):
                await self.send_text(text)
            return
        await super().on_message(msg)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    closed_with.clear()
    wshub = {"METRICS": "wshub_channels.metrics.DebugMetrics"}
    async with hub_clients(ALIAS, wshub) as made:
        yield made


def metrics() -> dict[str, Any]:
    collector = get_hub(ALIAS).metrics
    assert isinstance(collector, DebugMetrics)
    return collector.stats()


def test_check_text_and_dump_json_refuse_a_lone_surrogate() -> None:
    """check_text passes text UTF-8 encodes and refuses a lone surrogate; so does dump_json."""
    assert check_text("plain") == "plain" and check_text("é😀") == "é😀"
    with pytest.raises(InvalidFrame, match="index 1"):
        check_text(LONE)
    with pytest.raises(InvalidFrame):
        dump_json({"text": LONE})
    assert issubclass(InvalidFrame, ValueError)


@pytest.mark.parametrize(
    "op",
    [
        "room",
        "room_json",
        "broadcast",
        "broadcast_json",
        "user",
        "client",
        "send_text",
        "send_json",
        "stock_send",
    ],
)
async def test_a_lone_surrogate_is_refused_at_the_sender_and_the_room_carries_on(
    clients: Clients, op: str
) -> None:
    """The sender gets InvalidFrame through on_error; a bystander in the room gets
    nothing from it, and the next broadcast reaches both."""
    sender = await clients.connect(Room)
    bystander = await clients.connect(Room)
    assert await sender.ask(f"lone:{op}") == "error:InvalidFrame"
    await sender.comm.send_to(text_data="say:after")
    assert await bystander.next() == "after"
    assert await sender.next() == "after"
    assert get_hub(ALIAS).client_count() == 2


async def test_a_failed_write_closes_with_1011_and_runs_the_disconnect_path_once(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    """A write the server refuses ends that connection: close 1011, on_close once,
    unregistered, logged, counted; the frames queued behind it count as dropped."""
    failing = await clients.connect(FailingWrites)
    bystander = await clients.connect(Room)
    hub = get_hub(ALIAS)
    with caplog.at_level(logging.WARNING, "wshub_channels.consumer"):
        await failing.comm.send_to(text_data="fail")
        closing = await failing.comm.receive_output(WAIT)
        assert closing == {"type": "websocket.close", "code": 1011, "reason": "write failed"}
        await async_wait_until(lambda: closed_with == [1011], WAIT, what="on_close")
    assert failing.id not in [c.id for c in hub.clients()]
    assert "a write failed" in caplog.text and failing.id in caplog.text
    counts = metrics()
    assert counts["errors"].get("write_failed") == 1
    assert counts.get("dropped_write_failed") == 2 and counts["messages_dropped"] == 2
    await bystander.comm.send_to(text_data="say:still here")
    assert await bystander.next() == "still here"
    await failing.comm.send_input({"type": "websocket.disconnect", "code": 1011})
    await asyncio.sleep(0)
    assert closed_with == [1011]  # the server's disconnect runs nothing twice


class Flood(Room):
    """``flood:<n>``: n room broadcasts in one step, with coalescing holding them queued."""

    async def on_message(self, msg: Message) -> None:
        op, _, arg = msg.text().partition(":")
        if op == "flood":
            for n in range(int(arg)):
                await self.hub.broadcast_to_room("r", f"f{n}")
            return
        await super().on_message(msg)


async def test_fan_out_counts_only_accepted_frames_as_sent() -> None:
    """A room fan-out whose frames the drop policy refuses counts them dropped, not sent."""
    closed_with.clear()
    wshub = {
        "METRICS": "wshub_channels.metrics.DebugMetrics",
        "CONFIG": {"coalesce_writes": True, "send_queue_size": 2},
    }
    async with hub_clients(ALIAS, wshub) as made:
        one = await made.connect(Flood)
        before = metrics().get("messages_sent", 0)
        await one.comm.send_to(text_data="flood:5")
        assert await one.next() == "f0" and await one.next() == "f1"
        counts = metrics()
        assert counts.get("messages_sent", 0) - before == 2
        assert counts.get("dropped_drop_newest") == 3
