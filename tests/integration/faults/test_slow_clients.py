"""Slow and stuck clients on uvicorn: the byte budget holds and the others are not slowed.

One uvicorn node (in-memory layer). ``CLIENTS`` receivers (200 in the CI tier; the spec's
1,000 in the ``slow`` tier) read a steady broadcast of 4 KiB messages every 50 ms, each
stamped with its send time: first for ``PHASE`` seconds with no stuck client, then a
client that never reads (a raw socket with a 4 KiB receive buffer) connects, is flooded
until its socket buffers and queue are full, and the broadcast runs for twice as long,
every other message skipping the stuck client (``exclude``). The two halves of that run
give the p99 latency without and with the stuck client side by side, under the same load.

The stuck client's queue is bounded by ``send_queue_bytes`` (1 MiB here): the server's
RSS grows by no more than that budget plus a margin, the ``drop_newest`` policy drops
(and counts) what does not fit, the stuck client keeps the oldest messages, and every
other receiver gets every message. The latency bound asserted in CI is loose (2x + 20 ms)
because the receivers run in the test process on two cores shared with other work; the
spec's 1.2x is read from the figures.

A client that reads one byte a second is disconnected by ``write_timeout`` (1 s here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.faults.kit import APP, figure
from tests.integration.peer import Peer
from tests.integration.stalled import StalledClient
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

BUDGET = 1024 * 1024  # send_queue_bytes
SIZE = 4096  # bytes per message
PERIOD = 0.05  # one broadcast every 50 ms (the receivers share the test process)
PHASE = 4.0  # seconds per phase
FLOOD = 100  # 64 KiB frames sent straight to the stuck client when it arrives


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def receive_latencies(peer: Peer, into: dict[str, list[float]]) -> None:
    """Record (now - stamp) for every broadcast this receiver gets, by the message's tag."""
    while True:
        frame = await peer.ws.recv()
        now = time.monotonic()
        text = frame if isinstance(frame, str) else frame.decode()
        for line in text.split("\n"):
            if line.startswith("t:"):
                tag, stamp, _ = line[2:].split(":", 2)
                into.setdefault(tag, []).append(now - float(stamp))


async def broadcast_for(sender: Peer, seconds: float, tag: str, stuck: str = "") -> int:
    """Broadcast for ``seconds``; with ``stuck``, every other message skips that client
    (tag "without"), the rest reach it (tag "with"): a side-by-side comparison in one run."""
    pad = "p" * (SIZE - 40)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        if stuck:
            tag, exclude = ("with", []) if n % 2 else ("without", [stuck])
        else:
            exclude = []
        stamp = time.monotonic()
        await sender.call("broadcast", text=f"t:{tag}:{stamp:.6f}:{n}:{pad}", exclude=exclude)
        n += 1
        await asyncio.sleep(max(0.0, start + n * PERIOD - time.monotonic()))
    return n


def slow_server(start: StartAsgiServer, **config: Any) -> AsgiServer:
    settings = {"CONFIG": config, "METRICS": "wshub_channels.metrics.DebugMetrics"}
    return start("uvicorn", APP, {"WSHUB_TEST_SETTINGS": json.dumps(settings)})


