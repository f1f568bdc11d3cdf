"""SIGTERM: drain, then shutdown, then let the server exit as it would have.

``HubApplication`` hands its hub to a :class:`DrainOnSignal` as the hub starts
on the server's loop. From then on:

- **SIGTERM** starts a drain. Both daphne (Twisted's reactor) and uvicorn
  install their own handler with ``signal.signal`` (which is why
  ``loop.add_signal_handler`` is not used here): ours is installed over it
  with ``signal.signal``, after saving it with ``signal.getsignal``. The
  handler only hops to the hub's loop with ``call_soon_threadsafe``.
- **Any drain**, whatever started it (SIGTERM, ``POST /drainz``,
  ``manage.py wshub_drain``, ``hub.drain()``), is followed by
  ``hub.shutdown()`` and then by the saved handler: the server stops as it
  would have on SIGTERM. daphne cancels every application when its reactor
  stops, and uvicorn re-raises the signal after its own shutdown (exit
  status 143), so both happen only once the drain is over.
- A SIGTERM while the hub is not running (still starting, or stopped) goes
  straight to the saved handler; so does a second SIGTERM once the drain is
  over and the saved handler is back in place.

Signal handlers can only be installed from the main thread, where both
servers run their loop. Elsewhere (``runserver`` with the autoreloader)
nothing is installed: drains still run, and the server keeps running after
them. :class:`SignalChain` is the part that touches the ``signal`` module.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..tasks import spawn
from .hub import Hub

__all__ = ["SHUTDOWN_WAIT", "DrainOnSignal", "SignalChain"]

logger = logging.getLogger("wshub_channels.drain")

#: How long the shutdown after a drain may take before the server is stopped anyway.
SHUTDOWN_WAIT = 10.0

Handler = Callable[[int, FrameType | None], Any]


class SignalChain:
    """One signal's handler installed over the one before it, which it can hand over to.

    Use from the main thread (the ``signal`` module's rule); :meth:`install`
    does nothing and returns False from any other thread.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        self.previous: Any = None  # a callable, SIG_DFL, SIG_IGN, or None (set outside Python)
        self.installed = False

    def install(self, handler: Handler) -> bool:
        """Save the current handler and install ``handler``; False if not on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.previous = signal.getsignal(self.signum)
        signal.signal(self.signum, handler)
        self.installed = True
        return True

    def chain(self, frame: FrameType | None = None) -> None:
        """Put the saved handler back and run it, as if the signal had just reached it.

        A saved ``SIG_IGN`` does nothing; ``SIG_DFL`` (or a handler set
        outside Python) raises the signal again with the default action.
        """
        previous = self.previous
        if self.installed and threading.current_thread() is threading.main_thread():
            signal.signal(self.signum, previous if previous is not None else signal.SIG_DFL)
            self.installed = False
        if previous is signal.SIG_IGN:
            return
        if callable(previous):
            previous(self.signum, frame)
            return
        signal.signal(self.signum, signal.SIG_DFL)
        signal.raise_signal(self.signum)


class DrainOnSignal:
    """Drain on SIGTERM, and stop the server after every drain (see the module docs)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.chain = SignalChain(signum)
        self._hub: Hub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exiting: asyncio.Task[None] | None = None

    def attach(self, hub: Hub) -> None:
        """On the server's loop, as ``hub`` starts: watch its drains, install the handler."""
        self._loop = asyncio.get_running_loop()
        if hub is not self._hub:
            self._hub = hub
            hub.stopping.when_draining(self._drain_began)
        if not self.chain.installed and self.chain.install(self._on_signal):
            logger.debug("SIGTERM handler installed over %r", self.chain.previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: only hop to the hub's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.chain.chain(frame)
            return
        try:
            loop.call_soon_threadsafe(self._begin, frame)
        except RuntimeError:  # the loop closed meanwhile
            self.chain.chain(frame)

    def _begin(self, frame: FrameType | None) -> None:
        """On the hub's loop: drain if the hub runs; otherwise let the server have the signal."""
        hub = self._hub
        if hub is None:
            self.chain.chain(frame)
            return
        logger.info("SIGTERM: node %s is %s", hub.node_id, hub.state)
        if hub.stopping.begin() is not None:
            return  # _drain_began stops the server once the drain is over
        if self._exiting is not None:
            return  # already on the way out
        if hub.state == "draining":  # a shutdown is under way: let it finish first
            self._exiting = spawn(self._stop_after(None), "drain exit")
            return
        self.chain.chain(frame)

    def _drain_began(self, drain: asyncio.Task[None]) -> None:
        if self._exiting is None:
            self._exiting = spawn(self._stop_after(drain), "drain exit")

    async def _stop_after(self, drain: asyncio.Task[None] | None) -> None:
        """Wait for the drain, shut the hub down, then run the server's own handler."""
        hub = self._hub
        if drain is not None:
            await asyncio.wait([drain])
        if hub is not None:
            try:
                await asyncio.wait_for(hub.shutdown(), SHUTDOWN_WAIT)
            except Exception:
                logger.exception("the shutdown after the drain failed; stopping the server")
        if not self.chain.installed:
            logger.warning("drained; no SIGTERM handler was installed, so the server keeps running")
            return
        logger.info("drained and shut down; stopping the server")
        self.chain.chain()
