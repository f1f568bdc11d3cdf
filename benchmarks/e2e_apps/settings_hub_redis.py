"""Settings for ``hub_asgi`` on ``RedisHubLayer``: ``settings_hub`` with a Redis bus.

Chosen with ``DJANGO_SETTINGS_MODULE=e2e_apps.settings_hub_redis``. Every server
process started with the same ``E2E_PREFIX`` joins the same cluster:

- ``E2E_REDIS_URL``: the Redis server (default ``redis://127.0.0.1:6379``);
- ``E2E_PREFIX``: the bus prefix, unique to the run (letters and digits);
- ``E2E_CAPACITY``: per-channel capacity (default 100000).
"""

from __future__ import annotations

import os

from .settings_hub import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "wshub_channels.layers.RedisHubLayer",
        "CONFIG": {
            "hosts": [os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379")],
            "prefix": os.environ.get("E2E_PREFIX", "e2ehub"),
            "capacity": int(os.environ.get("E2E_CAPACITY", "100000")),
        },
    }
}
