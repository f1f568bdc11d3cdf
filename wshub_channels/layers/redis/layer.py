"""``RedisHubLayer``: the shared core over Redis pub/sub, lists, sorted sets and streams.

The layer only configures and builds a
:class:`~wshub_channels.layers.redis.bus.RedisBus`, its store and its room
history (:class:`~wshub_channels.layers.redis.history.RedisHistory`, a
stream per room), all on the bus's connection; everything else is the
core's (:class:`~wshub_channels.layers.base.HubLayer`), with the same loop
and thread rules.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..base import GROUPS, HubLayer
from ..node import Backend
from .bus import RedisBus
from .client import wants_cluster
from .cluster import RedisClusterBus
from .history import RedisHistory

__all__ = ["RedisHubLayer"]


class RedisHubLayer(HubLayer):
    """The hub layer over Redis: interest-routed pub/sub plus broker-kept queues.

    Takes every :class:`~wshub_channels.layers.base.HubLayer` option plus:

    - ``hosts``: a list of Redis servers, each a URL (``redis://``,
      ``rediss://``, a password in the URL), a ``(host, port)`` pair, a dict
      of redis-py connection options (``{"address": url, ...}``), or a
      Sentinel dict ``{"sentinels": [(host, port)], "master_name": ...}``.
      One server carries the cluster; later entries are tried in turn when
      the current one cannot be reached (failover, not sharding).
    - ``cluster`` (False): the servers are a Redis Cluster (7+), and every
      entry of ``hosts`` is a startup node; a ``redis+cluster://h1:p1,h2:p2``
      URL in ``hosts`` says so too. Subjects then use sharded pub/sub and
      keys hash tags (:mod:`.cluster`).
    - ``pool_size`` (32): the most command connections per event loop; more
      concurrent commands wait for one instead of failing.
    - ``connect_timeout`` (2 s) and ``command_timeout`` (2 s): the bound on
      any wait for Redis.
    - ``ping_interval`` (5 s): the subscriber keepalive; a subscriber silent
      for three intervals is reconnected.
    """

    #: Redis takes values up to 512 MB; keep messages far below that.
    transport_max_bytes: ClassVar[int | None] = 64 * 1024 * 1024

    def __init__(
        self,
        hosts: list[Any] | None = None,
        pool_size: int = 32,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        ping_interval: float = 5.0,
        cluster: bool = False,
        **kwargs: Any,
    ) -> None:
        hosts = hosts or ["redis://127.0.0.1:6379"]
        self.cluster = wants_cluster(hosts, cluster)
        self._redis_options: dict[str, Any] = {
            "hosts": hosts,
            "pool_size": pool_size,
            "connect_timeout": connect_timeout,
            "command_timeout": command_timeout,
            "ping_interval": ping_interval,
        }
        super().__init__(**kwargs)

    def make_backend(self) -> Backend:
        bus: RedisBus
        if self.cluster:
            bus = RedisClusterBus(
                prefix=self.prefix,
                name=self.node_id,
                expiry=self.expiry,
                group_subject=lambda group: self.subject(GROUPS, group),
                **self._redis_options,
            )
        else:
            bus = RedisBus(
                prefix=self.prefix, name=self.node_id, expiry=self.expiry, **self._redis_options
            )
        return Backend(bus, bus.store, RedisHistory(bus))
