"""Who may drain a node (pure): loopback, the bearer token, and browsers held apart.

``POST /drainz`` is allowed from a loopback address (a request relayed by a
proxy is not) to a client that is not a browser, or from anywhere with the
bearer token of ``WSHUB["DRAIN_TOKEN"]``; a cross-site browser request is
always refused: :func:`drain_permission`. :func:`same_origin` is the one
``Origin``/``Host`` comparison, which the handshake's origin checks use too.

No I/O, no Django, no asyncio.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "BROWSER_HEADERS",
    "FORWARDING_HEADERS",
    "Permission",
    "bearer_token",
    "cross_site",
    "drain_permission",
    "from_browser",
    "is_loopback",
    "same_origin",
]

#: Headers a reverse proxy adds: a request carrying one did not start on this host.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

#: Headers only browsers send: a request carrying one came from a web page or the address bar.
BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")

#: ``Sec-Fetch-Site`` values of a request that a page of this very origin (or the user) made.
_OWN_SITE = ("same-origin", "none")


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"{scheme}://{netloc}")
    port = parts.port
    if port is None:
        port = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    return (parts.hostname or "").lower(), port


def same_origin(origin: str, host: str, secure: bool) -> bool:
    """True when an ``Origin`` header names the same host and port as a ``Host`` header.

    ``secure`` says whether the request came over TLS (it sets the default
    port of either side). An opaque origin (``null``) is never the same.
    """
    parts = urlsplit(origin)
    if not parts.hostname:
        return False
    origin_hp = _host_port(parts.netloc, parts.scheme or ("https" if secure else "http"))
    return origin_hp == _host_port(host, "https" if secure else "http")


def is_loopback(host: str | None) -> bool:
    """True when ``host`` is a loopback IP address (IPv4, IPv6, or IPv4-mapped IPv6)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def from_browser(headers: Mapping[str, str]) -> bool:
    """True when ``headers`` (lower-case names) carry a header only browsers send."""
    return any(name in headers for name in BROWSER_HEADERS)


def cross_site(headers: Mapping[str, str], secure: bool = False) -> bool:
    """True when a browser made the request for a page of another origin.

    A ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` says so, and
    so does an ``Origin`` that is not the ``Host`` (``null`` included). A
    page on another port of the same host is another origin: cross-site here.
    """
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _OWN_SITE:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    host = headers.get("host")
    return host is None or not same_origin(origin.strip(), host.strip(), secure)


@dataclass(frozen=True, slots=True)
class Permission:
    """The answer to a drain request: allowed, or the HTTP status to refuse it with."""

    allowed: bool
    status: int
    reason: str


def drain_permission(
    client_host: str | None,
    headers: Mapping[str, str],
    token: str | None,
    secure: bool = False,
) -> Permission:
    """Decide a ``POST /drainz``.

    ``headers`` maps lower-case header names to values; ``secure`` says the
    request came over TLS. The rules, in order:

    1. A cross-site browser request (:func:`cross_site`) is refused with 403,
       token or not: a page on another origin (another port of localhost
       included) must never drain this node.
    2. With ``token`` set, a request that sends ``Authorization: Bearer ...``
       is allowed if the token matches (compared in constant time) and
       refused with 401 if it does not, wherever it comes from.
    3. A request from a loopback address that no proxy relayed (none of
       :data:`FORWARDING_HEADERS`) and no browser sent (none of
       :data:`BROWSER_HEADERS`) is allowed: a ``preStop`` hook that runs
       inside the container.
    4. Anything else is refused: 401 when a token would allow it, else 403.
    """
    if cross_site(headers, secure):
        return Permission(False, 403, "a cross-site browser request may not drain")
    sent = bearer_token(headers.get("authorization"))
    if token and sent is not None:
        if hmac.compare_digest(sent.encode(), token.encode()):
            return Permission(True, 202, "bearer token")
        return Permission(False, 401, "wrong bearer token")
    relayed = any(name in headers for name in FORWARDING_HEADERS)
    local = is_loopback(client_host) and not relayed
    if local and not from_browser(headers):
        return Permission(True, 202, "loopback")
    if local and not token:
        return Permission(False, 403, "a browser needs WSHUB['DRAIN_TOKEN'] to drain")
    if token:
        return Permission(False, 401, "a bearer token is needed from outside this host")
    return Permission(False, 403, "allowed from loopback only (WSHUB['DRAIN_TOKEN'] is unset)")
