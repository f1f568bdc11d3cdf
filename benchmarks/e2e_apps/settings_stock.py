"""Settings for ``stock_asgi``: a stock layer chosen by environment variables.

- ``E2E_LAYER``: ``redis-core``, ``redis-pubsub`` or ``nats``;
- ``E2E_REDIS_URL`` / ``E2E_NATS_URL``: the broker;
- ``E2E_PREFIX``: a prefix unique to the run, so runs do not see each other;
- ``E2E_CAPACITY``: per-channel capacity where the layer has one (default 100000,
  far above what one run queues, so no layer loses a message to capacity).
"""

from __future__ import annotations

import os

SECRET_KEY = "e2e-benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

_layer = os.environ.get("E2E_LAYER", "redis-core")
_redis = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379")
_nats = os.environ.get("E2E_NATS_URL", "nats://127.0.0.1:4222")
_prefix = os.environ.get("E2E_PREFIX", "e2e")
_capacity = int(os.environ.get("E2E_CAPACITY", "100000"))

# redis-py 8 defaults to a 5 s socket timeout and a pool of 100 connections. The
# first cuts channels_redis' 5 s BZPOPMIN off at the same moment ("Timeout reading
# from ...", the consumer dies); the second fails a burst of concurrent
# group_add calls ("Too many connections"). Neither is the layer's design, so the
# benchmark gives both room.
_redis_host = {"address": _redis, "socket_timeout": 30, "max_connections": 1024}

if _layer == "redis-core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_host], "prefix": _prefix, "capacity": _capacity},
        }
    }
elif _layer == "redis-pubsub":
    CHANNEL_LAYERS = {
        "default": {
            # No capacity here: Redis pub/sub has no queue to bound.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_redis_host], "prefix": _prefix},
        }
    }
elif _layer == "nats":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_nats.NatsChannelLayer",
            "CONFIG": {"servers": _nats, "prefix": _prefix, "capacity": _capacity},
        }
    }
else:
    raise RuntimeError(f"unknown E2E_LAYER {_layer!r}")
