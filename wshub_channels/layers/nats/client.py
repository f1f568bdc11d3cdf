"""nats-py, imported once for the NATS backend, and the connect options built from CONFIG.

This is the only module that imports nats-py; without it, importing the
NATS backend raises ``ImproperlyConfigured`` with the install line. The
helpers are pure apart from reading TLS files, and thread-safe.

Secrets (a password, a token, an NKey seed, credentials in a server URL)
never leave this module in text: :func:`describe` and :func:`safe_server`
scrub them from anything that goes to a log or to ``BusStatus.last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

try:
    import nats.errors as nats_errors
    import nats.js.api as js_api
    import nats.js.errors as js_errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        'NatsHubLayer needs nats-py: pip install "wshub-channels[nats]"'
    ) from exc

__all__ = [
    "STATUS_HEADER",
    "Client",
    "ConnectOptions",
    "JetStreamContext",
    "KeyValue",
    "Msg",
    "Subscription",
    "confirm",
    "describe",
    "js_api",
    "js_errors",
    "nats_errors",
    "safe_server",
    "server_version",
    "tls_context",
]

#: Loop turns :func:`confirm` gives the client's flusher task before it pings anyway.
FLUSHER_TURNS = 50
#: The header of a status message (no responders is "503").
STATUS_HEADER = js_api.Header.STATUS
#: The user-info part of a URL, up to its last "@" (a password may hold "@" itself).
_URL_USERINFO = re.compile(r"//[^/\s]*@")


@dataclass(frozen=True)
class ConnectOptions:
    """What the layer's CONFIG says about reaching NATS; see ``NatsHubLayer``."""

    servers: list[str]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    nkeys_seed: str | None = field(default=None, repr=False)
    user_credentials: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connect_timeout: float = 2.0
    reconnect_time_wait: float = 0.25
    pending_size: int = 8 * 1024 * 1024
    ping_interval: float = 5.0

    def secrets(self) -> list[str]:
        """Every configured secret, to scrub from text (credentials in URLs included)."""
        found = [s for s in (self.password, self.token, self.nkeys_seed) if s]
        for url in self.servers:
            parts = urlsplit(url)
            found += [s for s in (parts.password, parts.username) if s]
        return found

    def kwargs(self, name: str, inbox_prefix: str) -> dict[str, Any]:
        """The keyword arguments of ``Client.connect`` (without the callbacks).

        The client reconnects forever: ``max_reconnect_attempts=-1``, with
        ``reconnect_time_wait`` between attempts at one server.
        """
        if not self.servers:
            raise ImproperlyConfigured("NatsHubLayer needs at least one entry in servers")
        options: dict[str, Any] = {
            "servers": list(self.servers),
            "name": name,
            "connect_timeout": self.connect_timeout,
            "reconnect_time_wait": self.reconnect_time_wait,
            "max_reconnect_attempts": -1,
            "allow_reconnect": True,
            "ping_interval": self.ping_interval,
            # nats-py calls a connection stale once more than this many pings are
            # unanswered: with 2, three silent intervals.
            "max_outstanding_pings": 2,
            "pending_size": self.pending_size,
            "inbox_prefix": inbox_prefix,
        }
        if self.user is not None:
            options["user"] = self.user
        if self.password is not None:
            options["password"] = self.password
        if self.token is not None:
            options["token"] = self.token
        if self.user_credentials is not None:
            options["user_credentials"] = self.user_credentials
        if self.nkeys_seed is not None:
            # A path to a seed file, or the seed itself ("SU..." for a user).
            if self.nkeys_seed.startswith("SU") and not os.path.exists(self.nkeys_seed):
                options["nkeys_seed_str"] = self.nkeys_seed
            else:
                options["nkeys_seed"] = self.nkeys_seed
        tls = tls_context(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        if tls is not None:
            options["tls"] = tls
        return options


def tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext | None:
    """An ``SSLContext`` trusting ``ca_file`` (else the system CAs), with a client
    certificate when ``cert_file`` is given; None when no TLS file is configured."""
    if ca_file is None and cert_file is None and key_file is None:
        return None
    if (cert_file is None) != (key_file is None):
        raise ImproperlyConfigured("NatsHubLayer: set both tls_cert_file and tls_key_file")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def safe_server(url: str) -> str:
    """Describe a server URL without the user and password it may carry."""
    return _URL_USERINFO.sub("//***@", url)


def describe(error: BaseException, secrets: list[str]) -> str:
    """``repr``-like text of an error with every secret and URL credential scrubbed."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return safe_server(text)


def server_version(client: Client) -> tuple[int, int, int]:
    """The connected server's version; (0, 0, 0) when it did not say."""
    version = client.connected_server_version
    try:
        return (version.major, version.minor, version.patch)
    except (TypeError, ValueError):
        return (0, 0, 0)


async def confirm(client: Client, timeout: float) -> None:
    """Return once the server has processed every command sent so far (a PING round trip).

    nats-py writes its PING straight to the socket, ahead of commands (a SUB,
    say) still in the buffer its flusher task writes, so the PONG could come
    back before the server saw them; let the flusher write them first (an
    extra round trip covers them if it is slow to).
    """
    wait = max(1, math.ceil(timeout))
    for _ in range(FLUSHER_TURNS):
        if client.pending_data_size == 0:
            break
        await asyncio.sleep(0)
    else:
        with contextlib.suppress(Exception):
            await client.flush(timeout=wait)
    with contextlib.suppress(Exception):
        await client.flush(timeout=wait)
