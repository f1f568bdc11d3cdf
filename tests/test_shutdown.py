"""The SIGTERM glue: a handler installed over the server's, and the drain it starts.

Real signals reach this process: SIGUSR1 stands in for SIGTERM (so a mistake
cannot end the test run), with a recording handler in the server's place.
A child process checks the case of a default action, where the signal ends
the process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from types import FrameType

import pytest

from tests.inprocess import WAIT, Clients, hub_clients
from tests.rig.timing import async_wait_until
from tests.test_stopping import ALIAS, Leaver, closed_with
from wshub_channels import get_hub
from wshub_channels.hub.hub import Hub
from wshub_channels.hub.shutdown import DrainOnSignal, SignalChain
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

SIG = signal.SIGUSR1


class ServerHandler:
    """Stands for the server's own handler: records what reached it."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls.append(signum)


@pytest.fixture
def server_handler() -> Iterator[ServerHandler]:
    handler = ServerHandler()
    before = signal.signal(SIG, handler)
    yield handler
    signal.signal(SIG, before)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    settings = {"CHANNEL_LAYER": ALIAS, "DRAIN_TIMEOUT": scaled(5), "DRAIN_BATCH": 10}
    async with hub_clients(ALIAS, settings) as made:
        yield made


def hub() -> Hub:
    return get_hub(ALIAS)


def test_the_chain_takes_the_signal_then_hands_it_back(server_handler: ServerHandler) -> None:
    """Ours runs instead of the saved handler; chain() reinstalls and runs it."""
    ours: list[int] = []
    chain = SignalChain(SIG)
    assert chain.install(lambda signum, frame: ours.append(signum))
    assert chain.previous is server_handler
    signal.raise_signal(SIG)
    assert ours == [SIG] and server_handler.calls == []
    chain.chain()
    assert server_handler.calls == [SIG] and not chain.installed
    assert signal.getsignal(SIG) is server_handler
    signal.raise_signal(SIG)  # a second signal goes straight to the server
    assert ours == [SIG] and server_handler.calls == [SIG, SIG]


def test_a_saved_sig_ign_stays_ignored() -> None:
    before = signal.signal(SIG, signal.SIG_IGN)
    try:
        chain = SignalChain(SIG)
        assert chain.install(lambda signum, frame: None)
        chain.chain()  # nothing happens, and the signal is ignored again
        assert signal.getsignal(SIG) == signal.SIG_IGN
    finally:
        signal.signal(SIG, before)


def test_handlers_are_only_installed_from_the_main_thread(server_handler: ServerHandler) -> None:
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(SignalChain(SIG).install(print)))
    thread.start()
    thread.join()
    assert results == [False] and signal.getsignal(SIG) is server_handler


def test_a_saved_default_action_ends_the_process_with_the_signal() -> None:
    """With SIG_DFL saved, chain() raises SIGTERM again: the process dies of it (143)."""
    script = (
        "import signal\n"
        "from wshub_channels.hub.shutdown import SignalChain\n"
        "chain = SignalChain(signal.SIGTERM)\n"
        "chain.install(lambda s, f: None)\n"
        "signal.raise_signal(signal.SIGTERM)\n"  # ours: swallowed
        "print('survived', flush=True)\n"
        "chain.chain()\n"
        "print('not reached', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=scaled(20)
    )
    assert done.stdout == "survived\n"
    assert done.returncode == -signal.SIGTERM


async def test_a_signal_drains_then_shuts_down_then_reaches_the_server(
    clients: Clients, server_handler: ServerHandler
) -> None:
    """The signal turns the hub to draining at once; the server hears of it after shutdown."""
    conn = await clients.connect(Leaver)
    glue = DrainOnSignal(SIG)
    glue.attach(hub())
    signal.raise_signal(SIG)
    await async_wait_until(lambda: hub().state == "draining", WAIT, what="draining")
    assert server_handler.calls == []
    await asyncio.sleep(scaled(0.1))
    assert server_handler.calls == []  # still draining: the client is connected
    await conn.comm.disconnect()
    await async_wait_until(lambda: server_handler.calls == [SIG], WAIT, what="chained")
    assert hub().state == "stopped"
    assert signal.getsignal(SIG) is server_handler


async def test_a_second_signal_during_the_drain_joins_it(
    clients: Clients, server_handler: ServerHandler
) -> None:
    """A preStop /drainz then the SIGTERM: one drain, and the server hears once, at the end."""
    conn = await clients.connect(Leaver)
    glue = DrainOnSignal(SIG)
    glue.attach(hub())
    assert await hub().start_drain(timeout=scaled(0.2))
    signal.raise_signal(SIG)
    await asyncio.sleep(0)
    assert await closed_with(conn) == 1001
    await async_wait_until(lambda: server_handler.calls == [SIG], WAIT, what="chained")
    assert hub().state == "stopped"


async def test_a_signal_before_the_hub_runs_goes_straight_to_the_server(
    clients: Clients, server_handler: ServerHandler
) -> None:
    glue = DrainOnSignal(SIG)
    glue.attach(hub())
    assert hub().state == "new"
    signal.raise_signal(SIG)
    await async_wait_until(lambda: server_handler.calls == [SIG], WAIT, what="chained")
    assert hub().state == "new"
