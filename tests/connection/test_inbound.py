"""Inbound: the one message path of a connection, and its counters.

``Inbound`` is built directly from a fake connection (a
:class:`~tests.hub.kit.FakeClient`, which records its hooks in ``calls``)
and a Policy; the hooks and middleware named below by dotted path record
into the same list, so the order of the steps is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.hub.kit import FakeClient, Sender, settings
from wshub_channels import signals
from wshub_channels.connection.inbound import CLOSE_POLICY, CLOSE_TOO_BIG, Inbound
from wshub_channels.core.ratelimit import clock
from wshub_channels.errors import RateLimitExceeded
from wshub_channels.hooks import Hooks
from wshub_channels.hub.policy import Policy
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.message import Message
from wshub_channels.middleware import rate_limit_middleware
from wshub_channels.types import Client, Handler, Middleware

PATH = "tests.connection.test_inbound"
CLIENT: list[FakeClient] = []  # the client of the running test, where hooks record


class TrailHooks(Hooks):
    async def before_message(self, client: Client, msg: Message) -> Message:
        CLIENT[0].calls.append(("hooks.before_message", msg.text()))
        return Message(msg.text().upper(), msg.client_id)

    async def on_message(self, client: Client, msg: Message) -> None:
        CLIENT[0].calls.append(("hooks.on_message", msg.text()))


class FailingHooks(Hooks):
    async def on_message(self, client: Client, msg: Message) -> None:
        raise ValueError("bad message")


def trail(name: str) -> Middleware:
    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            CLIENT[0].calls.append((f"{name} in", msg.text()))
            await next_handler(client, msg)

        return handler

    return middleware


def outer() -> Middleware:
    return trail("outer")


def inner() -> Middleware:
    return trail("inner")


def one_message() -> Middleware:
    return rate_limit_middleware(0.001, 1)  # one message, then refused for a long time


def build(**wshub: Any) -> tuple[Inbound, FakeClient, Policy]:
    client = FakeClient("c.node!x", InMemoryHubLayer())
    CLIENT[:] = [client]
    policy = Policy(settings(**wshub), Sender)
    inbound = Inbound(client, policy)
    inbound.accepted(clock())
    return inbound, client, policy


def stats(policy: Policy) -> dict[str, Any]:
    return policy.metrics.stats()  # type: ignore[attr-defined]


def handled(client: FakeClient) -> list[str]:
    return [text for step, text in client.calls if step == "client.on_message"]


@pytest.fixture
def received() -> Iterator[list[tuple[Any, Message]]]:
    heard: list[tuple[Any, Message]] = []

    def receiver(sender: Any, client: Any, message: Message, **kwargs: Any) -> None:
        heard.append((client, message))

    signals.message_received.connect(receiver)
    yield heard
    signals.message_received.disconnect(receiver)


async def test_a_frame_over_max_message_size_closes_1009_and_is_not_handled() -> None:
    inbound, client, policy = build(CONFIG={"max_message_size": 4})
    await inbound.receive("éé")  # two characters, four bytes: allowed
    await inbound.receive("ééé")  # six bytes: too big, although three characters
    assert client.closes == [(CLOSE_TOO_BIG, "message too big")]
    assert handled(client) == ["éé"]
    counted = stats(policy)
    assert counted["errors"] == {"message_too_big": 1}
    assert counted["messages_received"] == 1 and client.messages_in == 1


async def test_each_frame_is_counted_once_with_its_size_and_refreshes_last_seen() -> None:
    inbound, client, policy = build()
    await inbound.receive(b"\x00" * 10)
    await inbound.receive("abc")
    counted = stats(policy)
    assert counted["messages_received"] == 2 and client.messages_in == 2
    assert counted["message_bytes_count"] == 2 and counted["sums"]["message_bytes"] == 13
    assert counted["connections_total"] == 1  # from accepted()
    assert client.last_seen > 0


async def test_hooks_run_hub_wide_then_the_consumers_around_the_middleware() -> None:
    inbound, client, _ = build(
        HOOKS=f"{PATH}.TrailHooks", MIDDLEWARE=[f"{PATH}.outer", f"{PATH}.inner"]
    )
    await inbound.receive("hi")
    assert client.calls == [
        ("hooks.before_message", "hi"),
        ("client.before_message", "HI"),  # the hub-wide hook's new message
        ("outer in", "HI"),
        ("inner in", "HI"),
        ("hooks.on_message", "HI"),
        ("client.on_message", "HI"),
    ]


async def test_the_signal_is_sent_once_per_message_after_handling(received) -> None:
    inbound, client, policy = build()
    await inbound.receive("one")
    await inbound.receive("two")
    assert [(c, m.text()) for c, m in received] == [(client, "one"), (client, "two")]
    assert stats(policy)["messages_received"] == 2


async def test_a_handler_error_is_reported_and_neither_closes_nor_signals(received) -> None:
    inbound, client, _ = build(HOOKS=f"{PATH}.FailingHooks")
    await inbound.receive("x")
    assert [(kind, type(exc)) for kind, exc in client.errors] == [("message_handling", ValueError)]
    assert client.closes == [] and received == []


async def test_the_limits_rate_limit_refuses_reports_and_keeps_the_connection(received) -> None:
    inbound, client, policy = build(LIMITS={"max_message_rate": 0.001, "burst": 1000})
    await inbound.receive("first")
    await inbound.receive("second")
    assert handled(client) == ["first"]
    assert [(kind, type(exc)) for kind, exc in client.errors] == [
        ("rate_limit_exceeded", RateLimitExceeded)
    ]
    assert client.closes == [] and len(received) == 1
    assert stats(policy)["messages_received"] == 2  # counted before the limit


@pytest.mark.parametrize("source", ["limits", "middleware"])
async def test_both_rate_limits_end_the_same_way_under_close_on_rate_limit(source) -> None:
    wshub: dict[str, Any] = {"CONFIG": {"close_on_rate_limit": True}}
    if source == "limits":
        wshub["LIMITS"] = {"max_message_rate": 0.001, "burst": 1000}
    else:
        wshub["MIDDLEWARE"] = [f"{PATH}.one_message"]
    inbound, client, _ = build(**wshub)
    await inbound.receive("first")
    await inbound.receive("second")
    assert handled(client) == ["first"]
    assert [kind for kind, _ in client.errors] == ["rate_limit_exceeded"]
    assert client.closes == [(CLOSE_POLICY, "rate limit exceeded")]


async def test_no_limits_means_no_limiter() -> None:
    inbound, client, _ = build()
    for n in range(200):
        await inbound.receive(str(n))
    assert len(handled(client)) == 200 and client.errors == []


async def test_the_connections_other_counters_go_to_the_hubs_collector() -> None:
    inbound, _, policy = build(CONFIG={"drop_policy": "drop_oldest"})
    inbound.refused(PermissionError("no"))
    inbound.error("origin_rejected")
    inbound.dropped(None)
    inbound.dropped("queue_closed")
    inbound.sent("abcd")
    inbound.ended()
    counted = stats(policy)
    assert counted["refused_PermissionError"] == 1 and counted["handshakes_refused"] == 1
    assert counted["errors"] == {"origin_rejected": 1}
    assert counted["dropped_drop_oldest"] == 1 and counted["dropped_queue_closed"] == 1
    assert counted["messages_dropped"] == 2
    assert counted["messages_sent"] == 1 and counted["bytes_sent"] == 4
    assert counted["connections_active"] == 0 and counted["connections_total"] == 1
