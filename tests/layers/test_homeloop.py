"""Loop binding written once: on_home runs a method on its object's home loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from wshub_channels.layers.homeloop import HomeLoop, on_home, settle_on_home

pytestmark = pytest.mark.unit

Loop = asyncio.AbstractEventLoop


class _Clients:
    """A stand-in backend: records where each call ran and how often it opened."""

    def __init__(self) -> None:
        self.home = HomeLoop(self._open, self._shut, self._abandon)
        self.opens = 0
        self.shuts = 0
        self.abandons = 0
        self.settled: list[tuple[bytes, asyncio.AbstractEventLoop]] = []
        self.reports: list[str] = []
        self.report = self._report

    def _report(self, event: str, error: BaseException | None) -> None:
        self.reports.append(event)

    async def _open(self) -> None:
        self.opens += 1
        await asyncio.sleep(0)

    async def _shut(self) -> None:
        self.shuts += 1

    def _abandon(self) -> None:
        self.abandons += 1

    @on_home
    async def where(
        self, tag: str, *, twice: bool = False
    ) -> tuple[str, asyncio.AbstractEventLoop]:
        return (tag * 2 if twice else tag), asyncio.get_running_loop()

    @settle_on_home
    def settle(self, data: bytes) -> None:
        self.settled.append((data, asyncio.get_running_loop()))


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_the_first_caller_opens_once_and_its_loop_becomes_home() -> None:
    clients = _Clients()
    results = await asyncio.gather(*(clients.where(str(n)) for n in range(5)))
    here = asyncio.get_running_loop()
    assert clients.opens == 1 and clients.home.loop is here and clients.home.opened
    assert [tag for tag, _ in results] == ["0", "1", "2", "3", "4"]
    assert all(loop is here for _, loop in results)
    assert await clients.where("a", twice=True) == ("aa", here)  # keyword arguments too


async def test_a_call_from_another_loop_runs_on_home(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    clients = _Clients()
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(clients.where("x"), other_loop))
    assert clients.home.loop is other_loop
    tag, ran_on = await clients.where("y")  # from this test's loop
    assert (tag, ran_on) == ("y", other_loop) and clients.opens == 1


async def test_a_stopped_home_is_abandoned_and_the_caller_becomes_home() -> None:
    clients = _Clients()
    opener = threading.Thread(target=asyncio.run, args=(clients.home.connect(),))
    opener.start()  # that loop opens, then stops and closes
    opener.join(5)
    _, ran_on = await clients.where("z")
    assert ran_on is asyncio.get_running_loop()
    assert clients.abandons == 1 and clients.opens == 2


async def test_close_shuts_on_home_and_the_next_call_opens_again() -> None:
    clients = _Clients()
    await clients.where("a")
    await clients.home.close()
    assert clients.shuts == 1 and not clients.home.opened
    await clients.where("b")
    assert clients.opens == 2


async def test_settle_runs_on_home_or_reports_the_message_lost(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    clients = _Clients()
    clients.settle(b"before")  # no home yet: at once
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(clients.where("x"), other_loop))
    clients.settle(b"later")  # from this loop: soon, on the home loop
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0), other_loop))
    assert [(data, loop is other_loop) for data, loop in clients.settled[1:]] == [(b"later", True)]
    clients.home.loop = closed = asyncio.new_event_loop()
    closed.close()
    clients.settle(b"gone")
    assert clients.reports == ["receive_lost"]
