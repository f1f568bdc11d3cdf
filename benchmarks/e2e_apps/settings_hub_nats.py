"""Settings for ``hub_asgi`` on ``NatsHubLayer``: ``settings_hub`` with a NATS bus.

Chosen with ``DJANGO_SETTINGS_MODULE=e2e_apps.settings_hub_nats``. Every server
process started with the same ``E2E_PREFIX`` joins the same cluster:

- ``E2E_NATS_URL``: the NATS server (default ``nats://127.0.0.1:4222``);
- ``E2E_PREFIX``: the bus prefix, unique to the run (letters and digits);
- ``E2E_CAPACITY``: per-channel capacity (default 100000).

The benchmark's messages are small, so the server's default ``max_payload`` (1 MB)
does; the layer's own limits and options are left at their defaults.
"""

from __future__ import annotations

import os

from .settings_hub import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "wshub_channels.layers.NatsHubLayer",
        "CONFIG": {
            "servers": [os.environ.get("E2E_NATS_URL", "nats://127.0.0.1:4222")],
            "prefix": os.environ.get("E2E_PREFIX", "e2ehub"),
            "capacity": int(os.environ.get("E2E_CAPACITY", "100000")),
        },
    }
}
