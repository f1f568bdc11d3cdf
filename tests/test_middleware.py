"""Middleware: the chain order and the built-in factories."""

from __future__ import annotations

from typing import Any

import pytest

from wshub_channels import Message, MiddlewareChain
from wshub_channels.errors import RateLimitExceeded, Unauthorized
from wshub_channels.metrics import DebugMetrics, set_active_collector
from wshub_channels.middleware import (
    metrics_middleware,
    rate_limit_middleware,
    recovery_middleware,
    require_user_middleware,
)

pytestmark = pytest.mark.unit


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


async def test_metrics_middleware_records_into_the_hub_collector_by_default() -> None:
    """With no argument it records each handling time into the active hub collector."""
    hub_metrics, own = DebugMetrics(), DebugMetrics()
    set_active_collector(hub_metrics)

    async def final(client: Any, msg: Message) -> None:
        pass

    await MiddlewareChain(final).use(metrics_middleware()).build()(_Client(), Message("x"))
    await MiddlewareChain(final).use(metrics_middleware(own)).build()(_Client(), Message("x"))
    assert hub_metrics.stats()["latency_seconds_count"] == 1
    assert own.stats()["latency_seconds_count"] == 1


async def test_recovery_middleware_reports_instead_of_raising() -> None:
    """A handler error reaches the client's report_error and does not propagate."""
    reported: list[tuple[str, str]] = []

    class Reporting(_Client):
        id = "c1"

        async def report_error(self, exc: Exception, kind: str = "message_handling") -> None:
            reported.append((str(exc), kind))

    async def final(client: Any, msg: Message) -> None:
        raise RuntimeError("boom")

    await MiddlewareChain(final).use(recovery_middleware()).build()(Reporting(), Message("x"))
    assert reported == [("boom", "message_handling")]
