"""Origin checks for the WebSocket handshake.

A check is a callable taking the ASGI scope and returning True to allow.
``Config.check_origin`` holds one, or its dotted path. A request with no
``Origin`` header (as non-browser clients send) is allowed by every built-in
check except :func:`allow_origins` with ``require=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .core.access import same_origin

__all__ = [
    "OriginCheck",
    "allow_all_origins",
    "allow_origins",
    "allow_same_origin",
    "resolve",
]

OriginCheck = Callable[[Mapping[str, Any]], bool]


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def allow_all_origins(scope: Mapping[str, Any]) -> bool:
    """Allow every origin."""
    return True


def allow_same_origin(scope: Mapping[str, Any]) -> bool:
    """Allow a handshake whose Origin host and port match the Host header (the default)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host")
    if host is None:
        return False
    return same_origin(origin, host, scope.get("scheme") in ("wss", "https"))


def allow_origins(*origins: str, require: bool = False) -> OriginCheck:
    """Allow only the listed origins (``"https://example.com"``, case-insensitive)."""
    allowed = {o.lower().rstrip("/") for o in origins}

    def check(scope: Mapping[str, Any]) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return not require
        return origin.lower().rstrip("/") in allowed

    return check


def resolve(check: str | OriginCheck) -> OriginCheck:
    """Return the origin check a dotted path names, or the callable itself."""
    if isinstance(check, str):
        from django.utils.module_loading import import_string

        found: OriginCheck = import_string(check)
        return found
    return check
