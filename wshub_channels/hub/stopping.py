"""How a hub stops: drain, then shutdown (a mixin of :class:`~.lifecycle.Lifecycle`).

- :meth:`Stopping.drain` refuses new handshakes at once (the state turns
  ``draining``), lets clients leave on their own for up to
  ``DRAIN_TIMEOUT``, then closes the rest with 1001 (4001 under daphne) in
  batches (:mod:`wshub_channels.core.drain`), each after its queued frames.
- :meth:`Stopping.shutdown` closes whoever is left, runs every disconnect
  hook and signal, says goodbye to the cluster, closes the layer and
  enters ``stopped``.
- Other nodes start a drain through the ``drain`` op
  (``manage.py wshub_drain --node``); ``HubApplication`` learns of every
  drain through :meth:`Stopping.when_draining` and stops the server after it.

Drains and shutdowns are single tasks: concurrent callers join them.
Event loops: runs on the hub's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..conf import HubSettings
from ..core.drain import DRAIN_INTERVAL, batches
from ..core.membership import Registry
from ..layers import HubLayer
from ..publisher import on_home_loop
from ..tasks import spawn
from ..types import Connection
from .heartbeat import Heartbeat

__all__ = ["CLOSE_GOING_AWAY", "Stopping"]

drain_log = logging.getLogger("wshub_channels.drain")

#: The close code of a client let go by a drain or a shutdown (4001 under daphne).
CLOSE_GOING_AWAY = 1001
#: How long shutdown waits for ``hub_state_changed("stopped")`` to be delivered.
STOP_ANNOUNCE_WAIT = 5.0


class Stopping:
    """Drain and shutdown, for a hub with the attributes declared here."""

    state: str
    mode: str
    node_id: str
    settings: HubSettings
    layer: HubLayer
    registry: Registry
    heartbeat: Heartbeat
    home_loop: asyncio.AbstractEventLoop | None
    _empty: asyncio.Event | None
    _idle_task: asyncio.Task[None] | None
    _presence_task: asyncio.Task[None] | None
    _sample_task: asyncio.Task[None] | None

    def init_stopping(self) -> None:
        """Set up drain and shutdown; the hub's ``__init__`` calls this once."""
        self._draining: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._drain_listeners: list[Callable[[asyncio.Task[None]], None]] = []
        self.layer.register_op("drain", self._drain_op)

    def _set_state(self, state: str) -> asyncio.Task[None] | None:
        raise NotImplementedError

    def when_draining(self, listener: Callable[[asyncio.Task[None]], None]) -> None:
        """Call ``listener`` with the drain's task each time a drain begins.

        ``HubApplication`` uses it to stop the server once a drain is over,
        whatever started it. Called on the hub's loop.
        """
        self._drain_listeners.append(listener)

    def begin_drain(self, timeout: float | None = None) -> asyncio.Task[None] | None:
        """Start draining now, or join the drain under way; call on the hub's loop.

        The state is ``draining`` when this returns: readiness fails and new
        handshakes are refused from then on. Returns the drain's task, or
        None when the hub is not running (nothing to drain).
        """
        loop = asyncio.get_running_loop()
        task = self._draining
        if task is not None and task.get_loop() is loop:
            return task
        if self.state != "running" or self.home_loop is not loop:
            return None
        limit = self.settings.drain_timeout if timeout is None else timeout
        self._set_state("draining")
        task = self._draining = spawn(self._drain(limit), "drain")
        for listener in list(self._drain_listeners):
            try:
                listener(task)
            except Exception:
                drain_log.exception("a drain listener failed")
        return task

    @on_home_loop
    async def start_drain(self, timeout: float | None = None) -> bool:
        """Begin a drain (or join the one under way) without waiting for it.

        For callers on any loop (``/drainz``, the ``drain`` op). Returns True
        if the hub is draining now, False if it is not running.
        """
        return self.begin_drain(timeout) is not None

    @on_home_loop
    async def drain(self, timeout: float | None = None) -> None:
        """Drain this node: refuse new handshakes, then let its clients go.

        Clients keep being served while they leave by themselves. Those
        still connected after ``timeout`` (default ``WSHUB["DRAIN_TIMEOUT"]``)
        are closed with 1001 (4001 under daphne), their queued messages
        written first, in batches of ``WSHUB["DRAIN_BATCH"]`` every 0.2 s, and
        their disconnect hooks run. Returns once no client is left.
        Concurrent calls join one drain; the hub stays ``draining`` until
        :meth:`shutdown`.
        """
        task = self.begin_drain(timeout)
        if task is not None:
            await asyncio.shield(task)

    async def _drain(self, limit: float) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        drain_log.info("draining %d client(s); timeout %.1fs", len(self.registry), limit)
        if len(self.registry):
            self._empty = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), limit)
        plan = batches(self.registry.clients(), self.settings.drain_batch)
        closing: list[asyncio.Task[None]] = []
        previous = loop.time()
        for number, batch in enumerate(plan):
            if number:  # at least one interval after the batch before, even if it ran late
                await asyncio.sleep(max(0.0, previous + DRAIN_INTERVAL - loop.time()))
            previous = loop.time()
            drain_log.info(
                "drain batch %d/%d: closing %d client(s) at +%.3fs",
                number + 1,
                len(plan),
                len(batch),
                loop.time() - began,
            )
            closing += [spawn(self._let_go(c, "server draining"), "drain close") for c in batch]
        if closing:
            await asyncio.wait(closing)
        drain_log.info("drained in %.3fs", loop.time() - began)

    async def _let_go(self, client: Connection, reason: str) -> None:
        """Close ``client`` with 1001 after its queued frames, then run its disconnect hooks."""
        try:
            await client.close(code=CLOSE_GOING_AWAY, reason=reason)
        finally:
            await client.finish(CLOSE_GOING_AWAY)

    @on_home_loop
    async def shutdown(self) -> None:
        """Stop the hub; idempotent, and concurrent calls join one shutdown.

        Closes every client still connected with 1001 (its queued frames
        first) and runs every disconnect hook and signal, says goodbye to
        the cluster, closes the layer, and enters ``stopped``. Call
        :meth:`drain` first to let clients leave on their own.
        """
        loop = asyncio.get_running_loop()
        task = self._stopping
        if task is None or task.get_loop() is not loop:
            if self.state == "stopped":
                return
            task = self._stopping = spawn(self._shutdown(), "shutdown")
        await asyncio.shield(task)

    async def _shutdown(self) -> None:
        self._set_state("draining")
        closing = [self._let_go(c, "server shutting down") for c in self.registry.clients()]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        for task in (self._idle_task, self._presence_task, self._sample_task):
            if task is not None:
                task.cancel()
        if self.layer.shared and self.mode == "server":  # a publisher never beat
            with contextlib.suppress(Exception):
                await self.heartbeat.publish("bye")
        try:
            await self.layer.close()
        except Exception:  # stopped all the same: nothing more will use the layer
            drain_log.exception("closing the layer at shutdown failed")
        announced = self._set_state("stopped")
        if announced is not None:
            await asyncio.wait([announced], timeout=STOP_ANNOUNCE_WAIT)

    async def _drain_op(self, timeout: float | None = None) -> dict[str, object]:
        """The ``drain`` op other nodes call (``manage.py wshub_drain --node``).

        Starts the drain and answers at once with this node's id, state and
        client count; a node that is not running answers without draining.
        """
        await self.start_drain(timeout)
        return {"node_id": self.node_id, "state": self.state, "clients": len(self.registry)}
