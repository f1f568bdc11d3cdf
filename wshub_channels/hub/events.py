"""Connection events: the hub-wide hook, then the consumer's own, then the signal.

Every event of a connection runs the same sequence, written once here:

1. the hub-wide hook (``WSHUB["HOOKS"]``), if any;
2. the consumer's override of the same name;
3. the Django signal, only when it has listeners.

``before_*`` hooks run through :meth:`Events.check` and reject by raising.
``on_*`` hooks run through :meth:`Events.notify`: what they raise is
reported (logged with a throttle, counted, passed to ``on_error`` and the
``hub_error`` signal) and never reaches the connection. Failures are counted
in the metrics collector only: ``errors{type="hook_error"}`` for a hook that
raised (an ``on_error`` hook included) and ``errors{type="signal_receiver"}``
for each signal receiver that raised. Use from the connection's event loop.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .. import signals
from ..hooks import Hooks
from ..log import Throttle
from ..metrics import MetricsCollector
from ..types import Client, LocalClient

__all__ = ["EVENT_SIGNALS", "Events"]

logger = logging.getLogger("wshub_channels.events")
_error_log = Throttle(logger, 5.0)

#: The signal each ``on_<event>`` notification ends with.
EVENT_SIGNALS: dict[str, Signal] = {
    "connect": signals.client_connected,
    "close": signals.client_disconnected,
    "room_join": signals.room_joined,
    "room_leave": signals.room_left,
    "send_dropped": signals.send_dropped,
}


class Events:
    """Runs hooks and signals for the connections of one hub."""

    __slots__ = ("hooks", "metrics")

    def __init__(self, hooks: Hooks | None, metrics: MetricsCollector) -> None:
        self.hooks = hooks
        self.metrics = metrics

    async def check(self, client: LocalClient, event: str, *args: Any) -> None:
        """Run ``before_<event>``: hub-wide, then the client's. Raises to reject."""
        if self.hooks is not None:
            await getattr(self.hooks, f"before_{event}")(client, *args)
        await getattr(client, f"before_{event}")(*args)

    async def notify(
        self,
        client: LocalClient,
        event: str,
        *args: Any,
        reraise: tuple[type[Exception], ...] = (),
        **signal_kwargs: Any,
    ) -> None:
        """Run ``on_<event>`` (hub-wide, then the client's), then its signal.

        A hook that raises is reported and the sequence goes on, unless the
        error is one of ``reraise``, which propagates at once.
        """
        if self.hooks is not None:
            await self.call(
                client, getattr(self.hooks, f"on_{event}"), client, *args, reraise=reraise
            )
        await self.call(client, getattr(client, f"on_{event}"), *args, reraise=reraise)
        await self.signal(client, EVENT_SIGNALS[event], **signal_kwargs)

    async def call(
        self, client: LocalClient, hook: Any, *args: Any, reraise: tuple[type[Exception], ...] = ()
    ) -> None:
        """Await ``hook(*args)``; report what it raises instead of raising."""
        try:
            await hook(*args)
        except reraise:
            raise
        except Exception as exc:
            await self.report_error(client, exc, "hook_error")

    async def report_error(self, client: LocalClient, exc: Exception, kind: str) -> None:
        """Log (throttled) and count ``exc``; run the ``on_error`` hooks and ``hub_error``."""
        self.metrics.increment_errors(kind)
        _error_log.warning("error in %s (%s): %r", type(client).__name__, client.id, exc)
        handlers = [client.on_error(exc)]
        if self.hooks is not None:
            handlers.insert(0, self.hooks.on_error(client, exc))
        for handler in handlers:
            try:
                await handler
            except Exception:
                self.metrics.increment_errors("hook_error")
                logger.exception("on_error of %s raised", type(client).__name__)
        await self.signal(client, signals.hub_error, error=exc)

    async def signal(self, client: Client, signal: Signal, **kwargs: Any) -> None:
        """Send ``signal`` (sender: the client's class) if it has listeners; count failures."""
        sender = type(client)
        if signals.has_listeners(signal, sender):
            failed = await signals.fire(signal, sender, client=client, **kwargs)
            for _ in range(failed):  # one count per receiver that raised
                self.metrics.increment_errors("signal_receiver")

    def wants_drop_report(self, client: LocalClient, overridden: bool) -> bool:
        """True when a dropped message has anyone to tell: a hook or a signal receiver."""
        return (
            overridden
            or self.hooks is not None
            or signals.has_listeners(signals.send_dropped, type(client))
        )
