"""Signed, expiring tokens for WebSocket clients that carry no session cookie.

A token is made for a user by the app's own (cookie- or otherwise-authenticated)
HTTP code with :func:`make_token`, handed to the client (a mobile app, a page on
another origin), and sent back in the WebSocket handshake, where a consumer with
``token_auth = TokenAuth()`` checks it (see
:mod:`wshub_channels.connection.tokenauth`).

**Format.** ``Signer(salt=SALT, sep=".").sign_object(claims)``: URL-safe base64 of
the JSON claims, a ``.``, and an HMAC-SHA256 (Django's signing, keyed by
``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` are honoured while keys rotate). Only
letters, digits, ``-``, ``_`` and ``.``: HTTP token characters, so a token fits in a
``Sec-WebSocket-Protocol`` value. The claims are signed, not encrypted: they hold
nothing secret (a user pk, an expiry, a digest, a grant key).

**Claims.** ``u`` the user's pk (as a str), ``x`` the expiry (Unix seconds),
``h`` a digest of the user's session auth hash, ``g`` (optional) a grant key.

**Revocation.** We chose two bindings, both checked by :func:`check_token`:

- ``h`` is an HMAC of ``user.get_session_auth_hash()``, which Django derives from
  the password hash: a password change (or a ``SECRET_KEY`` rotation) revokes every
  token of the user made before it, as it logs out their other sessions.
- ``g``, given ``session=request.session`` to :func:`make_token`, binds the token to
  that login session. The grant is a small entry of its own in the session store
  (``SESSION_ENGINE``: db, cache, cached_db or file; not ``signed_cookies``), whose
  key is kept in the login session; Django's ``logout()`` fires
  ``user_logged_out``, and the receiver here deletes the grant, so every token of
  that session is refused afterwards. The grant's key is not the session's key: a
  token never lets anyone act as the user over HTTP. A grant lives as long as the
  longest token made for it; a login session that ends without ``logout()`` (it
  expires, or is deleted) leaves its tokens valid until they expire.

Without ``session``, a token survives a logout until it expires: keep ``max_age``
short. A user deleted or made inactive is refused too.

Thread-safe; :func:`check_token` and :func:`make_token` touch the database (use
:func:`acheck_token` from async code).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core import signing
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, ValidationError
from django.dispatch import receiver
from django.utils.crypto import constant_time_compare, salted_hmac

from .conf import get_settings
from .errors import TokenExpired, TokenInvalid, TokenMissing, TokenRevoked

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.sessions.backends.base import SessionBase

__all__ = [
    "MAX_TOKEN_LENGTH",
    "SALT",
    "TokenAuth",
    "TokenClaims",
    "acheck_token",
    "check_token",
    "make_token",
    "read_token",
    "revoke_session_tokens",
]

#: The signing salt: a token signed for anything else never passes here.
SALT = "wshub_channels.auth.token"
#: Longer strings are refused unread (a bound on the work a forged token can cost).
MAX_TOKEN_LENGTH = 1024
#: The login session's key holding its grant's key, and the grant's key holding the user.
GRANT_KEY = "_wshub_token_grant"
_GRANT_USER = "_wshub_token_user"


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """The token auth setting of a consumer: ``token_auth = TokenAuth(...)``.

    ``header``: read ``"wshub.token.<token>"`` from the offered subprotocols.
    ``first_message``: without a token in the handshake, accept and wait up to
    ``timeout`` seconds for a first frame ``{"t": "auth", "token": ...}``.
    ``query_param``: also read the token from this query-string parameter; off
    (None) by default, since URLs end up in server and proxy logs and in browser
    history. ``cookies``: a scope user that is already authenticated (Channels'
    ``AuthMiddlewareStack``, a session cookie) needs no token.
    """

    header: bool = True
    first_message: bool = True
    query_param: str | None = None
    cookies: bool = True
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ValueError("TokenAuth.timeout must be a positive number of seconds")
        if not (self.header or self.first_message or self.query_param):
            raise ValueError("TokenAuth needs at least one place to read a token from")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a well-signed, unexpired token says (before any revocation check)."""

    user_id: str
    expires: float
    digest: str
    grant: str | None


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=".")


def _digest(user: AbstractBaseUser) -> str:
    """An HMAC of the user's session auth hash (it changes with the password)."""
    return salted_hmac(SALT + ".user", user.get_session_auth_hash()).hexdigest()[:32]


