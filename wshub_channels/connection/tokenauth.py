"""Token auth in the handshake: where a consumer reads its token, and how it refuses.

A consumer with ``token_auth = TokenAuth(...)`` gets a :class:`TokenGate` at
connect. The gate runs after the hub state and origin checks and before the
connection slot is taken, so a refused client never holds a slot, is never
registered and never shows in a count:

1. ``"wshub.token.<token>"`` among the offered subprotocols (``TokenAuth.header``);
   every such entry is taken out of ``scope["subprotocols"]``, so neither the app
   nor the server's answer ever carries it. The server selects ``"wshub.v1"``
   when it is offered (a browser fails a handshake whose offered subprotocols all
   go unanswered: offer ``"wshub.v1"`` beside the token);
2. the ``TokenAuth.query_param`` parameter of the query string, when configured;
3. a user the scope already holds, authenticated (``TokenAuth.cookies``);
4. otherwise, with ``TokenAuth.first_message``, the gate accepts and waits
   ``TokenAuth.timeout`` seconds for a first frame ``{"t": "auth", "token": ...}``;
   the handshake (hub state, origin, slot, ``before_connect``, ``groups``,
   registration) then runs on, without a second accept. Frames the client sends
   meanwhile wait their turn and are handled once it is admitted.

The checked user goes into ``scope["user"]``, as Channels' ``AuthMiddlewareStack``
puts it, so ``user_id`` (the hub's user index) and the app's hooks see it.

**Refusals.** A close before accept is turned into HTTP 403 by daphne and uvicorn,
which would leave a client unable to tell an expired token (fetch a new one,
retry) from a forged one (stop). So a refused token is accepted, then closed at
once: 4401 (missing, forged, revoked) or 4419 (expired), with no frame in
between; a check that fails (the database is down) closes with 1011 (4011 under
daphne: retry with backoff). Any other refusal after an early accept (first-message path) closes
with 1013 (a connection limit), 1001 (draining), 1008 (``before_connect`` and
other refusals) or 1011 (an unexpected error), as 4xxx under daphne; before
accept they stay 403 as without tokens. Each refusal is logged (throttled) and
counted by the consumer, as ``handshakes_refused`` with the error's class name
(``TokenExpired``...). Use from the connection's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer

from ..auth import TokenAuth, acheck_token
from ..errors import (
    HubDraining,
    HubError,
    HubNotStarted,
    HubStopped,
    MaxConnectionsReached,
    MaxUserConnectionsReached,
    TokenError,
    TokenMissing,
)
from ..tasks import spawn
from ..types import AsgiMessage
from .closing import send_close

__all__ = ["PROTOCOL", "TOKEN_PREFIX", "Gated", "TokenGate", "close_refused"]

logger = logging.getLogger("wshub_channels.consumer")

PROTOCOL = "wshub.v1"
TOKEN_PREFIX = "wshub.token."
#: An auth frame longer than this is refused unread (tokens are a few hundred bytes).
MAX_AUTH_FRAME = 4096

Send = Callable[[AsgiMessage], Awaitable[None]]


class Gated(Protocol):
    """What the gate needs of its consumer."""

    scope: dict[str, Any]

    def _asgi_send(self, message: AsgiMessage) -> Awaitable[None]: ...
    async def websocket_connect(self, message: Any) -> None: ...


def subprotocol(scope: dict[str, Any]) -> str | None:
    """``"wshub.v1"`` when the client offers it, else None (the token is never echoed)."""
    return PROTOCOL if PROTOCOL in (scope.get("subprotocols") or ()) else None


class TokenGate:
    """The token auth of one connection, from the handshake to admission."""

    __slots__ = ("_consumer", "_error", "_settings", "_timer", "_token", "accepted", "state")

    def __init__(self, consumer: Gated, settings: TokenAuth) -> None:
        self._consumer = consumer
        self._settings = settings
        scope = consumer.scope
        offered = [str(p) for p in scope.get("subprotocols") or ()]
        tokens = [p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)]
        scope["subprotocols"] = [p for p in offered if not p.startswith(TOKEN_PREFIX)]
        self._token = tokens[0] if tokens and settings.header else None
        self._error: BaseException | None = None
        self._timer: asyncio.Task[None] | None = None
        self.accepted = False  # accepted before admission: refusals close with a code
        self.state = "new"  # new, waiting (for the auth frame), checking, admitted, refused

    @property
    def subprotocol(self) -> str | None:
        return subprotocol(self._consumer.scope)

    @property
    def holds_frames(self) -> bool:
        """True until the client is admitted: its frames go to :meth:`first_frame`."""
        return self.state in ("waiting", "checking", "refused")

    async def admit(self) -> bool:
        """True: the handshake goes on with the user in the scope. False: accepted,
        waiting for the auth frame. Raises a ``TokenError`` (or what the check
        raised) to refuse."""
        if self._error is not None:
            self.state = "refused"
            raise self._error
        if self.state == "admitted":
            return True
        settings, scope = self._settings, self._consumer.scope
        token = self._token or self._query_token()
        if token is not None:
            await self._check(token)
            return True
        if settings.cookies and getattr(scope.get("user"), "is_authenticated", False):
            self.state = "admitted"
            return True
        if not settings.first_message:
            self.state = "refused"
            raise TokenMissing("no token in the handshake")
        await self.accept()
        self.state = "waiting"
        self._timer = spawn(self._expire(settings.timeout), "token auth timeout")
        return False

    async def first_frame(self, data: str | bytes) -> bool:
        """Read the auth frame; True when the caller should run the handshake on
        (which admits, or refuses with what was found). Later frames: False."""
        if self.state != "waiting":
            return False
        self.state = "checking"
        self._stop_timer()
        try:
            await self._check(_auth_token(data))
        except Exception as exc:  # the re-run handshake refuses with it
            self._error = exc
        return True

    async def accept(self) -> None:
        """Accept now, selecting ``"wshub.v1"`` if offered (once)."""
        if not self.accepted:
            self.accepted = True
            await self._consumer._asgi_send(
                {"type": "websocket.accept", "subprotocol": self.subprotocol}
            )

    async def end(self, release: Callable[[], Awaitable[None]]) -> None:
        """The connection ended: stop the timer; a client never admitted nor refused
        (it left while waiting) gives its channel back through ``release``."""
        self._stop_timer()
        if self.state in ("waiting", "checking"):
            self.state = "refused"
            await release()

    async def _check(self, token: str) -> None:
        try:
            user = await acheck_token(token)
        except TokenError:
            raise
        except Exception:
            await self.accept()  # the check itself failed (database down): 1011, retry
            raise
        consumer = self._consumer
        consumer.scope["user"] = user
        vars(consumer).pop("_user_id", None)  # read again from the scope's user
        self.state = "admitted"

    def _query_token(self) -> str | None:
        name = self._settings.query_param
        if name is None:
            return None
        raw = self._consumer.scope.get("query_string", b"")
        values = parse_qs(raw.decode("latin-1") if isinstance(raw, bytes) else str(raw))
        return values.get(name, [None])[0]

    async def _expire(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if self.state != "waiting":
            return
        self.state = "checking"
        self._timer = None
        self._error = TokenMissing(f"no auth frame within {timeout:g} s")
        with contextlib.suppress(StopConsumer):  # the refusal ends the handshake here
            await self._consumer.websocket_connect({"type": "websocket.connect"})

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()


def _auth_token(data: str | bytes) -> str:
    """The token of an auth frame, else ``TokenMissing``."""
    if not isinstance(data, str) or len(data) > MAX_AUTH_FRAME:
        raise TokenMissing("the first frame is not an auth frame")
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        frame = None
    if not (isinstance(frame, dict) and frame.get("t") == "auth"):
        raise TokenMissing("the first frame is not an auth frame")
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise TokenMissing("the auth frame has no token")
    return token


def _after_accept_code(exc: BaseException) -> int:
    if isinstance(exc, TokenError):
        return exc.close_code
    if isinstance(exc, (MaxConnectionsReached, MaxUserConnectionsReached)):
        return 1013
    if isinstance(exc, (HubDraining, HubStopped, HubNotStarted)):
        return 1001
    if isinstance(exc, (HubError, PermissionError)):
        return 1008
    return 1011


async def close_refused(send: Send, gate: TokenGate | None, exc: BaseException, scope: Any) -> None:
    """Close a refused handshake: 403 (close before accept), or, for a token error or a
    connection accepted early, accept (if not yet) and close with a code."""
    if not isinstance(exc, TokenError) and (gate is None or not gate.accepted):
        await send({"type": "websocket.close", "code": 1008})  # the server answers 403
        return
    if gate is not None:
        await gate.accept()
    else:  # a hook raised a TokenError on a consumer without token_auth
        await send({"type": "websocket.accept", "subprotocol": subprotocol(scope)})
    await send_close(send, {"type": "websocket.close", "code": _after_accept_code(exc)})
