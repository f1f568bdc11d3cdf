"""Global counts, cluster-wide queries and room presence events, on three hubs in one process.

Three in-memory hub layers share one named bus, so three hubs behave as the
nodes of a cluster (the same core code runs over Redis and NATS; the tests
in ``tests/integration/test_presence_cluster.py`` run real server processes).
Each hub has its own alias, and real ``HubConsumer`` connections through
``HubCommunicator``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from django.test import override_settings

from tests.inprocess import WAIT, Clients, Conn
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer, RoomEvent, get_hub
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

INTERVAL = scaled(0.1)
ALIASES = ("cq-node0", "cq-node1", "cq-node2")


class Member(HubConsumer):
    """Takes ``user`` and ``rooms`` from the query string; watches rooms named ``watch*``."""

    async def on_connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if "user" in query:
            await self.set_user_id(query["user"][0])
        for room in query.get("rooms", [""])[0].split(","):
            if room:
                await self.join_room(room)
        await self.send_text(f"id:{self.id}")

    def room_presence(self, room: str) -> bool:
        return room.startswith("watch")

    async def on_room_presence(self, event: RoomEvent) -> None:
        await self.send_json([event.room, event.event, event.client_id, event.user_id])


MEMBERS = [type(f"Member{i}", (Member,), {"channel_layer_alias": a}) for i, a in enumerate(ALIASES)]


@asynccontextmanager
async def memory_cluster(nodes: int, wshub: dict[str, Any]) -> AsyncIterator[list[Hub]]:
    """``nodes`` hubs on one in-memory bus, under the first ``nodes`` aliases."""
    bus = f"cq-{uuid.uuid4().hex[:8]}"
    aliases = ALIASES[:nodes]
    previous = {alias: channel_layers.set(alias, InMemoryHubLayer(bus=bus)) for alias in aliases}
    try:
        with override_settings(WSHUB=wshub):
            yield [get_hub(alias) for alias in aliases]
    finally:
        for alias, old in previous.items():
            await get_hub(alias).shutdown()
            if old is None:
                channel_layers.backends.pop(alias, None)
            else:
                channel_layers.set(alias, old)


@pytest.fixture
async def hubs() -> AsyncIterator[list[Hub]]:
    async with memory_cluster(3, {"PRESENCE_INTERVAL": INTERVAL}) as made:
        for hub in made:
            await hub.start()
        yield made


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close_all()


async def connect(clients: Clients, node: int, query: str = "") -> Conn:
    return await clients.connect(MEMBERS[node], query)


async def until(predicate: Any, units: float = 3) -> None:
    await async_wait_until(predicate, scaled(units), interval=INTERVAL / 4)


async def settled(hubs: list[Hub]) -> None:
    """Wait until every hub trusts its table (it listened one interval and heard the others)."""
    await until(
        lambda: all(h.cluster.table_trusted(rooms=True) and len(h.presence) == 2 for h in hubs)
    )


async def test_global_counts_from_the_table_match_the_cluster(
    hubs: list[Hub], clients: Clients
) -> None:
    """Counts converge on every node; a user on two nodes counts once."""
    for i in range(7):
        await connect(clients, i % 3, f"user=u{i % 3}&rooms=r{i % 2},all")
    await settled(hubs)
    for hub in hubs:
        await until(lambda hub=hub: hub.presence.client_count() + hub.client_count() == 7)
        assert await hub.global_client_count() == 7
        await until(lambda hub=hub: hub.presence.room_count("r0") + hub.room_count("r0") == 4)
        assert await hub.global_room_count("r0") == 4
        assert await hub.global_room_count("all") == 7
        assert await hub.global_room_count("nowhere") == 0
    # u0 has clients 0, 3 and 6 (all on node 0); u1 on node 1; u2 on node 2.
    assert await hubs[1].global_user_count() == 3
    await connect(clients, 2, "user=u0")  # u0 now on two nodes
    assert await hubs[1].global_user_count(exact=True) == 3


async def test_trusted_counts_send_nothing_on_the_bus(
    hubs: list[Hub], clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once trusted, the counts are read from the table: no scatter-gather."""
    await connect(clients, 0)
    await settled(hubs)
    gathers: list[str] = []
    real = hubs[1].layer.gather_call

    async def counting(op: str, *args: Any, **kwargs: Any) -> list[Any]:
        gathers.append(op)
        return await real(op, *args, **kwargs)

    monkeypatch.setattr(hubs[1].layer, "gather_call", counting)
    await until(lambda: hubs[1].presence.client_count() == 1)
    assert await hubs[1].global_client_count() == 1
    assert await hubs[1].global_room_count("x") == 0
    assert gathers == []


