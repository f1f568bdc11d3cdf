"""The chat app: its signal receivers are connected when Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "demo_project.chat"
    label = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
