"""Demo URLs: the chat page."""

from __future__ import annotations

from django.urls import path

from demo_project.chat import views

urlpatterns = [path("", views.index, name="index")]