async def test_an_untrusted_table_asks_the_nodes_instead_of_answering_zero() -> None:
    """A hub that just started (an empty table) gathers the counts: never 0 by mistake."""
    clients = Clients()
    async with memory_cluster(2, {"PRESENCE_INTERVAL": scaled(30)}) as (first, late):
        await first.start()  # with no second beat during the test
        for _ in range(3):
            await connect(clients, 0, "rooms=lobby&user=a")
        await late.start()
        assert not late.cluster.table_trusted()
        assert await late.global_client_count() == 3
        assert await late.global_room_count("lobby") == 3
        assert await late.global_user_count() == 1
        nodes = await late.nodes()
        assert [(n.node_id, n.clients) for n in nodes] == sorted(
            [(first.node_id, 3), (late.node_id, 0)]
        )
        await clients.close_all()


async def test_find_client_anywhere_and_none_once_it_left(
    hubs: list[Hub], clients: Clients
) -> None:
    conns = [await connect(clients, i, f"user=p{i}&rooms=a,b") for i in range(3)]
    for hub in hubs:
        for i, conn in enumerate(conns):
            info = await hub.find_client(conn.id)
            assert info is not None
            assert (info.id, info.node, info.user_id) == (conn.id, hubs[i].node_id, f"p{i}")
            assert info.rooms == ["a", "b"] and info.connected_since is not None
    await conns[2].comm.send_to(text_data="one frame in")
    await until(lambda: hubs[2].get_client(conns[2].id).messages_in == 1)  # type: ignore[union-attr]
    info = await hubs[0].find_client(conns[2].id)
    assert info is not None and info.messages_in == 1 and info.messages_out >= 1
    await conns[2].comm.disconnect(timeout=WAIT)
    assert await hubs[0].find_client(conns[2].id) is None
    assert await hubs[0].find_client("nobody.zzzzzzzzzzzz!x") is None


async def test_cluster_clients_pages_without_repeat_or_gap(
    hubs: list[Hub], clients: Clients
) -> None:
    conns = [await connect(clients, i % 3, f"user=u{i % 4}&rooms=r{i % 2}") for i in range(11)]
    await settled(hubs)
    await until(lambda: hubs[0].presence.client_count() == 7)
    expected = sorted(
        ((c.id.rsplit("!", 1)[0].rsplit(".", 1)[-1], c.id) for c in conns),
    )
    for asker in hubs:
        seen: list[tuple[str, str]] = []
        for offset in range(0, 12, 4):
            page = await asker.cluster_clients(limit=4, offset=offset)
            assert page.total == 11 and page.missing_nodes == []
            seen.extend((info.node, info.id) for info in page.items)
        assert seen == expected
    by_room = await hubs[1].cluster_clients(room="r1", limit=100)
    assert sorted(i.id for i in by_room.items) == sorted(c.id for c in conns[1::2])
    assert by_room.total == 5
    by_user = await hubs[2].cluster_clients(user_id="u0", limit=2)
    assert by_user.total == 3 and len(by_user.items) == 2
    assert all(i.user_id == "u0" for i in by_user.items)
    both = await hubs[2].cluster_clients(room="r0", user_id="u2")
    assert sorted(i.id for i in both.items) == sorted(c.id for c in (conns[2], conns[6], conns[10]))


async def test_nodes_lists_every_node(hubs: list[Hub], clients: Clients) -> None:
    await connect(clients, 1, "rooms=x")
    await settled(hubs)
    await until(lambda: sum(n.clients for n in hubs[0].presence.nodes()) == 1)
    nodes = await hubs[0].nodes()
    assert [n.node_id for n in nodes] == sorted(h.node_id for h in hubs)
    assert {n.node_id: n.clients for n in nodes}[hubs[1].node_id] == 1


async def test_room_presence_events_reach_watching_members_on_every_node_once(
    hubs: list[Hub], clients: Clients
) -> None:
    watchers = [await connect(clients, i, "rooms=watch-me") for i in range(2)]
    assert await watchers[0].next() == f'["watch-me","joined","{watchers[1].id}",null]'
    quiet = await connect(clients, 0, "rooms=quiet")
    newcomer = await connect(clients, 2, "user=new&rooms=watch-me,quiet")
    for watcher in watchers:
        assert await watcher.next() == f'["watch-me","joined","{newcomer.id}","new"]'
    await newcomer.comm.disconnect(timeout=WAIT)
    for watcher in watchers:
        assert await watcher.next() == f'["watch-me","left","{newcomer.id}","new"]'
    for conn in (*watchers, quiet):
        assert await conn.comm.receive_nothing(timeout=scaled(0.3))


async def test_a_missed_delta_is_healed_by_asking_for_the_full_table(
    hubs: list[Hub], clients: Clients
) -> None:
    """A beat lost on the way leaves a gap; the node that sees it asks for the table,
    and its room counts are right again within two beats."""
    await connect(clients, 1, "rooms=before")
    await settled(hubs)
    await until(lambda: hubs[0].presence.room_count("before") == 1)
    await connect(clients, 1, "rooms=lost")
    beat = hubs[1].heartbeat
    beat.planner.plan(beat.head(), beat.registry.room_names, beat.registry.room_size)  # lost
    start = asyncio.get_running_loop().time()
    await until(
        lambda: hubs[0].presence.room_count("lost") == 1 and hubs[0].cluster.table_trusted(True)
    )
    assert asyncio.get_running_loop().time() - start <= 2 * INTERVAL + INTERVAL / 2
    assert await hubs[0].global_room_count("lost") == 1


