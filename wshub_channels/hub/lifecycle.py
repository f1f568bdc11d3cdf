"""The hub's lifecycle: its states, start, health, and the tasks it runs while it runs.

A hub is ``new``, then ``starting``, ``running``, ``draining`` and
``stopped``; each change is announced by ``hub_state_changed`` (sender: the
``Hub`` class), in order. :meth:`Lifecycle.start` starts the layer on the
running loop and then calls the hub's wiring once (the sink, the ops of each
component, the heartbeat). The loop the hub starts on is its home: calls
from other loops are forwarded there (see
:func:`~wshub_channels.publisher.on_home_loop`); on the publisher loop the
hub runs in publisher mode, hosting no clients.

It also owns the background tasks (:meth:`Lifecycle.spawn_task`), which
shutdown cancels, the metrics sampler, and the bus-event counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .. import signals
from ..errors import BusUnavailable, HubDraining, HubStopped
from ..layers import HubBus
from ..metrics import HubSample
from ..publisher import is_publisher_loop
from ..tasks import spawn
from .health import HealthStatus, assess
from .policy import Policy

__all__ = ["Lifecycle"]

logger = logging.getLogger("wshub_channels")


class Lifecycle:
    """States, start, health, background tasks and bus events of one hub."""

    def __init__(self, layer: HubBus, policy: Policy) -> None:
        self.layer = layer
        self.policy = policy
        self.state = "new"
        self.mode = "server"  # or "publisher"; decided by the loop the hub starts on
        self.started_at: float | None = None
        self.home_loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self._announcing: asyncio.Task[None] | None = None  # the last hub_state_changed
        #: the background tasks by name ("presence heartbeat", "idle sweeper" ...)
        self.tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        return self.state in ("running", "draining")

    def set_state(self, state: str) -> asyncio.Task[None] | None:
        """Enter ``state`` and announce it with ``hub_state_changed`` (once per change).

        Announcements go out in order, one after another; the returned task
        (None when nobody listens) is done once this one has been delivered.
        """
        if state == self.state:
            return None
        self.state = state
        sender = self.policy.sender
        if not signals.has_listeners(signals.hub_state_changed, sender):
            return None
        previous = self._announcing
        if previous is not None and previous.get_loop() is not asyncio.get_running_loop():
            previous = None

        async def announce() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await signals.fire(signals.hub_state_changed, sender, state=state)

        self._announcing = spawn(announce(), "state signal")
        return self._announcing

    async def start(self, wire: Callable[[], None]) -> None:
        """Start on the running loop: the layer, then ``wire()`` once (idempotent)."""
        loop = asyncio.get_running_loop()
        if self.running and self.home_loop is loop:
            return
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")
        if self.home_loop is not loop and (
            self.home_loop is None or not self.home_loop.is_running()
        ):
            self.home_loop, self._start_lock = loop, asyncio.Lock()
            self.state = "new"
        if self.home_loop is not loop or self._start_lock is None:
            return  # another live loop owns the hub; calls are forwarded there
        async with self._start_lock:
            if self.running:  # a draining hub still runs: it is not started again
                return
            self.set_state("starting")
            try:
                await self.layer.start()
            except BaseException:
                self.set_state("new")
                raise
            self.mode = "publisher" if is_publisher_loop(loop) else "server"
            self.layer.set_bus_listener(self._on_bus_event)
            self.started_at = time.monotonic()
            wire()
            self.set_state("running")

    def spawn_task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as the background task ``name`` while the hub runs; shutdown cancels it."""
        self.tasks[name] = spawn(coro, name)

    def cancel_tasks(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def sample_metrics(self, sample: Callable[[dict[str, int]], HubSample]) -> None:
        """Give the collector a :class:`HubSample` every ``sample_interval`` seconds
        (or every ``PRESENCE_INTERVAL``, when that is shorter)."""
        policy = self.policy
        seen = self.layer.stats_snapshot()
        while self.running:
            wanted = policy.metrics.sample_interval or 5.0
            await asyncio.sleep(min(wanted, policy.settings.presence_interval))
            now = self.layer.stats_snapshot()
            grown = {name: value - seen.get(name, 0) for name, value in now.items()}
            seen = now
            try:
                policy.metrics.observe_hub(sample(grown))
            except Exception:
                logger.exception("the metrics collector failed to take a sample")

    def _on_bus_event(self, event: str, error: BaseException | None) -> None:
        """Count bus trouble; losing the bus or being cut off also goes to ``hub_error``."""
        if event == "up":
            return
        self.policy.metrics.increment_errors(f"bus_{event}")
        sender = self.policy.sender
        if event in ("down", "dropped", "slow_consumer") and signals.has_listeners(
            signals.hub_error, sender
        ):
            problem = BusUnavailable(f"bus {event}: {error!r}")
            fired = signals.fire(signals.hub_error, sender, client=None, error=problem)
            spawn(fired, "bus signal")

    def check_accepting(self) -> None:
        """Raise ``HubDraining`` or ``HubStopped`` if new handshakes are refused."""
        if self.state == "draining":
            raise HubDraining("the hub is draining")
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")

    def health(self, clients: int) -> HealthStatus:
        uptime = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        return assess(self.state, uptime, clients, self.layer.node_id, self.layer.bus_status())
