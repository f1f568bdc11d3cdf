"""Settings of the demo chat.

The defaults serve one node on the embedded ``InMemoryHubLayer``: no Redis or
NATS needed. The environment changes what a deployment would:

- ``WSHUB_LAYER``: ``memory`` (default), ``redis`` or ``nats``. Nodes on one
  Redis or NATS (and one database) behave as one chat: rooms, counts, "who is
  here", direct messages and nicknames are cluster-wide.
- ``REDIS_URL`` (default ``redis://127.0.0.1:6379``), ``NATS_URL`` (default
  ``nats://127.0.0.1:4222``), ``WSHUB_PREFIX`` (default ``wshubdemo``): the bus.
- ``WSHUB_PRESENCE_INTERVAL``: seconds between heartbeats (default 2); counts
  from other nodes lag by up to one interval.
- ``DEMO_DB``: the sqlite file (default ``db.sqlite3`` at the repository root);
  nodes of one cluster share it, so a session works on every node.
- ``DEMO_RATE``: chat messages per second per connection (default 5, bursts of
  one second); ``DEMO_ROOM_SIZE``: people per room on one node (default 50);
  ``DEMO_HISTORY_SIZE`` and ``DEMO_HISTORY_TTL``: the last messages every room
  keeps (default 200, for 600 s), which a tab that reconnects gets back
  (``DEMO_HISTORY_SIZE=0``: none, for a NATS server without JetStream);
  ``DEMO_TABS``: tabs per nickname on one node (default 8); ``DEMO_PING``:
  seconds between the server's protocol pings (default 20);
  ``DEMO_DEBUG``: ``0`` turns debug off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
REPO_DIR = BASE_DIR.parent

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves ASGI (HTTP and WebSocket)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "channels",
    "wshub_channels",
    "demo_project.chat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ASGI_APPLICATION = "demo_project.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB") or str(REPO_DIR / "db.sqlite3"),
        # Two nodes of a demo cluster may write sessions at the same moment.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/?room=members"
LOGOUT_REDIRECT_URL = "/"
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"


def _channel_layers(kind: str) -> dict[str, Any]:
    prefix = os.environ.get("WSHUB_PREFIX", "wshubdemo")
    if kind == "memory":
        return {"default": {"BACKEND": "wshub_channels.layers.InMemoryHubLayer"}}
    if kind == "redis":
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
        config = {"hosts": [url], "prefix": prefix}
        return {"default": {"BACKEND": "wshub_channels.layers.RedisHubLayer", "CONFIG": config}}
    if kind == "nats":
        url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
        config = {"servers": [url], "prefix": prefix}
        return {"default": {"BACKEND": "wshub_channels.layers.NatsHubLayer", "CONFIG": config}}
    raise ImproperlyConfigured(f"WSHUB_LAYER must be memory, redis or nats, not {kind!r}")


CHANNEL_LAYERS = _channel_layers(os.environ.get("WSHUB_LAYER", "memory").strip().lower())

_HISTORY_SIZE = int(os.environ.get("DEMO_HISTORY_SIZE", "200"))
_HISTORY_TTL = float(os.environ.get("DEMO_HISTORY_TTL", "600"))

WSHUB = {
    "PRESENCE_INTERVAL": float(os.environ.get("WSHUB_PRESENCE_INTERVAL", "2")),
    "CONFIG": {"send_queue_size": 256, "max_message_size": 16 * 1024},
    "LIMITS": {
        "max_connections": 1000,  # per node: a handshake over it is refused
        "max_connections_per_user": int(os.environ.get("DEMO_TABS", "8")),  # tabs per nickname
        "max_rooms_per_client": 10,
        "max_clients_per_room": int(os.environ.get("DEMO_ROOM_SIZE", "50")),
        "max_message_rate": float(os.environ.get("DEMO_RATE", "5")),
    },
    # Every room keeps its last messages: a tab that reconnects gets what it missed.
    "HISTORY": {"*": {"size": _HISTORY_SIZE, "ttl": _HISTORY_TTL}} if _HISTORY_SIZE else {},
    "MIDDLEWARE": [
        "wshub_channels.middleware.recovery_middleware",
        "wshub_channels.middleware.logging_middleware",
        "wshub_channels.middleware.metrics_middleware",  # message handling latency
    ],
    # wshub_* series on django-prometheus's /metrics
    "METRICS": "wshub_channels.metrics.prometheus.PrometheusMetrics",
}

#: Seconds between the protocol's pings to each tab (``ChatConsumer.protocol_ping``).
DEMO_PING = float(os.environ.get("DEMO_PING", "20"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "demo_project": {"handlers": ["console"], "level": "INFO"},
        "wshub_channels": {"handlers": ["console"], "level": "INFO"},
    },
}
