"""Conformance cases for instances that share a broker, as the processes of a cluster do.

Each case skips, with a reason, for backends whose instances share nothing. (The
mark is on each case: a mark on this mixin class would reach every case of the
suite through inheritance.)
"""

from __future__ import annotations

import asyncio

import pytest

from ..timing import scaled
from .io import LayerFactory, nothing, recv, still_waiting

__all__ = ["CrossInstanceCases"]


class CrossInstanceCases:
    """Worker queues, groups, direct sends and forwarded group changes between instances."""

    @pytest.mark.usefixtures("shared")
    async def test_worker_queue_across_instances(self, make_layer: LayerFactory) -> None:
        """A normal channel sent to before any reader exists is read once, elsewhere."""
        sender, reader_a, reader_b = make_layer(), make_layer(), make_layer()
        await sender.send("conformance.jobs", {"type": "job", "id": 1})
        first = asyncio.ensure_future(reader_a.receive("conformance.jobs"))
        second = asyncio.ensure_future(reader_b.receive("conformance.jobs"))
        done, pending = await asyncio.wait(
            {first, second}, timeout=scaled(2), return_when=asyncio.FIRST_COMPLETED
        )
        assert [task.result() for task in done] == [{"type": "job", "id": 1}]
        await asyncio.sleep(scaled(0.2))  # the other reader must not get a second copy
        assert all(not task.done() for task in pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @pytest.mark.usefixtures("shared")
    async def test_group_send_across_instances_exactly_once(self, make_layer: LayerFactory) -> None:
        """Members on two instances each get one copy of one group_send."""
        node_a, node_b = make_layer(), make_layer()
        on_a = [await node_a.new_channel() for _ in range(2)]
        on_b = [await node_b.new_channel() for _ in range(2)]
        for channel in on_a:
            await node_a.group_add("across", channel)
        for channel in on_b:
            await node_b.group_add("across", channel)
        await node_a.group_send("across", {"type": "once"})
        for node, channels in ((node_a, on_a), (node_b, on_b)):
            for channel in channels:
                assert await recv(node, channel) == {"type": "once"}
                assert await nothing(node, channel)

    @pytest.mark.usefixtures("shared")
    async def test_direct_send_to_other_instance(self, make_layer: LayerFactory) -> None:
        """A send to a ``!`` channel owned by another instance reaches it."""
        node_a, node_b = make_layer(), make_layer()
        channel = await node_b.new_channel()
        waiter = asyncio.ensure_future(node_b.receive(channel))
        assert await still_waiting(waiter)
        await node_a.send(channel, {"type": "direct"})
        assert await asyncio.wait_for(waiter, scaled(2)) == {"type": "direct"}

    @pytest.mark.usefixtures("shared")
    async def test_group_add_for_channel_of_other_instance(self, make_layer: LayerFactory) -> None:
        """group_add on one instance for another's channel is forwarded and takes effect."""
        node_a, node_b = make_layer(), make_layer()
        channel = await node_b.new_channel()
        await node_a.group_add("forwarded", channel)
        await node_a.group_send("forwarded", {"type": "via.a"})
        assert await recv(node_b, channel) == {"type": "via.a"}
        await node_a.group_discard("forwarded", channel)
        await node_b.group_send("forwarded", {"type": "after.discard"})
        assert await nothing(node_b, channel)
