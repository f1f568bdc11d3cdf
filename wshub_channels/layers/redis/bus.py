"""``RedisBus``: the Redis connection of one node, and pub/sub and requests over it.

The bus only moves bytes; fan-out, echo suppression, envelopes and
names are the core's (:mod:`wshub_channels.layers.base`).

- **Subjects** are Redis pub/sub channels, all held by one supervised
  subscriber connection (:mod:`.subscriber`).
- **Publishes and commands** use a bounded blocking pool, so a burst of
  handshakes waits for a connection instead of failing with "Too many
  connections". Every command has a socket timeout, so a caller never
  waits on a dead Redis longer than ``connect_timeout`` + ``command_timeout``.
- **Requests** are the core's request/reply over pub/sub
  (:class:`~wshub_channels.layers.inbox.PubSubRequests`), answered on this
  node's private inbox subject. ``PUBLISH`` returns the number of
  subscribers, so a request to a node that is gone fails at once and a
  gather waits only for the nodes that exist.
- **Normal channels and stored group members** live in Redis, in the
  bus's :class:`~.store.RedisStore` (the ``BrokerStore``), which the bus
  opens and closes with its connection and which shares its command client.
- **Hosts**: one server carries the cluster; when it cannot be reached, the
  next entry of ``hosts`` is tried (failover, not sharding).

Loop safety: every client belongs to the home loop, which the bus and its
store share; calls from other loops are forwarded there (:mod:`..homeloop`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ...core.names import process_inbox, random_token
from ...tasks import spawn
from ..bus import Bus, BusStatus
from ..homeloop import HomeLoop, on_home
from ..inbox import PubSubRequests
from .client import aioredis, build_client, safe_host
from .shards import ShardedSubscriber
from .store import RedisStore
from .subscriber import Subscriber

__all__ = ["RedisBus"]

logger = logging.getLogger("wshub_channels.layers.redis")


class RedisBus(Bus):
    """Redis pub/sub and requests for one node; its :attr:`store` keeps the rest."""

    shared = True

    def __init__(
        self,
        hosts: list[Any],
        prefix: str,
        name: str,
        pool_size: int = 32,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        ping_interval: float = 5.0,
        expiry: float = 60.0,
    ) -> None:
        super().__init__()
        if not hosts:
            raise ImproperlyConfigured("RedisHubLayer needs at least one entry in hosts")
        self.hosts = list(hosts)
        self.prefix = prefix
        self.name = name
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self.home = HomeLoop(self._open, self._shut, self._abandon)
        #: Every subject subscribed to, kept across reconnects and new home loops.
        self.subjects: set[str] = set()
        self._inbox_base = f"{prefix}.i.{name}.{random_token(8)}"
        self.inbox = process_inbox(self._inbox_base)
        self._host_index = 0
        self.store = self._store = self._make_store(expiry)
        self._requests = PubSubRequests(self.inbox, self._publish_counted)
        self._subscriber: Subscriber | ShardedSubscriber = self._make_subscriber()

    def _make_store(self, expiry: float) -> RedisStore:
        return RedisStore(self.home, self.prefix, self.pool_size, self.command_timeout, expiry)

    def _make_subscriber(self) -> Subscriber | ShardedSubscriber:
        return Subscriber(
            connection=self._subscriber_connection,
            wanted=lambda: {self.inbox, *self.subjects},
            dispatch=self._dispatch,
            report=self._report,
            same_server=self._same_server,
            failover=self._next_host,
            command_timeout=self.command_timeout,
            ping_interval=self.ping_interval,
        )

    def _report(self, event: str, error: BaseException | None) -> None:
        self.report(event, error)  # late bound: the core installs its reporter after us

    # -- connection --------------------------------------------------------------

    async def connect(self) -> None:
        await self.home.connect()

    async def close(self) -> None:
        self.subjects.clear()
        await self.home.close()

    @property
    def client(self) -> aioredis.Redis | None:
        """The command client of the current host (None while closed); home loop only."""
        return self._store.client

    def _common(self, socket_timeout: float | None) -> dict[str, Any]:
        return {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": socket_timeout,
            "client_name": f"wshub-{self.name}",
            "health_check_interval": 0,
            # RESP2: pub/sub messages arrive as plain replies on our own reader.
            "protocol": 2,
        }

    @property
    def _host(self) -> Any:
        return self.hosts[self._host_index % len(self.hosts)]

    def _use_host(self) -> None:
        host = self._host
        self._store.use(build_client(host, self.pool_size, self._common(self.command_timeout)))

    async def _open(self) -> None:
        self.inbox = self._requests.inbox = process_inbox(self._inbox_base)  # after a fork: ours
        self._use_host()
        self._store.blocking = None
        self._subscriber.start()
        if not await self._subscriber.wait_up(self.connect_timeout):
            # Keep supervising: the bus counts as down until Redis answers.
            logger.warning(
                "Redis at %s is not answering yet: %s",
                safe_host(self._host),
                self._subscriber.last_error,
            )

    async def _shut(self) -> None:
        await self._subscriber.stop()
        for client in (self._store.client, self._store.blocking):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._forget()

    def _abandon(self) -> None:
        self._subscriber.abandon()
        self._forget()

    def _forget(self) -> None:
        self._store.client = self._store.blocking = None
        self._requests.cancel_all()

    def status(self) -> BusStatus:
        return BusStatus(connected=self._subscriber.up, last_error=self._subscriber.last_error)

    def _subscriber_connection(self) -> Any:
        """A new connection for the subscriber, like the pool's but without a read timeout."""
        pool = self._store.command_client().connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})

    def _next_host(self) -> None:
        """Fail over to the next entry of ``hosts`` (the current one cannot be reached)."""
        if len(self.hosts) < 2:
            return
        old = self._store.client
        self._host_index += 1
        logger.warning(
            "Redis unreachable; trying %s",
            safe_host(self.hosts[self._host_index % len(self.hosts)]),
        )
        self._use_host()
        if old is not None:
            spawn(old.aclose(), "close old redis client")

    async def _same_server(self, run_id: str) -> bool:
        """True when Redis answers as the same server: it cut us off on purpose.

        That is almost always ``client-output-buffer-limit pubsub`` (a
        subscriber that fell behind); a restart changes the run id.
        """
        try:
            info = await self._store.command_client().info("server")
        except Exception:
            return False
        return bool(info.get("run_id") == run_id)

    def _dispatch(self, subject: str, data: bytes) -> None:
        try:
            if not self._requests.handle(subject, data, self.request_handler):
                self.sink(subject, data)
        except (ValueError, TypeError) as exc:
            self.report("bad_frame", exc)
        except Exception:
            logger.exception("delivering a message from %s failed", subject)

    # -- pub/sub and requests ----------------------------------------------------------

    @on_home
    async def publish(self, subject: str, data: bytes) -> None:
        await self._publish_counted(subject, data)

    async def _publish_counted(self, subject: str, data: bytes) -> int:
        return int(await self._store.command_client().publish(subject, data))

    @on_home
    async def subscribe(self, subject: str) -> None:
        self.subjects.add(subject)
        await self._subscriber.subscribe(subject)

    @on_home
    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        await self._subscriber.unsubscribe(subject)

    @on_home
    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        if not self._subscriber.up:
            raise ConnectionError(f"the Redis subscriber is down: {self._subscriber.last_error}")
        own = subject in self.subjects
        return await self._requests.request(subject, data, timeout, max_replies, own=own)
