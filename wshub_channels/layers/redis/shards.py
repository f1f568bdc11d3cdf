"""Sharded subscriptions on Redis Cluster: one subscriber per master, each for its slots.

On Redis Cluster a node subscribes with ``SSUBSCRIBE``, on the master that
owns each channel's hash slot, so a ``SPUBLISH`` goes to one shard (its
master and replicas) instead of every node of the cluster. A
:class:`ShardedSubscriber` keeps one :class:`~.subscriber.Subscriber`
(``sharded``) per master, each holding the wanted subjects whose slots that
master owns, and a supervising task that keeps the set of masters and the
slot map current:

- it refreshes the slot map (``CLUSTER SLOTS``, through the command
  client's node manager) when a shard subscriber fails, answers ``MOVED``
  or loses a channel to a slot migration, every 0.2 s while any shard is
  down, and every two ping intervals otherwise;
- then starts a subscriber for each new master, stops those of nodes that
  are no longer masters (a failed master, replaced by its promoted
  replica), and makes every other one catch up with its slots (a barrier
  round: subscribe what moved in, unsubscribe what moved out).

The bus is "up" while every master's subscriber is; it reports "down" once
when that stops and "up" once when it holds again.

Loop safety: every method runs on the bus's home loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ...tasks import spawn
from ..bus import Reporter, Sink
from ..supervisor import Supervisor
from .client import aioredis, info_field, key_slot
from .subscriber import Subscriber

__all__ = ["ShardedSubscriber"]

logger = logging.getLogger("wshub_channels.layers.redis")

#: Seconds between slot-map refreshes while a shard is down (a failover in progress).
REPAIR_INTERVAL = 0.2


class ShardedSubscriber(Supervisor):
    """The subscriptions of one node on a Redis Cluster: a subscriber per master.

    ``client()`` returns the command client (a ``RedisCluster``), whose slot
    map this reads and refreshes; ``wanted()`` every subject to hold.
    """

    what = "redis cluster subscriber"

    def __init__(
        self,
        client: Callable[[], aioredis.RedisCluster],
        wanted: Callable[[], set[str]],
        dispatch: Sink,
        report: Reporter,
        command_timeout: float,
        ping_interval: float,
    ) -> None:
        super().__init__()
        self._client = client
        self._wanted = wanted
        self._dispatch = dispatch
        self._report = report
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self.shards: dict[str, Subscriber] = {}
        self._kick = asyncio.Event()
        self._was_up = False

    # -- routing -------------------------------------------------------------------

    def owner(self, subject: str) -> str | None:
        """The name (host:port) of the master that owns ``subject``'s slot, as last known."""
        try:
            nodes = self._client().nodes_manager.slots_cache.get(key_slot(subject.encode()))
        except ConnectionError:
            return None
        return nodes[0].name if nodes else None

    def _shard_wanted(self, name: str) -> Callable[[], set[str]]:
        return lambda: {s for s in self._wanted() if self.owner(s) == name}

    async def subscribe(self, subject: str) -> None:
        shard = self.shards.get(self.owner(subject) or "")
        if shard is not None:
            await shard.subscribe(subject)
        # else: no subscriber for that master yet; the next refresh subscribes it

    async def unsubscribe(self, subject: str) -> None:
        shard = self.shards.get(self.owner(subject) or "")
        if shard is not None:
            await shard.unsubscribe(subject)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._kick = asyncio.Event()
        super().start()

    async def stop(self) -> None:
        await self._stop_task()
        shards, self.shards = self.shards, {}
        for shard in shards.values():
            await shard.stop()

    def abandon(self) -> None:
        super().abandon()
        for shard in self.shards.values():
            shard.abandon()
        self.shards = {}
        self._was_up = False

    def refresh_soon(self) -> None:
        """Refresh the slot map and the shards at once (a shard saw the topology change)."""
        self._kick.set()

    async def _supervise(self, generation: int) -> None:
        while generation == self._generation:
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("refreshing the Redis Cluster slot map failed", exc_info=True)
                self.last_error = repr(exc)
            if generation != self._generation:
                return
            self._update_up()
            wait = REPAIR_INTERVAL if not self.up else 2 * self.ping_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), wait)
            self._kick.clear()

    async def _refresh(self) -> None:
        """Read the slot map again, then match the shard subscribers to its masters."""
        client = self._client()
        if getattr(client, "_initialize", False):
            await client.initialize()
        else:
            await client.nodes_manager.initialize()
        masters: dict[str, Any] = {}
        for nodes in client.nodes_manager.slots_cache.values():
            if nodes:
                masters.setdefault(nodes[0].name, nodes[0])
        for name in [n for n in self.shards if n not in masters]:
            logger.info("Redis Cluster: %s no longer owns slots; leaving it", name)
            spawn(self.shards.pop(name).stop(), "stop a redis shard subscriber")
        for name, node in masters.items():
            shard = self.shards.get(name)
            if shard is None:
                shard = self.shards[name] = self._make_shard(name, node)
                shard.start()
            else:
                shard.resync()

    def _make_shard(self, name: str, node: Any) -> Subscriber:
        def connection() -> Any:
            kwargs = {**node.connection_kwargs, "socket_timeout": None}
            kwargs.pop("retry", None)
            return node.connection_class(**kwargs)

        async def same_server(run_id: str) -> bool:
            conn = connection()
            try:
                await asyncio.wait_for(conn.connect(), self.command_timeout)
                await conn.send_command("INFO", "server")
                info = await asyncio.wait_for(conn.read_response(), self.command_timeout)
                return info_field(info, "run_id") == run_id
            except Exception:
                return False
            finally:
                with contextlib.suppress(Exception):
                    await conn.disconnect()

        def report(event: str, error: BaseException | None) -> None:
            if event == "dropped":
                self._report("dropped", error)
            if event != "up":
                self.last_error = repr(error) if error is not None else self.last_error
                self.refresh_soon()
            self._update_up()

        return Subscriber(
            connection=connection,
            wanted=self._shard_wanted(name),
            dispatch=self._dispatch,
            report=report,
            same_server=same_server,
            failover=self.refresh_soon,
            command_timeout=self.command_timeout,
            ping_interval=self.ping_interval,
            sharded=True,
            moved=self.refresh_soon,
        )

    def _update_up(self) -> None:
        """The bus is up while every master's subscriber is; report the changes once."""
        up = bool(self.shards) and all(shard.up for shard in self.shards.values())
        self.up = up
        if up == self._was_up:
            return
        self._was_up = up
        if up:
            self.last_error = None
            self._up_event.set()
            self._report("up", None)
        else:
            self._report("down", ConnectionError(self.last_error or "a Redis shard is down"))
