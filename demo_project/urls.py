"""Demo URLs: the chat, accounts (login for the members room), the admin, probes and metrics."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("demo_project.chat.urls")),
    path("accounts/", include("django.contrib.auth.urls")),  # login, logout, ...
    path("admin/", admin.site.urls),
    path("", include("wshub_channels.urls")),  # /healthz, /readyz, POST /drainz
    path("", include("django_prometheus.urls")),  # /metrics
]
