"""Django app configuration: wires system checks and settings receivers only."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["WshubChannelsConfig"]


class WshubChannelsConfig(AppConfig):
    name = "wshub_channels"
    verbose_name = "WebSocket hub"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Registers checks, the settings reset and the logout receiver of token auth.
        from . import auth, checks, conf  # noqa: F401
