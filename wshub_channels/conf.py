"""Settings: ``settings.WSHUB`` read late, cached, and reset on ``setting_changed``.

:func:`get_settings` returns a frozen :class:`HubSettings`. It is never called
at import time, so ``override_settings(WSHUB=...)`` works in tests. A bad
``WSHUB`` raises ``ImproperlyConfigured`` naming the key; the system checks
(``wshub_channels.E001``) report the same problem at start-up.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .config import Config, HistoryRules, Limits

__all__ = ["DEFAULTS", "HubSettings", "get_settings", "reset_settings"]

DEFAULTS: dict[str, Any] = {
    "CHANNEL_LAYER": "default",
    "NODE_ID": None,
    "PRESENCE_INTERVAL": 5.0,
    "DRAIN_TIMEOUT": 30.0,
    "DRAIN_BATCH": 500,
    "DRAIN_TOKEN": None,
    "CONFIG": {},
    "LIMITS": {},
    "MIDDLEWARE": [],
    "HOOKS": None,
    "METRICS": None,
    "TOKEN_MAX_AGE": 300,
    "HISTORY": {},
}


@dataclass(frozen=True, slots=True)
class HubSettings:
    """The parsed ``WSHUB`` setting."""

    channel_layer: str
    node_id: str | None
    presence_interval: float
    drain_timeout: float
    drain_batch: int
    drain_token: str | None
    config: Config
    limits: Limits
    middleware: tuple[str, ...]
    hooks: str | None
    metrics: str | None
    token_max_age: int = 300
    history: HistoryRules = field(default_factory=HistoryRules)


def parse_settings(raw: Mapping[str, Any]) -> HubSettings:
    """Parse a ``WSHUB`` dict; raise ``ImproperlyConfigured`` naming the bad key."""
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("WSHUB must be a dict")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f"unknown WSHUB key(s): {', '.join(unknown)}")
    merged = {**DEFAULTS, **raw}
    key = ""
    try:
        key = "CHANNEL_LAYER"
        _require(isinstance(merged[key], str), "a str")
        key = "NODE_ID"
        _require(merged[key] is None or isinstance(merged[key], str), "None or a str")
        for key in ("PRESENCE_INTERVAL", "DRAIN_TIMEOUT"):
            value = merged[key]
            _require(isinstance(value, (int, float)) and value > 0, "a positive number")
        key = "DRAIN_BATCH"
        value = merged[key]
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            "a positive int",
        )
        key = "DRAIN_TOKEN"
        _require(
            merged[key] is None or (isinstance(merged[key], str) and merged[key] != ""),
            "None or a non-empty str",
        )
        key = "CONFIG"
        config = Config.from_dict(merged[key])
        key = "LIMITS"
        limits = Limits.from_dict(merged[key])
        key = "MIDDLEWARE"
        middleware = merged[key]
        _require(
            isinstance(middleware, (list, tuple)) and all(isinstance(m, str) for m in middleware),
            "a list of dotted paths",
        )
        for key in ("HOOKS", "METRICS"):
            _require(merged[key] is None or isinstance(merged[key], str), "None or a dotted path")
        key = "TOKEN_MAX_AGE"
        value = merged[key]
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            "a positive int (seconds)",
        )
        key = "HISTORY"
        history = HistoryRules.parse(merged[key])
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"WSHUB[{key!r}]: {exc}") from exc
    return HubSettings(
        channel_layer=merged["CHANNEL_LAYER"],
        node_id=merged["NODE_ID"],
        presence_interval=float(merged["PRESENCE_INTERVAL"]),
        drain_timeout=float(merged["DRAIN_TIMEOUT"]),
        drain_batch=merged["DRAIN_BATCH"],
        drain_token=merged["DRAIN_TOKEN"],
        config=config,
        limits=limits,
        middleware=tuple(middleware),
        hooks=merged["HOOKS"],
        metrics=merged["METRICS"],
        token_max_age=merged["TOKEN_MAX_AGE"],
        history=history,
    )


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"must be {what}")


@functools.cache
def get_settings() -> HubSettings:
    """Return the parsed ``WSHUB`` setting (cached until ``setting_changed``)."""
    return parse_settings(getattr(settings, "WSHUB", {}))


def reset_settings() -> None:
    get_settings.cache_clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("WSHUB", "CHANNEL_LAYERS"):
        reset_settings()
