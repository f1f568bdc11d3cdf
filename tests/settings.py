"""Django settings for the test suite (no database is needed by the hub itself)."""

from __future__ import annotations

import json
import os

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "channels",
    "wshub_channels",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "tests.urls"
# Server processes started by the tests may get another layer (Redis for clusters).
CHANNEL_LAYERS = json.loads(
    os.environ.get(
        "WSHUB_TEST_LAYERS", '{"default": {"BACKEND": "wshub_channels.layers.InMemoryHubLayer"}}'
    )
)
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# Server processes started by the tests receive their hub settings as JSON.
WSHUB = json.loads(os.environ.get("WSHUB_TEST_SETTINGS", "{}"))
# WSHUB_TEST_DIRECT_WRITES=0 runs every server test on the ASGI path alone.
if os.environ.get("WSHUB_TEST_DIRECT_WRITES") == "0":
    WSHUB.setdefault("CONFIG", {}).setdefault("direct_writes", False)
# The rig stops server processes with SIGTERM, which drains them first: keep the
# drain short unless a test asks for more (one time unit, as in tests/rig/timing.py).
WSHUB.setdefault("DRAIN_TIMEOUT", float(os.environ.get("WSHUB_TEST_TIME_UNIT") or 1))

# Drain progress (batches, timings) goes to the server's log, where the drain tests read it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "wshub_channels.drain": {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    },
}
