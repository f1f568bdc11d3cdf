"""System checks with stable IDs.

- ``wshub_channels.E001``: ``WSHUB`` is invalid (unknown key or bad value; the
  message names the key).
- ``wshub_channels.E002``: the hub's channel layer is not a hub layer, so
  ``HubConsumer`` cannot work on it.
- ``wshub_channels.W001``: ``max_message_size`` is larger than the largest
  message the ASGI server passes (daphne: 1 MiB, uvicorn: 16 MiB).
- ``wshub_channels.W002``: ``compression`` is on but daphne, which has no
  permessage-deflate, is installed.
- ``wshub_channels.W003``: the per-connection byte bucket
  (``max_bytes_per_second`` x ``burst``) is smaller than ``max_message_size``:
  a frame that size is let through only from a full bucket, into debt.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import get_settings, reset_settings

__all__ = ["DAPHNE_MAX_MESSAGE", "UVICORN_MAX_MESSAGE", "check_layer", "check_settings"]

DAPHNE_MAX_MESSAGE = 1024 * 1024
UVICORN_MAX_MESSAGE = 16 * 1024 * 1024


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid ``WSHUB`` (E001), server limits it exceeds (W001, W002) and a
    byte rate limit smaller than one message (W003)."""
    reset_settings()
    try:
        hub_settings = get_settings()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="See the settings reference in the README.",
                id="wshub_channels.E001",
            )
        ]
    found: list[CheckMessage] = []
    config = hub_settings.config
    daphne = "daphne" in settings.INSTALLED_APPS
    limit, server = (DAPHNE_MAX_MESSAGE, "daphne") if daphne else (UVICORN_MAX_MESSAGE, "uvicorn")
    if config.max_message_size > limit:
        found.append(
            Warning(
                f"WSHUB['CONFIG']['max_message_size'] is {config.max_message_size} bytes, "
                f"but {server} passes at most {limit}; larger frames never reach the hub.",
                id="wshub_channels.W001",
            )
        )
    if config.compression and daphne:
        found.append(
            Warning(
                "WSHUB['CONFIG']['compression'] is on, but daphne has no permessage-deflate.",
                hint="Serve with uvicorn (permessage-deflate on by default) or turn it off.",
                id="wshub_channels.W002",
            )
        )
    limits = hub_settings.limits
    if limits.max_bytes_per_second:
        bucket = limits.max_bytes_per_second * (limits.burst or 1.0)
        if bucket < config.max_message_size:
            found.append(
                Warning(
                    f"WSHUB['LIMITS'] max_bytes_per_second x burst is {bucket:g} bytes, less "
                    f"than WSHUB['CONFIG']['max_message_size'] ({config.max_message_size}); "
                    "a frame that large passes only from a full bucket, which it leaves in debt.",
                    hint="Raise max_bytes_per_second or burst, or lower max_message_size.",
                    id="wshub_channels.W003",
                )
            )
    return found


@register()
def check_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report a hub channel layer that is not a hub layer (E002)."""
    try:
        alias = get_settings().channel_layer
    except ImproperlyConfigured:
        return []  # reported by E001
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    backend = layers.get(alias, {}).get("BACKEND")
    if backend is None:
        return []
    try:
        cls = import_string(backend) if isinstance(backend, str) else type(backend)
    except ImportError:
        return []  # Channels reports unimportable backends itself
    from .layers import HubLayer

    if isinstance(cls, type) and issubclass(cls, HubLayer):
        return []
    return [
        Error(
            f"CHANNEL_LAYERS[{alias!r}] uses {backend}, which is not a hub layer; "
            "HubConsumer and get_hub() need one.",
            hint="Use wshub_channels.layers.InMemoryHubLayer (or another hub layer).",
            id="wshub_channels.E002",
        )
    ]
