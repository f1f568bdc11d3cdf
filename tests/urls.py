"""URLs for the test suite: the hub's health probes and django-prometheus's ``/metrics``."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("wshub_channels.urls")),
    path("", include("django_prometheus.urls")),
]
