"""HubApplication: wraps the project's ASGI app to start the hub with the server.

- Under a server that speaks the lifespan protocol (uvicorn), the hub starts
  on ``lifespan.startup`` and shuts down on ``lifespan.shutdown``;
  ``HubApplication`` answers lifespan itself.
- Under daphne (no lifespan), the hub starts as soon as the server's loop
  runs, and shuts down (disconnect hooks, goodbye) before the reactor stops.
- A WebSocket handshake is never served before the hub is up: one that
  arrives while the hub is starting waits for it (up to ``START_WAIT``); if
  the hub is still not running then (its start failed), the handshake is
  refused (403) and logged as ``HubNotStarted``. While the hub drains or
  after it stopped, every handshake is refused (403: ``HubDraining``,
  ``HubStopped``), stock consumers' included.
- SIGTERM drains the hub, shuts it down, then lets the server exit; so does
  any other drain (``/drainz``, ``wshub_drain``, ``hub.drain()``). See
  :mod:`wshub_channels.hub.shutdown`.

Without ``HubApplication`` the hub starts on first use instead, and nothing
is wired to SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import HubDraining, HubError, HubNotStarted, HubStopped
from .hub.hub import Hub, get_hub
from .hub.shutdown import SHUTDOWN_WAIT, DrainOnSignal

__all__ = ["HubApplication"]

logger = logging.getLogger("wshub_channels.asgi")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class HubApplication:
    """ASGI middleware around the project's application (usually a ProtocolTypeRouter)."""

    #: How long a handshake that arrives while the hub is starting waits for it.
    START_WAIT = 5.0

    def __init__(self, app: App, alias: str | None = None) -> None:
        self.app = app
        self.alias = alias
        self._starting: asyncio.Future[None] | None = None
        self.signals = DrainOnSignal()
        if "daphne.server" in sys.modules:
            self._start_with_daphne()

    @property
    def hub(self) -> Hub:
        return get_hub(self.alias)

    def _start_with_daphne(self) -> None:
        from twisted.internet import reactor

        reactor.callWhenRunning(self._start_soon)
        # (twisted's interface declares the method without self, which confuses mypy)
        core: Any = reactor
        core.addSystemEventTrigger("before", "shutdown", self._stop_with_daphne)

    def _stop_with_daphne(self) -> Any:
        """Before the reactor stops: shut the hub down (a Deferred the reactor waits for)."""
        from twisted.internet.defer import Deferred

        return Deferred.fromFuture(asyncio.ensure_future(self._shutdown()))

    async def _shutdown(self) -> None:
        try:
            await asyncio.wait_for(self.hub.shutdown(), SHUTDOWN_WAIT)
        except Exception:
            logger.exception("the hub failed to shut down cleanly")

    def _start_soon(self) -> None:
        """Begin starting the hub on the running loop, without waiting for it."""
        if self._starting is None or (self._starting.done() and self.hub.state == "new"):
            self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            await self._start_hub()
        except Exception:
            logger.exception("the hub failed to start")

    async def _start_hub(self) -> None:
        """Start the hub on the server's loop, with the SIGTERM drain wired to it."""
        hub = self.hub
        self.signals.attach(hub)
        await hub.start()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "websocket":
            refusal = await self._admission()
            if refusal is not None:
                await self._refuse(refusal, receive, send)
                return
        await self.app(scope, receive, send)

    async def _admission(self) -> HubError | None:
        """None if a handshake may go on; else why it is refused."""
        state = self.hub.state
        if state == "draining":
            return HubDraining("the hub is draining; refusing the handshake")
        if state == "stopped":
            return HubStopped("the hub has shut down; refusing the handshake")
        if state == "running" or await self._await_start():
            return None
        return HubNotStarted(f"the hub is {self.hub.state}; refusing the handshake")

    async def _await_start(self) -> bool:
        """Wait (up to ``START_WAIT`` seconds) for a start under way; True once running."""
        self._start_soon()
        if self._starting is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._starting), self.START_WAIT)
        return self.hub.running

    async def _refuse(self, error: HubError, receive: Receive, send: Send) -> None:
        if isinstance(error, HubNotStarted):
            logger.warning("%s", error)
        else:
            logger.info("%s: %s", type(error).__name__, error)
        self.hub.metrics.increment_handshakes_refused(type(error).__name__)
        message = await receive()
        if message.get("type") == "websocket.connect":
            await send({"type": "websocket.close", "code": 1013})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start_hub()
                except Exception as exc:
                    logger.exception("the hub failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
