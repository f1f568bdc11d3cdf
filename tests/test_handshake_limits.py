"""Handshake slots and per-user limits are exact on every path.

A handshake holds a connection slot from the limit checks to registration.
Whatever ends it (a refusal, an unexpected error in a hook, a failing
``group_add`` or ``accept``, cancellation) gives the slot back, and the
registry's pending counters return to zero. A user id set during the
handshake moves the slot to that user, so ``max_connections_per_user``
holds at registration; a refused ``set_user_id`` changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.test import override_settings

from tests.inprocess import WAIT, Clients, hub_clients
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer, get_hub, signals
from wshub_channels.errors import MaxUserConnectionsReached, Unauthorized
from wshub_channels.hooks import Hooks
from wshub_channels.hub.hub import Hub
from wshub_channels.layers.base import GROUPS
from wshub_channels.types import Client

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-handshake-limits"
HERE = __name__
METRICS = "wshub_channels.metrics.DebugMetrics"

#: Errors the consumers' on_error saw.
errors: list[str] = []
#: Handshakes with ``hold`` in their query wait on this in before_connect.
gate: asyncio.Event | None = None


def _query(consumer: HubConsumer) -> dict[str, list[str]]:
    return parse_qs(consumer.scope["query_string"].decode())


class Named(HubConsumer):
    """Takes ``user`` from the query in before_connect; ``boom`` raises; ``hold`` waits."""

    channel_layer_alias = ALIAS

    async def before_connect(self) -> None:
        query = _query(self)
        if "user" in query:
            await self.set_user_id(query["user"][0])
        if "boom" in query:
            raise RuntimeError("boom in before_connect")
        if "deny" in query:
            raise Unauthorized("denied")
        if "hold" in query and gate is not None:
            await gate.wait()

    async def on_connect(self) -> None:
        await self.send_text(f"id:{self.id}")

    async def on_error(self, error: Exception) -> None:
        errors.append(type(error).__name__)


class BadGroup(Named):
    """Its second group name is invalid: group_add raises InvalidLayerName (a TypeError)."""

    groups = ["handshake-ok", "not a valid group name!"]


class BadAccept(Named):
    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        raise OSError("accept failed")


@dataclass
class FakeUser:
    pk: Any
    is_authenticated: bool


class BoomHooks(Hooks):
    async def before_connect(self, client: Client) -> None:
        if b"hubboom" in client.scope["query_string"]:  # type: ignore[attr-defined]
            raise ValueError("boom in the hub-wide hook")


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    global gate
    errors.clear()
    gate = asyncio.Event()
    async with hub_clients(ALIAS) as made:
        yield made
        gate.set()
    errors.clear()


def hub() -> Hub:
    return get_hub(ALIAS)


def assert_no_slot_held() -> None:
    registry = hub().connections.registry
    assert registry.pending == 0
    assert registry.pending_users == {}


async def refused(clients: Clients, consumer: type[HubConsumer], query: str = "") -> None:
    comm = clients.communicator(consumer, query)
    assert await comm.connect(timeout=WAIT) == (False, 1008)
    await comm.wait(timeout=WAIT)  # the consumer stopped by itself, without raising


# -- slots come back on every path --------------------------------------------------------


@pytest.mark.parametrize(
    ("consumer", "query", "error"),
    [
        (Named, "boom=1", "RuntimeError"),
        (Named, "hubboom=1", "ValueError"),
        (BadGroup, "", "InvalidLayerName"),
        (BadAccept, "", "OSError"),
    ],
    ids=["before_connect", "hub-hook", "group_add", "accept"],
)
async def test_an_unexpected_handshake_error_refuses_and_frees_the_slot(
    clients: Clients, consumer: type[HubConsumer], query: str, error: str
) -> None:
    """5 handshakes failing with any exception under max_connections=2 leave room for 2."""
    signalled: list[str] = []

    async def on_hub_error(sender: Any, client: Any, **kwargs: Any) -> None:
        signalled.append(type(kwargs["error"]).__name__)

    signals.hub_error.connect(on_hub_error, weak=False)
    wshub = {"LIMITS": {"max_connections": 2}, "HOOKS": f"{HERE}.BoomHooks", "METRICS": METRICS}
    with override_settings(WSHUB=wshub):
        try:
            for _ in range(5):
                await refused(clients, consumer, query)
        finally:
            signals.hub_error.disconnect(on_hub_error)
        assert signalled == [error] * 5
        assert_no_slot_held()
        assert errors == [error] * 5  # reported to on_error
        stats = hub().metrics.stats()
        assert stats[f"refused_{error}"] == 5
        assert stats["errors"]["handshake_error"] == 5
        assert stats["handshakes_refused"] == 5
        await clients.connect(Named)
        await clients.connect(Named)
        assert hub().client_count() == 2
        await refused(clients, Named)  # the limit still holds
        assert hub().metrics.stats()["refused_MaxConnectionsReached"] == 1
        assert_no_slot_held()


async def test_a_failed_group_add_leaves_no_group_behind(clients: Clients) -> None:
    """Groups joined before the failing one are left, and the channel freed, on refusal."""
    comm = clients.communicator(BadGroup)
    assert await comm.connect(timeout=WAIT) == (False, 1008)
    await comm.wait(timeout=WAIT)
    layer = hub().layer
    assert layer.local_members(GROUPS, "handshake-ok") is None
    assert layer.sizes()["channels"] == 0


async def test_a_cancelled_handshake_frees_its_slot(clients: Clients) -> None:
    """Cancelling the consumer while before_connect waits gives the slot back."""
    with override_settings(WSHUB={"LIMITS": {"max_connections": 1}}):
        comm = clients.communicator(Named, "user=A&hold=1")
        await hub().start()
        await comm.send_input({"type": "websocket.connect"})
        await async_wait_until(lambda: hub().connections.registry.pending == 1, WAIT)
        comm.future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await comm.future
        assert_no_slot_held()
        await clients.connect(Named, "user=A")


# -- user ids set during the handshake ------------------------------------------------------


async def test_set_user_id_in_before_connect_holds_the_per_user_limit(clients: Clients) -> None:
    """A user id set in before_connect counts at once: user A can't pass the limit."""
    with override_settings(WSHUB={"LIMITS": {"max_connections_per_user": 1}}):
        a = await clients.connect(Named, "user=A")
        await refused(clients, Named, "user=A")
        assert [c.id for c in hub().get_clients_by_user_id("A")] == [a.id]
        await clients.connect(Named, "user=B")
        assert_no_slot_held()


