"""Tokens: made, checked, and refused for every reason, each with its own error."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings

from tests.asyncdb import async_db  # noqa: F401  (fixture)
from wshub_channels.auth import (
    MAX_TOKEN_LENGTH,
    SALT,
    TokenAuth,
    acheck_token,
    check_token,
    make_token,
    read_token,
    revoke_session_tokens,
)
from wshub_channels.conf import get_settings, parse_settings
from wshub_channels.errors import (
    AuthenticationFailed,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
)

pytestmark = [pytest.mark.unit, pytest.mark.django_db]

#: A server-side session store that needs no table (tests/settings.py has no sessions app).
CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
#: What a Sec-WebSocket-Protocol value may hold (RFC 9110 tchar), ':' and '=' excluded.
TOKEN_CHARS = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@pytest.fixture(autouse=True)
def cache_sessions() -> Iterator[None]:
    with override_settings(SESSION_ENGINE=CACHE_SESSIONS):
        yield


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("ada", password="pw-1")


def logged_in(user: Any) -> Any:
    """A request whose session logged ``user`` in, as the login view leaves it."""
    from importlib import import_module

    from django.conf import settings

    request = RequestFactory().get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return request


def signed(claims: dict[str, Any], salt: str = SALT, key: str | None = None) -> str:
    return signing.Signer(salt=salt, sep=".", key=key).sign_object(claims)


def test_a_token_names_its_user_and_holds_only_token_characters(user: User) -> None:
    token = make_token(user)
    assert TOKEN_CHARS.match(token) and ":" not in token
    assert check_token(token) == user
    claims = read_token(token)
    assert claims.user_id == str(user.pk) and claims.grant is None
    assert time.time() + 290 < claims.expires <= time.time() + 300  # TOKEN_MAX_AGE


@pytest.mark.usefixtures("async_db")
async def test_acheck_token_checks_from_async_code() -> None:
    user = await User.objects.acreate_user("async-ada", password="pw")
    assert await acheck_token(make_token(user)) == user


def test_max_age_comes_from_the_call_or_the_setting(user: User) -> None:
    assert read_token(make_token(user, max_age=10)).expires <= time.time() + 10
    with override_settings(WSHUB={"TOKEN_MAX_AGE": 3600}):
        assert get_settings().token_max_age == 3600
        assert read_token(make_token(user)).expires > time.time() + 3500


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "60"])
def test_a_bad_max_age_is_refused(user: User, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_age"):
        make_token(user, max_age=bad)
    with pytest.raises(ImproperlyConfigured, match="TOKEN_MAX_AGE"):
        parse_settings({"TOKEN_MAX_AGE": bad})


def test_no_token_for_an_anonymous_or_unsaved_user() -> None:
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(ValueError, match="authenticated"):
        make_token(AnonymousUser())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="authenticated"):
        make_token(User(username="nobody"))


def test_an_expired_token_is_expired(user: User) -> None:
    token = make_token(user, max_age=5)
    assert read_token(token, now=time.time() + 4).user_id == str(user.pk)
    with pytest.raises(TokenExpired) as caught:
        read_token(token, now=time.time() + 6)
    assert caught.value.close_code == 4419
    past = read_token(token)
    stale = signed({"u": past.user_id, "x": int(time.time()) - 1, "h": past.digest})
    with pytest.raises(TokenExpired):
        check_token(stale)


@pytest.mark.parametrize("missing", [None, ""])
def test_no_token_is_missing(missing: Any) -> None:
    with pytest.raises(TokenMissing) as caught:
        check_token(missing)
    assert caught.value.close_code == 4401
    assert isinstance(caught.value, AuthenticationFailed)


def test_forged_tokens_are_invalid_and_never_expired(user: User) -> None:
    """A changed signature, changed claims, another key or salt, junk: all TokenInvalid,
    an expired forgery included (the signature is checked first)."""
    token = make_token(user)
    body, _, sig = token.rpartition(".")
    other = get_user_model().objects.create_user("eve", password="pw")
    forged_claims = make_token(other).rpartition(".")[0]
    expired = {"u": str(user.pk), "x": 1, "h": "0"}
    forgeries = [
        f"{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}",
        f"{forged_claims}.{sig}",
        signed(expired, key="not-the-secret-key"),
        signed(expired, salt="django.core.signing"),
        "no-dot-at-all",
        "....",
        "x" * (MAX_TOKEN_LENGTH + 1),
        signed(["a", "list"]),  # type: ignore[arg-type]
        signed({"u": 1, "x": int(time.time()) + 60, "h": "0"}),
    ]
    for forged in forgeries:
        with pytest.raises(TokenInvalid) as caught:
            check_token(forged)
        assert caught.value.close_code == 4401, forged
    with pytest.raises(TokenInvalid):
        check_token(12345)


def test_a_password_change_revokes_earlier_tokens(user: User) -> None:
    token = make_token(user)
    user.set_password("pw-2")
    user.save()
    with pytest.raises(TokenRevoked) as caught:
        check_token(token)
    assert caught.value.close_code == 4401 and isinstance(caught.value, TokenInvalid)
    assert check_token(make_token(user)) == user


def test_logout_revokes_the_tokens_of_its_session(user: User) -> None:
    request = logged_in(user)
    first = make_token(user, session=request.session)
    second = make_token(user, session=request.session)
    assert read_token(first).grant == read_token(second).grant  # one grant per session
    other_session = make_token(user, session=logged_in(user).session)
    unbound = make_token(user)
    assert check_token(first) == check_token(second) == user
    logout(request)
    for replayed in (first, second):
        with pytest.raises(TokenRevoked, match="logged out"):
            check_token(replayed)
    assert check_token(other_session) == user  # another login of the same user
    assert check_token(unbound) == user  # no session: lives until it expires


def test_revoke_session_tokens_without_logout(user: User) -> None:
    request = logged_in(user)
    token = make_token(user, session=request.session)
    revoke_session_tokens(request.session)
    with pytest.raises(TokenRevoked):
        check_token(token)
    fresh = make_token(user, session=request.session)  # a new grant for the same session
    assert check_token(fresh) == user


def test_a_grant_outlives_its_longest_token(user: User) -> None:
    from importlib import import_module

    from django.conf import settings

    request = logged_in(user)
    make_token(user, session=request.session, max_age=60)
    grant = read_token(make_token(user, session=request.session, max_age=900)).grant
    store = import_module(settings.SESSION_ENGINE).SessionStore(grant)
    assert store.get_expiry_age() >= 899
    make_token(user, session=request.session, max_age=30)
    assert import_module(settings.SESSION_ENGINE).SessionStore(grant).get_expiry_age() >= 890


def test_a_gone_or_inactive_user_is_revoked(user: User) -> None:
    token = make_token(user)
    user.is_active = False
    user.save()
    with pytest.raises(TokenRevoked, match="inactive"):
        check_token(token)
    user.delete()
    with pytest.raises(TokenRevoked, match="gone"):
        check_token(token)


def test_signed_cookie_sessions_cannot_hold_a_grant(user: User) -> None:
    request = logged_in(user)
    with (
        override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"),
        pytest.raises(ImproperlyConfigured, match="server-side SESSION_ENGINE"),
    ):
        make_token(user, session=request.session)


def test_token_auth_settings_are_checked() -> None:
    assert TokenAuth().header and TokenAuth().first_message and TokenAuth().query_param is None
    with pytest.raises(ValueError, match="timeout"):
        TokenAuth(timeout=0)
    with pytest.raises(ValueError, match="at least one place"):
        TokenAuth(header=False, first_message=False)
    assert TokenAuth(header=False, first_message=False, query_param="token").query_param
