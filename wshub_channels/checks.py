"""System checks with stable IDs.

- ``wshub_channels.E001``: ``WSHUB`` is invalid (unknown key or bad value; the
  message names the key).
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured

from .conf import get_settings, reset_settings

__all__ = ["check_settings"]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid ``WSHUB`` setting (E001)."""
    reset_settings()
    try:
        get_settings()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc), hint="See the settings reference in the README.", id="wshub_channels.E001"
            )
        ]
    return []