async def test_set_user_id_in_before_connect_does_not_lock_the_scope_user_out(
    clients: Clients,
) -> None:
    """The slot reserved for the scope's user moves to the new id and is released there."""
    user = FakeUser(pk=7, is_authenticated=True)
    with override_settings(WSHUB={"LIMITS": {"max_connections_per_user": 1}}):
        b = await clients.connect(Named, "user=B", user=user)
        assert hub().connections.registry.pending_users == {}
        await b.comm.disconnect(timeout=WAIT)
        seven = await clients.connect(Named, user=user)  # user 7 is not locked out
        assert [c.id for c in hub().get_clients_by_user_id("7")] == [seven.id]
        await clients.connect(Named, "user=B")
        assert_no_slot_held()


async def test_concurrent_handshakes_of_one_user_respect_the_limit(clients: Clients) -> None:
    """A second handshake of user A is refused while the first still waits in before_connect."""
    assert gate is not None
    with override_settings(WSHUB={"LIMITS": {"max_connections_per_user": 1}}):
        first = clients.communicator(Named, "user=A&hold=1")
        pending = asyncio.create_task(first.connect(timeout=WAIT))
        await async_wait_until(lambda: hub().connections.registry.pending_users == {"A": 1}, WAIT)
        await refused(clients, Named, "user=A")
        gate.set()
        assert (await pending)[0] is True
        assert await first.receive_from(timeout=WAIT) == f"id:{first.client.id}"  # type: ignore[union-attr]
        assert len(hub().get_clients_by_user_id("A")) == 1
        assert_no_slot_held()


async def test_plain_refusals_after_set_user_id_free_the_moved_slot(clients: Clients) -> None:
    """Unauthorized or the limit, after a user id was set in before_connect: no slot kept."""
    with override_settings(
        WSHUB={"LIMITS": {"max_connections_per_user": 1, "max_connections": 2}, "METRICS": METRICS}
    ):
        for _ in range(3):
            await refused(clients, Named, "user=A&deny=1")
        assert_no_slot_held()
        await clients.connect(Named, "user=A")
        await refused(clients, Named, "user=A")
        assert_no_slot_held()
        refusals = hub().metrics.stats()
        assert refusals["refused_Unauthorized"] == 3
        assert refusals["refused_MaxUserConnectionsReached"] == 1
        assert errors == []  # plain refusals are not errors


# -- set_user_id after connect -------------------------------------------------------------


async def test_a_refused_set_user_id_changes_nothing(clients: Clients) -> None:
    """Refused at the limit, the client keeps its user id and stays reachable under it."""
    with override_settings(WSHUB={"LIMITS": {"max_connections_per_user": 1}, "METRICS": METRICS}):
        await clients.connect(Named, "user=A")
        b = await clients.connect(Named, "user=B")
        client_b = hub().get_client(b.id)
        assert client_b is not None
        with pytest.raises(MaxUserConnectionsReached):
            await client_b.set_user_id("A")
        assert client_b.user_id == "B"
        assert [c.id for c in hub().get_clients_by_user_id("B")] == [b.id]
        assert len(hub().get_clients_by_user_id("A")) == 1
        await hub().send_to_user("B", "still B")
        assert await b.next() == "still B"
        assert hub().metrics.stats()["errors"]["connection_limit"] == 1
        await client_b.set_user_id("C")  # a free id still works
        assert hub().get_clients_by_user_id("B") == []
        assert [c.id for c in hub().get_clients_by_user_id("C")] == [b.id]


async def test_set_user_id_after_connect_counts_handshakes_in_progress(
    clients: Clients,
) -> None:
    """A connected client can't take user A's last slot from A's handshake in progress."""
    assert gate is not None
    with override_settings(WSHUB={"LIMITS": {"max_connections_per_user": 1}}):
        x = await clients.connect(Named, "user=X")
        first = clients.communicator(Named, "user=A&hold=1")
        pending = asyncio.create_task(first.connect(timeout=WAIT))
        await async_wait_until(lambda: hub().connections.registry.pending_users == {"A": 1}, WAIT)
        client_x = hub().get_client(x.id)
        assert client_x is not None
        with pytest.raises(MaxUserConnectionsReached):
            await client_x.set_user_id("A")
        assert client_x.user_id == "X"
        gate.set()
        assert (await pending)[0] is True
        assert len(hub().get_clients_by_user_id("A")) == 1
        assert_no_slot_held()
