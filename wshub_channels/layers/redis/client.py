"""redis-py, imported once for the Redis backend, and building clients from ``hosts``.

This is the only module that imports redis-py; without it, importing the
Redis backend raises ``ImproperlyConfigured`` with the install line. The
helpers are pure apart from building client objects (which connect lazily),
and thread-safe.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel
    from redis.crc import key_slot
    from redis.exceptions import ClusterError, NoScriptError, RedisClusterException, ResponseError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        'RedisHubLayer needs redis-py: pip install "wshub-channels[redis]"'
    ) from exc

__all__ = [
    "ClusterError",
    "NoScriptError",
    "RedisClusterException",
    "ResponseError",
    "aioredis",
    "build_client",
    "delete_matching",
    "info_field",
    "key_slot",
    "safe_host",
]


def build_client(host: Any, pool_size: int, common: dict[str, Any]) -> aioredis.Redis:
    """Build a pooled client from one ``hosts`` entry (URL, (host, port), or dict)."""
    if isinstance(host, (tuple, list)):
        host = {"host": host[0], "port": int(host[1])}
    if isinstance(host, str):
        host = {"address": host}
    if not isinstance(host, dict):
        raise ImproperlyConfigured(f"RedisHubLayer: cannot use host {host!r}")
    options = dict(host)
    if "sentinels" in options:
        sentinels = [tuple(s) for s in options.pop("sentinels")]
        master = options.pop("master_name")
        sentinel_kwargs = options.pop("sentinel_kwargs", None)
        # Called through Any: redis-py types Sentinel's constructor only in some releases, and
        # mypy must pass on every release the ``redis`` extra allows.
        make_sentinel: Any = Sentinel
        sentinel = make_sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **common)
        client: aioredis.Redis = sentinel.master_for(master, **options, **common)
        return client
    address = options.pop("address", None)
    kwargs = {
        **common,
        **options,
        "max_connections": pool_size,
        "timeout": common["socket_timeout"],
    }
    if address is not None:
        pool = aioredis.BlockingConnectionPool.from_url(address, **kwargs)
    else:
        pool = aioredis.BlockingConnectionPool(**kwargs)
    return aioredis.Redis.from_pool(pool)


def info_field(info: Any, name: str) -> str | None:
    """Read one field of a raw ``INFO`` reply."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def safe_host(host: Any) -> str:
    """Describe a host without its password."""
    text = str(host.get("address", host) if isinstance(host, dict) else host)
    if "@" in text:
        scheme, _, rest = text.partition("://")
        text = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return text


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def wants_cluster(hosts: list[Any], cluster: bool) -> bool:
    """True when ``hosts`` name a Redis Cluster: ``cluster`` is set, or a URL says so."""
    return cluster or any(isinstance(h, str) and h.startswith(CLUSTER_SCHEMES) for h in hosts)


def _node_options(host: Any) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and the connection options of one ``hosts`` entry, for a Cluster."""
    if isinstance(host, (tuple, list)):
        return [(str(host[0]), int(host[1]))], {}
    if isinstance(host, dict):
        options = dict(host)
        if "sentinels" in options:
            raise ImproperlyConfigured("RedisHubLayer: a Redis Cluster takes no Sentinel hosts")
        address = options.pop("address", None)
        nodes, found = _node_options(address) if address is not None else ([], {})
        if "host" in options:
            nodes.append((str(options.pop("host")), int(options.pop("port", 6379))))
        return nodes, {**found, **options}
    if not isinstance(host, str):
        raise ImproperlyConfigured(f"RedisHubLayer: cannot use host {host!r}")
    scheme, _, rest = host.partition("://")
    if not rest:
        raise ImproperlyConfigured(f"RedisHubLayer: cannot use host {safe_host(host)!r}")
    parsed: dict[str, Any] = {}
    if scheme.startswith("rediss"):
        parsed["ssl"] = True
    location = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in location:
        userinfo, location = location.rsplit("@", 1)
        user, _, password = userinfo.rpartition(":")
        from urllib.parse import unquote

        if user:
            parsed["username"] = unquote(user)
        if password:
            parsed["password"] = unquote(password)
    nodes = []
    for part in location.split(","):
        name, _, port = part.rpartition(":") if ":" in part else (part, "", "6379")
        nodes.append((name.strip("[]") or "127.0.0.1", int(port or 6379)))
    return nodes, parsed


def build_cluster_client(
    hosts: list[Any], pool_size: int, common: dict[str, Any]
) -> aioredis.RedisCluster:
    """A Redis Cluster client whose startup nodes are every node ``hosts`` names.

    Commands follow ``MOVED`` and ``ASK`` and refresh the slot map themselves.
    A command that fails on a connection is not tried again: a publish whose
    reply was lost may have been delivered, and delivery is at most once; the
    caller hears of it at once (``BusUnavailable``) and the next command runs
    on a refreshed slot map. ``pool_size`` bounds the connections to each node.
    """
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    nodes: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for host in hosts:
        found, extra = _node_options(host)
        nodes.extend(found)
        options.update(extra)
    if not nodes:
        raise ImproperlyConfigured("RedisHubLayer: a Redis Cluster needs startup nodes in hosts")
    kwargs = {
        **common,
        **options,
        "max_connections": pool_size,
        "retry": Retry(NoBackoff(), 0),
        "require_full_coverage": False,
        "topology_refresh_min_interval": 0.1,
    }
    startup = [ClusterNode(name, port) for name, port in dict.fromkeys(nodes)]
    return aioredis.RedisCluster(startup_nodes=startup, **kwargs)


async def delete_matching(client: Any, pattern: str, batch_size: int = 500) -> None:
    """Delete every key matching the glob ``pattern`` (SCAN, then DEL in batches)."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=batch_size):
        batch.append(key)
        if len(batch) >= batch_size:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)
