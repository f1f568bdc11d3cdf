"""Demo URLs: the chat page, and the hub's probes and drain trigger."""

from __future__ import annotations

from django.urls import include, path

from demo_project.chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("", include("wshub_channels.urls")),  # /healthz, /readyz, POST /drainz
]