async def test_a_table_still_filling_does_not_cut_a_gather_short() -> None:
    """A hub that has not listened an interval may know only some nodes: its gathers wait
    for every listener the bus counts, not for the nodes its table happens to hold."""
    clients = Clients()
    async with memory_cluster(3, {"PRESENCE_INTERVAL": scaled(30)}) as (first, second, late):
        await first.start()
        await second.start()
        await connect(clients, 0)
        await connect(clients, 1)
        await late.start()
        await until(lambda: len(late.presence) == 2)
        late.presence.leave(second.node_id, os.getpid())  # as if its beat were not in yet
        assert len(late.presence) == 1 and not late.cluster.table_trusted()
        assert await late.global_client_count() == 2
        page = await late.cluster_clients()
        assert page.total == 2 and len(page.items) == 2
        await clients.close_all()


async def test_a_bus_refusing_room_events_never_stops_a_join_or_a_close(
    hubs: list[Hub], clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bus failing, a watched room's join and leave still complete locally."""
    other = await connect(clients, 0, "rooms=watch-down")

    async def refuse(subject: str, data: bytes) -> None:
        raise ConnectionError("bus down on purpose")

    monkeypatch.setattr(hubs[0].layer.transport, "publish", refuse)
    newcomer = await connect(clients, 0, "rooms=watch-down,watch-two")
    assert await other.next() == f'["watch-down","joined","{newcomer.id}",null]'
    await newcomer.comm.disconnect(timeout=WAIT)
    assert await other.next() == f'["watch-down","left","{newcomer.id}",null]'
    assert hubs[0].get_client(newcomer.id) is None
    assert newcomer.id not in hubs[0].room_events.watchers.get("watch-two", set())


async def test_user_digests_too_big_for_the_bus_are_asked_again_in_more_ranges(
    hubs: list[Hub], clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose digests would not fit says how many users it has; the count starts
    over in more hash ranges and stays exact."""
    for i in range(24):
        await connect(clients, i % 3, f"user=u{i % 20}")
    transport = type(hubs[0].layer.transport)
    monkeypatch.setattr(transport, "max_payload", property(lambda self: 64))
    gathers: list[int] = []
    real = hubs[0].layer.gather_call

    async def counting(op: str, *args: Any, **kwargs: Any) -> list[Any]:
        if op == "user_digests":
            gathers.append(args[1])
        return await real(op, *args, **kwargs)

    monkeypatch.setattr(hubs[0].layer, "gather_call", counting)
    assert await hubs[0].global_user_count() == 20
    assert max(gathers) > 1  # it had to ask again in more ranges


async def test_a_publisher_hears_beats_never_sends_one_and_evicts_silent_nodes() -> None:
    """A hub in publisher mode (started through async_to_sync) is not a node: the servers
    never hear of it. It reads presence, and forgets a node that fell silent."""
    clients = Clients()
    async with memory_cluster(3, {"PRESENCE_INTERVAL": INTERVAL}) as (a, b, publisher):
        await a.start()
        await b.start()
        await asyncio.to_thread(async_to_sync(publisher.start))
        assert publisher.mode == "publisher"
        await until(lambda: len(publisher.presence) == 2)
        await asyncio.sleep(2 * INTERVAL)
        assert publisher.node_id not in a.presence and publisher.node_id not in b.presence
        assert "presence heartbeat" in b.lifecycle.tasks
        b.lifecycle.tasks["presence heartbeat"].cancel()  # b falls silent, without a goodbye
        await asyncio.sleep(4.5 * INTERVAL)
        await asyncio.to_thread(async_to_sync(publisher.global_client_count))  # reads the table
        assert b.node_id not in publisher.presence and a.node_id in publisher.presence
        await clients.close_all()


async def test_an_inexact_user_count_reads_the_table_and_counts_twins_twice(
    hubs: list[Hub], clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exact=False with a trusted table sums each node's users (no gather): an upper bound.

    exact=True (the default) still gathers, and counts a user on two nodes once.
    """
    await connect(clients, 0, "user=u0")
    await connect(clients, 1, "user=u0")  # u0 on two nodes
    await connect(clients, 2, "user=u2")
    await settled(hubs)
    await until(lambda: sum(info.users for info in hubs[1].presence.nodes(rooms=False)) == 2)
    gathers: list[str] = []
    real = hubs[1].layer.gather_call

    async def counting(op: str, *args: Any, **kwargs: Any) -> list[Any]:
        gathers.append(op)
        return await real(op, *args, **kwargs)

    monkeypatch.setattr(hubs[1].layer, "gather_call", counting)
    assert await hubs[1].global_user_count(exact=False) == 3
    assert gathers == []
    assert await hubs[1].global_user_count() == 2
    assert gathers and set(gathers) == {"user_digests"}
