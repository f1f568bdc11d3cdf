"""Settings for ``hub_asgi``: the hub on its embedded in-memory layer, no database."""

from __future__ import annotations

from typing import Any

SECRET_KEY = "e2e-benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels", "wshub_channels"]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "wshub_channels.layers.InMemoryHubLayer"}
}
WSHUB = {"CONFIG": {"send_queue_size": 1024}}
