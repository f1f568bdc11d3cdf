"""The message event of one connection, written once, and the connection's one metrics path.

:meth:`Inbound.receive` runs every frame a client sends through the same steps:

1. the size check: a frame over ``max_message_size`` (bytes, by
   :func:`~wshub_channels.utf8.frame_size`) closes with 1009;
2. counting: ``messages_received`` and ``message_bytes``, once;
3. the rate limit (``Limits``' per-connection buckets, a
   :class:`~wshub_channels.core.ratelimit.RateLimiter`);
4. the ``before_message`` hooks: hub-wide, then the consumer's;
5. the middleware chain (``WSHUB["MIDDLEWARE"]``) around the hub-wide
   ``on_message`` hook and then the consumer's (built by the hub's
   :class:`~wshub_channels.hub.policy.Policy`);
6. the ``message_received`` signal.

A message over a rate limit, whether the ``Limits`` buckets or
``rate_limit_middleware`` refused it, ends one way: it is not handled, it
reaches ``on_error`` as ``RateLimitExceeded`` (error type
``rate_limit_exceeded``), and the connection is closed with 1008 under
``close_on_rate_limit``. Anything else a step raises is reported as
``message_handling``; the connection stays open.

The consumer reports everything else it counts (handshakes, drops, failed
writes) through the same object, so it never touches the metrics collector
itself. Use from the connection's event loop.
"""

from __future__ import annotations

import logging
from typing import Protocol

from .. import signals
from ..core.ratelimit import RateLimiter, clock
from ..errors import RateLimitExceeded
from ..hub.policy import Policy
from ..log import Throttle
from ..message import Message
from ..types import Data, LocalClient
from ..utf8 import frame_size

__all__ = ["CLOSE_POLICY", "CLOSE_TOO_BIG", "Inbound", "Receiver"]

logger = logging.getLogger("wshub_channels.consumer")
_error_log = Throttle(logger, 5.0)

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


class Receiver(LocalClient, Protocol):
    """What the inbound path needs of a connection: a local client with its own hook."""

    channel_name: str
    messages_in: int

    async def before_message(self, msg: Message) -> Message: ...


class Inbound:
    """The inbound path and the counters of one connection."""

    __slots__ = ("_client", "_limiter", "_policy")

    def __init__(self, client: Receiver, policy: Policy) -> None:
        self._client = client
        self._policy = policy
        self._limiter: RateLimiter | None = None

    def accepted(self, now: float) -> None:
        """The handshake was accepted: count it, and start the rate limits' buckets."""
        limits = self._policy.limits
        limiter = RateLimiter(
            limits.max_message_rate, limits.max_bytes_per_second, limits.burst, now=now
        )
        self._limiter = limiter if limiter else None
        self._policy.metrics.increment_connections()

    async def receive(self, data: Data) -> None:
        """Handle one frame from the client (see the module doc for the steps)."""
        if await self.admit(data):
            await self.handle(data)

    async def admit(self, data: Data) -> bool:
        """Steps 1 to 3 (size, counting, rate limit): True when the frame may be handled.

        False when it was refused: over ``max_message_size`` (the connection is
        closing) or over a rate limit (reported; closing under ``close_on_rate_limit``).
        The client protocol's own frames take only these steps.
        """
        client, policy = self._client, self._policy
        size = frame_size(data)
        metrics = policy.metrics
        if size > policy.config.max_message_size:
            metrics.increment_errors("message_too_big")
            _error_log.warning("closing %s: %d-byte frame over max_message_size", client.id, size)
            await client.close(CLOSE_TOO_BIG, "message too big")
            return False
        now = client.last_seen = clock()
        client.messages_in += 1
        metrics.increment_messages_received()
        metrics.record_message_size(size)
        limiter = self._limiter
        if limiter is not None and not limiter.allow(size, now):
            await self._rate_limited(RateLimitExceeded("rate limit exceeded"))
            return False
        return True

    async def handle(self, data: Data) -> None:
        """Steps 4 to 6 (hooks, middleware and handlers, the signal) for an admitted frame."""
        client, policy = self._client, self._policy
        msg = Message(data, client.channel_name)
        hooks = policy.hooks
        try:
            if hooks is not None:
                msg = await hooks.before_message(client, msg)
            msg = await client.before_message(msg)
            await policy.handler(client, msg)
        except RateLimitExceeded as exc:  # rate_limit_middleware: the same ending
            await self._rate_limited(exc)
            return
        except Exception as exc:
            await client.report_error(exc, "message_handling")
            return
        await policy.events.signal(client, signals.message_received, message=msg)

    async def _rate_limited(self, exc: RateLimitExceeded) -> None:
        await self._client.report_error(exc, "rate_limit_exceeded")
        if self._policy.config.close_on_rate_limit:
            await self._client.close(CLOSE_POLICY, "rate limit exceeded")

    # -- the connection's other counters ---------------------------------------------

    def refused(self, exc: BaseException) -> None:
        """A handshake refused, by the class name of what refused it."""
        self._policy.metrics.increment_handshakes_refused(type(exc).__name__)

    def error(self, kind: str) -> None:
        """One error of ``kind`` (``origin_rejected``, ``write_failed`` ...)."""
        self._policy.metrics.increment_errors(kind)

    def dropped(self, reason: str | None) -> None:
        """One outbound frame discarded, for ``reason`` (default: the drop policy)."""
        policy = self._policy
        policy.metrics.increment_messages_dropped_for(reason or policy.config.drop_policy.value)

    def sent(self, data: Data) -> None:
        """One frame accepted for sending to this client."""
        policy = self._policy
        policy.metrics.increment_messages_sent(1)
        if policy.counts_bytes:
            policy.metrics.record_bytes_sent(frame_size(data))

    def ended(self) -> None:
        """An accepted connection ended."""
        self._policy.metrics.decrement_connections()
