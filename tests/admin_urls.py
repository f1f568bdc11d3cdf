"""URLs of the admin test process: the admin and the hub's probes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("wshub_channels.urls")),
]
