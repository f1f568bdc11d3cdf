"""Message middleware: ``MiddlewareChain`` and the built-in factories.

A handler takes ``(client, message)``; a middleware takes a handler and
returns one. The first middleware added is the outermost, so it runs first
and finishes last. ``WSHUB["MIDDLEWARE"]`` lists dotted paths to factories
called with no arguments; the hub builds the chain once, around the
consumer's ``on_message``.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any

from django.utils.module_loading import import_string

from .core.ratelimit import RateLimiter, clock
from .errors import RateLimitExceeded, Unauthorized
from .message import Message
from .metrics import MetricsCollector, active_collector
from .types import Client, Handler, Middleware

__all__ = [
    "Handler",
    "Middleware",
    "MiddlewareChain",
    "logging_middleware",
    "metrics_middleware",
    "rate_limit_middleware",
    "recovery_middleware",
    "require_user_middleware",
]


class MiddlewareChain:
    """Builds one handler out of a handler and middlewares (first added = outermost)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._middleware: list[Middleware] = []

    def use(self, *middleware: Middleware) -> MiddlewareChain:
        self._middleware.extend(middleware)
        return self

    def build(self) -> Handler:
        handler = self._handler
        for middleware in reversed(self._middleware):
            handler = middleware(handler)
        return handler

    @classmethod
    def from_paths(cls, handler: Handler, paths: Iterable[str]) -> MiddlewareChain:
        """A chain of the factories named by dotted ``paths`` (``WSHUB["MIDDLEWARE"]``)."""
        chain = cls(handler)
        for path in paths:
            chain.use(import_string(path)())
        return chain


def recovery_middleware(logger: logging.Logger | None = None) -> Middleware:
    """Catch what the inner handlers raise, log it, and report it to ``on_error``."""
    log = logger or logging.getLogger("wshub_channels.middleware")

    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            try:
                await next_handler(client, msg)
            except Exception as exc:
                log.exception("message handler of %s raised", client.id)
                await client.report_error(exc, "message_handling")

        return handler

    return middleware


def logging_middleware(logger: logging.Logger | None = None) -> Middleware:
    """Log each message at DEBUG with its size and handling time."""
    log = logger or logging.getLogger("wshub_channels.messages")

    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            if not log.isEnabledFor(logging.DEBUG):
                await next_handler(client, msg)
                return
            started = time.perf_counter()
            await next_handler(client, msg)
            elapsed = (time.perf_counter() - started) * 1000
            log.debug("%s: %d-byte message handled in %.3f ms", client.id, len(msg), elapsed)

        return handler

    return middleware


def metrics_middleware(metrics: MetricsCollector | None = None) -> Middleware:
    """Record the handling time of each message (the hub's collector by default)."""

    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            started = time.perf_counter()
            try:
                await next_handler(client, msg)
            finally:
                (metrics or active_collector()).record_latency(time.perf_counter() - started)

        return handler

    return middleware


def rate_limit_middleware(rate: float, burst: float | None = None) -> Middleware:
    """Allow each client ``rate`` messages per second (bursts of ``burst``, default ``rate``).

    A message over the limit raises ``RateLimitExceeded`` and is not handled.
    The consumer ends it as it ends the ``Limits`` rate limits (the same
    :class:`~wshub_channels.core.ratelimit.RateLimiter`): reported to
    ``on_error`` as ``rate_limit_exceeded``, and closed with 1008 under
    ``close_on_rate_limit``.
    """
    capacity = float(burst if burst is not None else rate)
    limiters: weakref.WeakKeyDictionary[Any, RateLimiter] = weakref.WeakKeyDictionary()

    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            now = clock()
            limiter = limiters.get(client)
            if limiter is None:
                limiter = limiters[client] = RateLimiter.per_message(rate, capacity, now)
            if not limiter.allow(0, now):
                raise RateLimitExceeded(f"more than {rate:g} messages per second")
            await next_handler(client, msg)

        return handler

    return middleware


def require_user_middleware() -> Middleware:
    """Refuse messages from clients without a user id (raises ``Unauthorized``)."""

    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: Client, msg: Message) -> None:
            if client.user_id is None:
                raise Unauthorized("this endpoint needs an authenticated user")
            await next_handler(client, msg)

        return handler

    return middleware