async def stuck_client_run(asgi_server: StartAsgiServer, clients: int) -> None:
    server = slow_server(
        asgi_server,
        send_queue_size=100_000,  # the byte bound is the one under test
        send_queue_bytes=BUDGET,
        drop_policy="drop_newest",
        write_timeout=600.0,  # the stuck client meets the drop policy, not the timeout
    )
    url = server.ws_url("/ws/control/")
    sender = await Peer.open(url, compression=None)
    receivers: list[Peer] = []
    for batch in range(0, clients, 50):
        receivers += await asyncio.gather(
            *(Peer.open(url, compression=None) for _ in range(batch, min(clients, batch + 50)))
        )
    latencies: dict[str, list[float]] = {"clean": [], "without": [], "with": []}
    readers = [asyncio.create_task(receive_latencies(p, latencies)) for p in receivers]
    try:
        await asyncio.sleep(0.5)
        base_rss = rss(server.pid)
        sent_clean = await broadcast_for(sender, PHASE, "clean")
        await async_wait_until(
            lambda: len(latencies["clean"]) >= clients * sent_clean,
            scaled(10),
            interval=0.05,
            what="every clean-phase delivery",
        )
        rss_without = rss(server.pid)

        stuck = await StalledClient(url).open()
        before = await sender.call("lookup")
        # Fill its socket buffers and its queue first (the kernel takes a few MB on
        # loopback), so that the broadcast meets a full queue.
        await sender.call("flood", client=stuck.id, count=FLOOD, size=64 * 1024)
        await asyncio.sleep(0.5)  # the flood's own work is not part of the measured phase
        peak = rss(server.pid)
        sampler_stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not sampler_stop.is_set():
                peak = max(peak, rss(server.pid))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        sent_both = await broadcast_for(sender, 2 * PHASE, "", stuck=stuck.id)
        sent_with = sent_both // 2

        def all_in() -> bool:  # every receiver has every message (bounded wait)
            return len(latencies["without"]) + len(latencies["with"]) >= clients * sent_both

        await async_wait_until(all_in, scaled(10), interval=0.05, what="every delivery")
        sampler_stop.set()
        await sampler
        after = await sender.call("lookup")
        queued = (await sender.call("queued", clients=[stuck.id]))[stuck.id]
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    dropped = after["send_dropped"] - before["send_dropped"]
    texts = await stuck.read_all()
    got = [int(text.split(":")[3]) for text in texts if text.startswith("t:")]
    flooded = sum(1 for text in texts if not text.startswith("t:"))
    stuck.close()
    growth = peak - rss_without
    p99s = {tag: p99(values) * 1000 for tag, values in latencies.items()}
    figure(
        f"uvicorn stuck client among {clients} receivers, {SIZE} B every {PERIOD * 1000:.0f} ms: "
        f"p99 {p99s['clean']:.1f} ms before it connected ({PHASE:.0f}s); then {2 * PHASE:.0f}s "
        f"interleaved: p99 {p99s['without']:.1f} ms for messages that skip it, "
        f"{p99s['with']:.1f} ms for those it is sent (ratio {p99s['with'] / p99s['without']:.2f})"
    )
    figure(
        f"uvicorn stuck client: server RSS {base_rss / 2**20:.1f} MiB at rest, "
        f"{rss_without / 2**20:.1f} after the clean phase, peak {peak / 2**20:.1f} in the stuck "
        f"phase (+{growth / 2**20:.2f} MiB; budget send_queue_bytes {BUDGET / 2**20:.0f} MiB); "
        f"{FLOOD} x 64 KiB flooded then {sent_with} broadcast, stuck client got {flooded} + "
        f"{len(got)}, {dropped} dropped (drop_newest, counted), {queued} still queued"
    )
    # Every receiver got every message: the stuck client slowed no one into a loss.
    assert len(latencies["clean"]) == clients * sent_clean
    assert len(latencies["without"]) + len(latencies["with"]) == clients * sent_both
    # drop_newest: it keeps the oldest of the messages sent to it (the odd ones)
    assert dropped > 0 and got == [2 * i + 1 for i in range(len(got))]
    total = FLOOD + sent_with
    assert flooded + len(got) + dropped == total, (flooded, got, dropped, queued)
    assert growth <= BUDGET + 3 * 2**20, growth  # the budget plus allocator slack (the flood)
    assert p99s["with"] <= 2 * p99s["without"] + 20, p99s  # loose: see the module docstring
    await asyncio.gather(sender.close(), *(peer.close() for peer in receivers))
    server.stop()


@pytest.mark.integration
async def test_a_stuck_client_among_200_stays_within_its_byte_budget(
    asgi_server: StartAsgiServer,
) -> None:
    await stuck_client_run(asgi_server, int(os.environ.get("WSHUB_FAULT_CLIENTS", 200)))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_stuck_client_among_1000_stays_within_its_byte_budget(
    asgi_server: StartAsgiServer,
) -> None:
    await stuck_client_run(asgi_server, 1000)


@pytest.mark.integration
async def test_a_client_reading_one_byte_a_second_is_cut_by_write_timeout(
    asgi_server: StartAsgiServer,
) -> None:
    server = slow_server(asgi_server, write_timeout=1.0)
    url = server.ws_url("/ws/control/")
    slow = await StalledClient(url).open()
    control = await Peer.open(url)
    stop = asyncio.Event()

    async def trickle() -> None:  # one byte a second, for as long as the socket is open
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(loop.sock_recv(slow.sock, 1), 1.0)
            await asyncio.sleep(1.0)

    reader = asyncio.create_task(trickle())
    started = time.monotonic()
    await control.call("flood", client=slow.id, count=64, size=64 * 1024)

    async def gone() -> bool:
        return (await control.call("lookup", client=slow.id))["get_client"] is None

    await async_wait_until(gone, scaled(15), interval=0.05, what="the slow reader cut")
    took = time.monotonic() - started
    stop.set()
    await reader
    figure(
        f"uvicorn client reading 1 B/s, write_timeout 1 s: disconnected {took:.2f}s after a "
        f"flood of 64 x 64 KiB began"
    )
    assert took <= 1.0 + scaled(4)
    assert (await control.call("json")) == '{"ok":true}'  # the node still serves
    slow.close()
    await control.close()
    server.stop()
