"""Pure policy pieces: token bucket, middleware chain, metrics, Config and Limits."""

from __future__ import annotations

from typing import Any

import pytest

from wshub_channels import Config, DropPolicy, Limits, Message, MiddlewareChain
from wshub_channels.errors import RateLimitExceeded, Unauthorized
from wshub_channels.metrics import DebugMetrics, MetricsCollector, NoopMetrics
from wshub_channels.middleware import rate_limit_middleware, require_user_middleware
from wshub_channels.ratelimit import TokenBucket

pytestmark = pytest.mark.unit


def test_token_bucket_allows_burst_then_rate() -> None:
    """A bucket allows its capacity at once, then refills at its rate."""
    bucket = TokenBucket(rate=2, capacity=3, now=0)
    assert [bucket.take(1, 0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(1, 0.5) and not bucket.take(1, 0.5)
    assert not bucket.take(10, 100)  # cost above capacity never passes
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0)


async def test_chain_runs_first_middleware_outermost() -> None:
    """use(a, b): a runs first and finishes last, around the handler."""
    calls: list[str] = []

    def tag(name: str) -> Any:
        def middleware(next_handler: Any) -> Any:
            async def handler(client: Any, msg: Message) -> None:
                calls.append(f"{name}>")
                await next_handler(client, msg)
                calls.append(f"<{name}")

            return handler

        return middleware

    async def final(client: Any, msg: Message) -> None:
        calls.append("handler")

    handler = MiddlewareChain(final).use(tag("a")).use(tag("b")).build()
    await handler(object(), Message("x"))
    assert calls == ["a>", "b>", "handler", "<b", "<a"]


class _Client:
    user_id: str | None = None


async def test_rate_limit_and_require_user_middleware() -> None:
    """The rate-limit middleware raises past the rate; require-user refuses anonymous clients."""
    handled: list[str] = []

    async def final(client: Any, msg: Message) -> None:
        handled.append(msg.text())

    limited = MiddlewareChain(final).use(rate_limit_middleware(1, burst=2)).build()
    client = _Client()
    await limited(client, Message("1"))
    await limited(client, Message("2"))
    with pytest.raises(RateLimitExceeded):
        await limited(client, Message("3"))
    await limited(_Client(), Message("other client"))  # buckets are per client
    assert handled == ["1", "2", "other client"]
    guarded = MiddlewareChain(final).use(require_user_middleware()).build()
    with pytest.raises(Unauthorized):
        await guarded(_Client(), Message("anon"))


def test_debug_metrics_snapshot() -> None:
    """DebugMetrics counts calls and reports a snapshot; both collectors fit the protocol."""
    metrics = DebugMetrics()
    metrics.increment_connections()
    metrics.increment_connections()
    metrics.decrement_connections()
    metrics.increment_messages_sent(5)
    metrics.record_message_size(10)
    metrics.record_message_size(30)
    metrics.increment_errors("rate_limit_exceeded")
    stats = metrics.stats()
    assert stats["connections_total"] == 2 and stats["connections_active"] == 1
    assert stats["messages_sent"] == 5 and stats["message_bytes_count"] == 2
    assert stats["sums"]["message_bytes"] == 40 and stats["max"]["message_bytes"] == 30
    assert stats["errors"] == {"rate_limit_exceeded": 1}
    assert isinstance(metrics, MetricsCollector) and isinstance(NoopMetrics(), MetricsCollector)
    metrics.reset()
    assert metrics.stats()["errors"] == {}


def test_config_and_limits_builders_and_dict_form() -> None:
    """Builders return modified copies; the settings form names bad keys and values."""
    base = Config.default()
    tuned = base.with_send_queue_size(8).with_drop_policy("drop_oldest").with_coalescing(True, 100)
    assert base.send_queue_size == 256 and tuned.send_queue_size == 8
    assert tuned.drop_policy is DropPolicy.DROP_OLDEST and tuned.coalesce_max_bytes == 100
    assert Config.from_dict({"drop_policy": "disconnect"}).drop_policy is DropPolicy.DISCONNECT
    with pytest.raises(ValueError, match="bogus"):
        Config.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="send_queue_size"):
        Config.from_dict({"send_queue_size": 0})
    limits = Limits.default().with_max_connections(5).with_rate_limit(10, 1000)
    assert (limits.max_connections, limits.max_messages_per_second) == (5, 10)
    with pytest.raises(ValueError, match="max_rooms_per_client"):
        Limits.from_dict({"max_rooms_per_client": -1})
