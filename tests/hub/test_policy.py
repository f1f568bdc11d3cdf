"""Policy: what ``WSHUB`` configures, taken in place by ``apply``, and the middleware chain.

The middleware factories and hooks below are named by dotted path, as
``WSHUB["MIDDLEWARE"]`` and ``WSHUB["HOOKS"]`` name them; they record into
``TRAIL`` so the order of the chain is visible.
"""

from __future__ import annotations

import pytest

from tests.hub.kit import FakeClient, Sender, settings
from wshub_channels.config import Config, Limits
from wshub_channels.hooks import Hooks
from wshub_channels.hub.policy import Policy
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.message import Message
from wshub_channels.metrics import DebugMetrics, NoopMetrics, active_collector
from wshub_channels.types import Client, Handler, Middleware

TRAIL: list[str] = []
PATH = "tests.hub.test_policy"


def _recording(name: str) -> Middleware:
    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            TRAIL.append(f"{name} in")
            await next_handler(client, msg)
            TRAIL.append(f"{name} out")

        return handler

    return middleware


def outer() -> Middleware:
    return _recording("outer")


def inner() -> Middleware:
    return _recording("inner")


def other() -> Middleware:
    return _recording("other")


class RecordingHooks(Hooks):
    async def on_message(self, client: Client, msg: Message) -> None:
        TRAIL.append("hooks.on_message")


class OtherHooks(Hooks):
    pass


@pytest.fixture(autouse=True)
def fresh_trail() -> None:
    TRAIL.clear()


class Trailing(FakeClient):
    async def on_message(self, msg: Message) -> None:
        TRAIL.append("client.on_message")


def client() -> Trailing:
    return Trailing("c.node!x", InMemoryHubLayer())


async def test_policy_reads_config_limits_metrics_and_hooks_from_settings() -> None:
    made = settings(
        CONFIG={"max_message_size": 100},
        LIMITS={"max_connections": 3},
        HOOKS=f"{PATH}.RecordingHooks",
    )
    policy = Policy(made, Sender)
    assert policy.settings is made
    assert policy.config == Config(max_message_size=100)
    assert policy.limits == Limits(max_connections=3)
    assert isinstance(policy.metrics, DebugMetrics)
    assert isinstance(policy.hooks, RecordingHooks)
    assert policy.sender is Sender


async def test_apply_swaps_every_part_and_the_events_follow() -> None:
    policy = Policy(settings(HOOKS=f"{PATH}.RecordingHooks"), Sender)
    first_metrics, first_events = policy.metrics, policy.events
    new = settings(
        CONFIG={"max_message_size": 7},
        LIMITS={"max_rooms_per_client": 2},
        HOOKS=f"{PATH}.OtherHooks",
    )
    policy.apply(new)
    assert policy.settings is new
    assert policy.config.max_message_size == 7
    assert policy.limits.max_rooms_per_client == 2
    assert policy.metrics is not first_metrics  # a fresh collector per settings
    assert isinstance(policy.hooks, OtherHooks)
    assert policy.events is not first_events
    assert policy.events.hooks is policy.hooks
    assert policy.events.metrics is policy.metrics
    assert active_collector() is policy.metrics


async def test_counts_bytes_only_when_the_collector_records_them() -> None:
    policy = Policy(settings(), Sender)
    assert policy.counts_bytes is True
    policy.apply(settings(METRICS=None))
    assert isinstance(policy.metrics, NoopMetrics)
    assert policy.counts_bytes is False


async def test_middleware_runs_first_listed_outermost_around_hook_then_client() -> None:
    policy = Policy(
        settings(MIDDLEWARE=[f"{PATH}.outer", f"{PATH}.inner"], HOOKS=f"{PATH}.RecordingHooks"),
        Sender,
    )
    await policy.handler(client(), Message("hi", "c.node!x"))
    assert TRAIL == [
        "outer in",
        "inner in",
        "hooks.on_message",
        "client.on_message",
        "inner out",
        "outer out",
    ]


async def test_apply_rebuilds_the_chain_from_the_new_middleware() -> None:
    policy = Policy(settings(MIDDLEWARE=[f"{PATH}.outer", f"{PATH}.inner"]), Sender)
    old_handler = policy.handler
    policy.apply(settings(MIDDLEWARE=[f"{PATH}.other"]))
    assert policy.handler is not old_handler
    await policy.handler(client(), Message("hi", "c.node!x"))
    assert TRAIL == ["other in", "client.on_message", "other out"]


async def test_without_hooks_the_innermost_handler_calls_only_the_client() -> None:
    policy = Policy(settings(HOOKS=f"{PATH}.RecordingHooks"), Sender)
    policy.apply(settings())
    assert policy.hooks is None
    await policy.handler(client(), Message("hi", "c.node!x"))
    assert TRAIL == ["client.on_message"]


class FailingHooks(Hooks):
    async def on_message(self, client: Client, msg: Message) -> None:
        TRAIL.append("hooks.on_message")
        raise RuntimeError("refused")


async def test_a_hub_on_message_that_raises_stops_the_chain_before_the_client() -> None:
    policy = Policy(settings(MIDDLEWARE=[f"{PATH}.outer"], HOOKS=f"{PATH}.FailingHooks"), Sender)
    with pytest.raises(RuntimeError, match="refused"):
        await policy.handler(client(), Message("hi", "c.node!x"))
    assert TRAIL == ["outer in", "hooks.on_message"]


def test_a_failed_apply_keeps_the_previous_settings_whole() -> None:
    first = settings(CONFIG={"max_message_size": 10}, MIDDLEWARE=[f"{PATH}.outer"])
    policy = Policy(first, Sender)
    handler, metrics = policy.handler, policy.metrics
    bad = settings(CONFIG={"max_message_size": 20}, MIDDLEWARE=[f"{PATH}.missing"])
    with pytest.raises(ImportError):
        policy.apply(bad)
    # Nothing of ``bad`` was taken, so get_hub (which compares settings) tries again.
    assert policy.settings is first
    assert policy.config.max_message_size == 10
    assert policy.metrics is metrics
    assert active_collector() is metrics
    assert policy.handler is handler
