"""``RedisHubLayer`` on Redis Cluster: sharded pub/sub, and keys under hash tags.

Chosen by the layer's config (``cluster: true``, or a ``redis+cluster://``
URL in ``hosts``); every entry of ``hosts`` is a startup node.

- **Subjects** use sharded pub/sub: a publish is one ``SPUBLISH``, which
  Redis sends only to the shard (master and replicas) that owns the
  subject's hash slot, and a node subscribes with ``SSUBSCRIBE`` on the
  master of each of its subjects (:mod:`.shards`). Adding masters spreads
  the pub/sub load instead of copying every message to every node, as
  plain ``PUBLISH`` on a Cluster does.
- **Requests and gathers** work as on one Redis: ``SPUBLISH`` counts the
  subscribers on the shard's master, where every node subscribes, so a
  request to a node that is gone still fails at once.
- **Keys** put the channel, group or room in a hash tag, so every key one
  script or pipeline touches is in one slot: a normal channel's queue, its
  hold registry and its holds share ``{<channel>}``; a group's stored
  members are under ``{<the group's subject>}``, the slot of the subject a
  ``group_send`` publishes on, so its pipeline (``SPUBLISH``, purge, lookup)
  goes to one master. Room history already keeps one tag per room
  (:mod:`.history`). Single-Redis key names are unchanged.
- **Failover and migration.** Commands follow ``MOVED``/``ASK`` and refresh
  the slot map themselves (redis-py's ``RedisCluster``); a command to a
  master that is down fails at once and the caller gets ``BusUnavailable``.
  The subscriptions move to the promoted replica, or to a slot's new
  master, within a fraction of a second of Redis announcing it, and until
  they are back a publish there is refused too (:mod:`.handover`), so a
  message the bus took is not lost to the move.

Loop safety: as :mod:`.bus`, every client belongs to the home loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..homeloop import HomeLoop, on_home
from .bus import RedisBus
from .client import aioredis, build_cluster_client, key_slot
from .handover import Handover
from .shards import ShardedSubscriber
from .store import POP_BLOCK, RedisStore
from .subscriber import Subscriber

__all__ = ["RedisClusterBus", "RedisClusterStore"]


class RedisClusterStore(RedisStore):
    """:class:`~.store.RedisStore` with every key under its channel's or group's hash tag."""

    def __init__(
        self,
        home: HomeLoop,
        prefix: str,
        pool_size: int,
        command_timeout: float,
        expiry: float,
        group_subject: Callable[[str], str],
        blocking: Callable[[float], aioredis.RedisCluster],
        handover: Handover,
    ) -> None:
        super().__init__(home, prefix, pool_size, command_timeout, expiry)
        self._group_subject = group_subject
        self._make_blocking = blocking
        self.handover = handover

    def master_of(self, subject: str) -> str | None:
        """The master that owns ``subject``'s slot, as the command client last knew."""
        client: Any = self.client
        if client is None:
            return None
        nodes = client.nodes_manager.slots_cache.get(key_slot(subject.encode()))
        return str(nodes[0].name) if nodes else None

    def published(self, subject: str, receivers: int) -> None:
        self.handover.check(subject, self.master_of(subject), receivers)

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{{{name}}}"

    def hold_key(self, channel: str, token: str) -> str:
        return f"{self.prefix}:h:{{{channel}}}:{token}"

    def group_key(self, group: str) -> str:
        return f"{self.prefix}:g:{{{self._group_subject(group)}}}"

    def pipe_publish(self, pipe: Any, subject: str, data: bytes) -> None:
        pipe.spublish(subject, data)

    def _blocking_client(self) -> Any:
        self.command_client()
        if self.blocking is None:
            blocking: Any = self._make_blocking(POP_BLOCK + self.command_timeout)
            self.blocking = blocking
        return self.blocking


class RedisClusterBus(RedisBus):
    """:class:`~.bus.RedisBus` over a Redis Cluster, with sharded pub/sub."""

    def __init__(self, hosts: list[Any], prefix: str, name: str, **options: Any) -> None:
        if "{" in prefix or "}" in prefix:
            raise ImproperlyConfigured(
                f"RedisHubLayer on a Redis Cluster: the prefix {prefix!r} may not hold "
                "braces (they would make one hash tag of every key)"
            )
        self._group_subject: Callable[[str], str] = options.pop("group_subject")
        self.handover = Handover()
        super().__init__(hosts, prefix, name, **options)

    def _make_store(self, expiry: float) -> RedisStore:
        return RedisClusterStore(
            self.home,
            self.prefix,
            self.pool_size,
            self.command_timeout,
            expiry,
            self._group_subject,
            self._build,
            self.handover,
        )

    def _make_subscriber(self) -> Subscriber | ShardedSubscriber:
        return ShardedSubscriber(
            client=self._cluster_client,
            wanted=lambda: {self.inbox, *self.subjects},
            dispatch=self._dispatch,
            report=self._report,
            command_timeout=self.command_timeout,
            ping_interval=self.ping_interval,
        )

    def _cluster_client(self) -> aioredis.RedisCluster:
        client: Any = self._store.command_client()
        return client  # type: ignore[no-any-return]

    def _build(self, socket_timeout: float) -> aioredis.RedisCluster:
        return build_cluster_client(self.hosts, self.pool_size, self._common(socket_timeout))

    def _use_host(self) -> None:
        self._store.use(self._build(self.command_timeout))  # type: ignore[arg-type]

    def _next_host(self) -> None:
        """No-op: every entry of ``hosts`` is a startup node of the one client."""

    @on_home
    async def publish(self, subject: str, data: bytes) -> None:
        """``SPUBLISH``; refused while the subject's new master lacks subscribers
        (:mod:`.handover`)."""
        receivers = await self._publish_counted(subject, data)
        self._store.published(subject, receivers)

    async def _publish_counted(self, subject: str, data: bytes) -> int:
        return int(await self._cluster_client().spublish(subject, data))
