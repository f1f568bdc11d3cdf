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
