"""A NATS cluster: how long a new subscription takes to be seen on another server.

Interest spreads between routed servers asynchronously. A hub node that just
joined a group (or room) on server 1 does not get what a node on server 2
publishes until server 2 has heard of that subscription. This measures the
delay, so the README can state it, and bounds it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest

from tests.rig.nats_cluster import NatsCluster
from wshub_channels.layers import NatsHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

SAMPLES = 20


async def test_a_new_subscription_is_seen_across_the_cluster(nats_cluster: NatsCluster) -> None:
    """group_add on a node of server 1 reaches a sender on server 2 within a bounded delay."""
    prefix = f"prop{uuid.uuid4().hex[:8]}"
    near = NatsHubLayer(servers=[nats_cluster.urls[0]], prefix=prefix)
    far = NatsHubLayer(servers=[nats_cluster.urls[1]], prefix=prefix)
    delays = []
    try:
        await near.start()
        await far.start()
        for n in range(SAMPLES):
            group = f"fresh{n}"
            channel = await near.new_channel()
            started = time.perf_counter()
            await near.group_add(group, channel)  # returns once server 1 has the subscription
            while True:
                await far.group_send(group, {"type": "probe", "n": n})
                try:
                    await asyncio.wait_for(near.receive(channel), 0.005)
                    break
                except TimeoutError:
                    assert time.perf_counter() - started < scaled(5), "interest never spread"
            delays.append(time.perf_counter() - started)
    finally:
        await near.close()
        await far.close()
    median, worst = statistics.median(delays), max(delays)
    ms = f"median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    print(f"subscription seen across the cluster: {ms} over {SAMPLES} groups")
    assert worst < scaled(2)
