"""FanOut: beyond the batch size a fan-out yields to the loop, and nothing overtakes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wshub_channels.hub.fanout import FanOut
from wshub_channels.types import AsgiMessage

pytestmark = pytest.mark.unit


class Queue:
    def __init__(self, log: list[tuple[int, str]], n: int) -> None:
        self.log, self.n = log, n
        self.closed = False
        self.queued = 0

    def push(self, message: AsgiMessage) -> bool:
        self.log.append((self.n, message["text"]))
        return True

    async def push_within(self, message: AsgiMessage, timeout: float) -> bool:
        return self.push(message)


def msg(text: str) -> AsgiMessage:
    return {"type": "websocket.send", "text": text}


async def test_a_small_fan_out_is_served_in_the_call() -> None:
    log: list[tuple[int, str]] = []
    done: list[int] = []
    fan = FanOut(lambda: 10)
    assert fan.push(iter([Queue(log, i) for i in range(10)]), msg("a"), done.append) is None
    assert done == [10] and len(log) == 10 and fan.idle


async def test_a_large_fan_out_yields_between_batches_and_later_sends_wait() -> None:
    log: list[tuple[int, str]] = []
    done: list[int] = []
    fan = FanOut(lambda: 10)
    queues = [Queue(log, i) for i in range(35)]
    ticks: list[int] = []

    async def ticker() -> None:
        for _ in range(10):
            ticks.append(len(log))
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    first = fan.push(iter(queues), msg("a"), done.append)
    assert first is not None and len(log) == 10 and not fan.idle
    second = fan.push(iter(queues[:3]), msg("b"), done.append)  # small, but behind
    called: Any = fan.call(lambda: log.append((-1, "call")) or "ran")
    assert second is not None and len(log) == 10
    assert await first == 35 and await second == 3 and await called == "ran"
    await ticking
    assert [text for _, text in log] == ["a"] * 35 + ["b"] * 3 + ["call"]
    assert [n for n, _ in log[:35]] == list(range(35))  # per-connection order as given
    assert any(10 <= tick < 35 for tick in ticks)  # the loop ran others mid fan-out
    assert done == [35, 3] and fan.idle
    assert fan.push(iter(queues[:2]), msg("c"), done.append) is None  # idle again: at once
