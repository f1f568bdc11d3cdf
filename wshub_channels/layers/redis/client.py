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
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        'RedisHubLayer needs redis-py: pip install "wshub-channels[redis]"'
    ) from exc

__all__ = ["NoScriptError", "aioredis", "build_client", "info_field", "safe_host"]


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
