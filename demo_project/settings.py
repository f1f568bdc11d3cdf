"""Settings of the demo chat: the embedded in-memory hub layer, no database needed."""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.staticfiles",
    "channels",
    "wshub_channels",
    "demo_project.chat",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
ASGI_APPLICATION = "demo_project.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
STATIC_URL = "static/"
USE_TZ = True
CHANNEL_LAYERS = {"default": {"BACKEND": "wshub_channels.layers.InMemoryHubLayer"}}
WSHUB = {"CONFIG": {"send_queue_size": 256}}