def _session_store(session_key: str | None = None) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore(session_key)
    return store


def _grant(session: SessionBase, user: AbstractBaseUser, max_age: int) -> str:
    """The grant key of ``session`` for ``user``, made (or kept alive) for ``max_age``."""
    key = session.get(GRANT_KEY)
    grant = _session_store(key) if isinstance(key, str) else None
    if grant is None or grant.get(_GRANT_USER) != str(user.pk):
        grant = _session_store()
        grant[_GRANT_USER] = str(user.pk)
        grant.set_expiry(max_age)
        grant.create()
        if grant.session_key is None or not grant.exists(grant.session_key):
            raise ImproperlyConfigured(
                "token grants need a server-side SESSION_ENGINE (db, cache, cached_db, file)"
            )
    elif grant.get_expiry_age() < max_age:
        grant.set_expiry(max_age)
        grant.save()
    session[GRANT_KEY] = grant.session_key
    return str(grant.session_key)


def make_token(
    user: AbstractBaseUser, *, max_age: int | None = None, session: SessionBase | None = None
) -> str:
    """A token for ``user`` valid for ``max_age`` seconds (``WSHUB["TOKEN_MAX_AGE"]``).

    With ``session`` (the login's ``request.session``), ``logout()`` revokes it.
    Raises ``ValueError`` for an anonymous or unsaved user.
    """
    if not getattr(user, "is_authenticated", False) or user.pk is None:
        raise ValueError("a token needs an authenticated, saved user")
    age = get_settings().token_max_age if max_age is None else max_age
    if not (isinstance(age, int) and not isinstance(age, bool) and age > 0):
        raise ValueError("max_age must be a positive int of seconds")
    claims: dict[str, Any] = {"u": str(user.pk), "x": int(time.time()) + age, "h": _digest(user)}
    if session is not None:
        claims["g"] = _grant(session, user, age)
    return _signer().sign_object(claims)


def read_token(token: object, now: float | None = None) -> TokenClaims:
    """The claims of a token whose signature holds and that has not expired.

    Raises ``TokenMissing`` (empty), ``TokenInvalid`` (forged, altered, malformed:
    checked first, so a forged token is never reported as expired) or
    ``TokenExpired``. No database access.
    """
    if token is None or token == "":
        raise TokenMissing("no token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("malformed token")
    try:
        claims = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeError) as exc:
        raise TokenInvalid("bad token signature") from exc
    if not isinstance(claims, dict):
        raise TokenInvalid("malformed token claims")
    user_id, expires, digest, grant = (claims.get(k) for k in ("u", "x", "h", "g"))
    if not (
        isinstance(user_id, str)
        and isinstance(expires, int)
        and isinstance(digest, str)
        and (grant is None or isinstance(grant, str))
    ):
        raise TokenInvalid("malformed token claims")
    if (time.time() if now is None else now) >= expires:
        raise TokenExpired("token expired")
    return TokenClaims(user_id, float(expires), digest, grant)


def check_token(token: object) -> AbstractBaseUser:
    """The user a token stands for, or a typed ``TokenError``.

    :func:`read_token`'s errors, then ``TokenRevoked``: the user is gone or
    inactive, their password changed, or the login session the token was bound
    to logged out. Runs database queries: call :func:`acheck_token` from async code.
    """
    claims = read_token(token)
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=model._meta.pk.to_python(claims.user_id))
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise TokenRevoked("the token's user is gone") from exc
    if not getattr(user, "is_active", True):
        raise TokenRevoked("the token's user is inactive")
    if not constant_time_compare(claims.digest, _digest(user)):
        raise TokenRevoked("the user's password changed since the token was made")
    if claims.grant is not None and _session_store(claims.grant).get(_GRANT_USER) != str(user.pk):
        raise TokenRevoked("the token's login session logged out")
    return user


#: :func:`check_token` in a worker thread, closing stale database connections around it.
acheck_token = database_sync_to_async(check_token)


def revoke_session_tokens(session: SessionBase) -> None:
    """Refuse every token made with ``session`` from now on (``logout()`` calls this)."""
    key = session.get(GRANT_KEY)
    if isinstance(key, str):
        _session_store(key).delete(key)
        session.pop(GRANT_KEY, None)


@receiver(user_logged_out, dispatch_uid="wshub_channels.auth.revoke_on_logout")
def _revoke_on_logout(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        revoke_session_tokens(session)
