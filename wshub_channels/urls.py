"""``path("", include("wshub_channels.urls"))`` adds ``/healthz``, ``/readyz`` and ``/drainz``."""

from __future__ import annotations

from django.urls import path

from . import views

__all__ = ["app_name", "urlpatterns"]

app_name = "wshub_channels"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("drainz", views.drainz, name="drainz"),
]
