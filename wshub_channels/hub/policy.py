"""The hub's policy: what ``WSHUB`` configures, and the hooks and middleware built from it.

One :class:`Policy` per hub, shared by every component and every connection
of that hub. :meth:`Policy.apply` takes a new ``HubSettings`` in place
(``get_hub`` calls it when ``WSHUB`` changed, as ``override_settings`` does in
tests), so whoever holds the policy reads the current settings.

The middleware chain (``WSHUB["MIDDLEWARE"]``) is built once per settings,
around the innermost handler: the hub-wide ``on_message`` hook, then the
client's own ``on_message``. :mod:`wshub_channels.connection.inbound` runs it.
"""

from __future__ import annotations

from ..conf import HubSettings
from ..hooks import Hooks, load_hooks
from ..message import Message
from ..metrics import MetricsCollector, counts_bytes, load_metrics, set_active_collector
from ..middleware import MiddlewareChain
from ..types import Client, Handler
from .events import Events

__all__ = ["Policy"]


class Policy:
    """Settings, config, limits, metrics, hooks, events and the middleware chain."""

    __slots__ = (
        "config",
        "counts_bytes",
        "events",
        "handler",
        "hooks",
        "limits",
        "metrics",
        "sender",
        "settings",
    )

    settings: HubSettings
    metrics: MetricsCollector
    hooks: Hooks | None
    events: Events
    handler: Handler
    counts_bytes: bool

    def __init__(self, settings: HubSettings, sender: type) -> None:
        self.sender = sender  # the sender of hub-level signals (the Hub class)
        self.apply(settings)

    def apply(self, settings: HubSettings) -> None:
        """Take config, limits, metrics, hooks and middleware from ``settings``.

        Everything is built first: if a dotted path fails to import, the
        error propagates and the policy keeps its previous settings whole.
        """
        metrics = load_metrics(settings.metrics)
        hooks = load_hooks(settings.hooks)
        handler = MiddlewareChain.from_paths(_dispatcher(hooks), settings.middleware).build()
        self.settings = settings
        self.config = settings.config
        self.limits = settings.limits
        self.metrics = metrics
        self.counts_bytes = counts_bytes(metrics)  # sizes are measured only if so
        set_active_collector(metrics)
        self.hooks = hooks
        self.events = Events(hooks, metrics)
        self.handler = handler


def _dispatcher(hooks: Hooks | None) -> Handler:
    """The innermost handler: the hub-wide ``on_message`` hook, then the client's."""
    if hooks is None:

        async def dispatch_to_client(client: Client, msg: Message) -> None:
            await client.on_message(msg)

        return dispatch_to_client
    on_message = hooks.on_message

    async def dispatch(client: Client, msg: Message) -> None:
        await on_message(client, msg)
        await client.on_message(msg)

    return dispatch
