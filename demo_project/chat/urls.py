"""The chat's URLs."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("nickname", views.nickname, name="nickname"),
]
