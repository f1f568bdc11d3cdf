"""How a hub stops: drain, then shutdown (the hub's ``drain`` and ``shutdown``).

- :meth:`Stopping.drain` (``Hub.drain``) refuses new handshakes at once (the state turns
  ``draining``), lets clients leave on their own for up to
  ``DRAIN_TIMEOUT``, then closes the rest with 1001 (4001 under daphne) in
  batches (:mod:`wshub_channels.core.drain`), each after its queued frames.
- :meth:`Stopping.shutdown` (``Hub.shutdown``) closes whoever is left, runs every disconnect
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

from ..core.drain import DRAIN_INTERVAL, batches
from ..tasks import spawn
from ..types import LocalClient
from .connections import Connections
from .heartbeat import Heartbeat
from .lifecycle import Lifecycle

__all__ = ["CLOSE_GOING_AWAY", "Stopping"]

drain_log = logging.getLogger("wshub_channels.drain")

#: The close code of a client let go by a drain or a shutdown (4001 under daphne).
CLOSE_GOING_AWAY = 1001
#: How long shutdown waits for ``hub_state_changed("stopped")`` to be delivered.
STOP_ANNOUNCE_WAIT = 5.0


class Stopping:
    """Drain and shutdown of one hub."""

    def __init__(
        self, lifecycle: Lifecycle, connections: Connections, heartbeat: Heartbeat
    ) -> None:
        self._lifecycle = lifecycle
        self._connections = connections
        self._heartbeat = heartbeat
        self._draining: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._drain_listeners: list[Callable[[asyncio.Task[None]], None]] = []

    def register_ops(self) -> None:
        """Let other nodes start a drain here (``manage.py wshub_drain --node``)."""
        self._lifecycle.layer.register_op("drain", self._drain_op)

    def when_draining(self, listener: Callable[[asyncio.Task[None]], None]) -> None:
        """Call ``listener`` with the drain's task each time a drain begins.

        ``HubApplication`` uses it to stop the server once a drain is over,
        whatever started it. Called on the hub's loop.
        """
        self._drain_listeners.append(listener)

    def begin(self, timeout: float | None = None) -> asyncio.Task[None] | None:
        """Start draining now, or join the drain under way; call on the hub's loop.

        The state is ``draining`` when this returns: readiness fails and new
        handshakes are refused from then on. Returns the drain's task, or
        None when the hub is not running (nothing to drain).
        """
        loop = asyncio.get_running_loop()
        task = self._draining
        if task is not None and task.get_loop() is loop:
            return task
        lifecycle = self._lifecycle
        if lifecycle.state != "running" or lifecycle.home_loop is not loop:
            return None
        limit = lifecycle.policy.settings.drain_timeout if timeout is None else timeout
        lifecycle.set_state("draining")
        task = self._draining = spawn(self._drain(limit), "drain")
        for listener in list(self._drain_listeners):
            try:
                listener(task)
            except Exception:
                drain_log.exception("a drain listener failed")
        return task

    async def drain(self, timeout: float | None = None) -> None:
        """Drain this node and wait until no client is left (``Hub.drain``)."""
        task = self.begin(timeout)
        if task is not None:
            await asyncio.shield(task)

    async def _drain(self, limit: float) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        connections = self._connections
        drain_log.info("draining %d client(s); timeout %.1fs", len(connections), limit)
        await connections.wait_empty(limit)
        settings = self._lifecycle.policy.settings
        plan = batches(connections.registry.clients(), settings.drain_batch)
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

    async def _let_go(self, client: LocalClient, reason: str) -> None:
        """Close ``client`` with 1001 after its queued frames, then run its disconnect hooks."""
        try:
            await client.close(code=CLOSE_GOING_AWAY, reason=reason)
        finally:
            await client.finish(CLOSE_GOING_AWAY)

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
            if self._lifecycle.state == "stopped":
                return
            task = self._stopping = spawn(self._shutdown(), "shutdown")
        await asyncio.shield(task)

    async def _shutdown(self) -> None:
        lifecycle = self._lifecycle
        lifecycle.set_state("draining")
        clients = self._connections.registry.clients()
        closing = [self._let_go(c, "server shutting down") for c in clients]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        lifecycle.cancel_tasks()
        layer = lifecycle.layer
        if layer.shared and lifecycle.mode == "server":  # a publisher never beat
            with contextlib.suppress(Exception):
                await self._heartbeat.publish("bye")
        try:
            await layer.close()
        except Exception:  # stopped all the same: nothing more will use the layer
            drain_log.exception("closing the layer at shutdown failed")
        announced = lifecycle.set_state("stopped")
        if announced is not None:
            await asyncio.wait([announced], timeout=STOP_ANNOUNCE_WAIT)

    async def _drain_op(self, timeout: float | None = None) -> dict[str, object]:
        """The ``drain`` op other nodes call (``manage.py wshub_drain --node``).

        Starts the drain and answers at once with this node's id, state and
        client count; a node that is not running answers without draining.
        """
        self.begin(timeout)
        lifecycle = self._lifecycle
        state, clients = lifecycle.state, len(self._connections)
        return {"node_id": lifecycle.layer.node_id, "state": state, "clients": clients}
