"""Origin checks as pure functions of an ASGI scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from wshub_channels import Config
from wshub_channels.origin import (
    allow_all_origins,
    allow_origins,
    allow_same_origin,
    resolve,
)

pytestmark = pytest.mark.unit


def scope(
    origin: str | None = None, host: str | None = "example.com", scheme: str = "ws"
) -> dict[str, Any]:
    headers = [(b"user-agent", b"test")]
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


def only_localhost(scope: Mapping[str, Any]) -> bool:
    """A custom check, named by dotted path in the tests below."""
    return any(k == b"origin" and v == b"http://localhost" for k, v in scope["headers"])


def test_same_origin_is_the_default_check() -> None:
    """Config's default check_origin is the dotted path of allow_same_origin."""
    assert resolve(Config().check_origin) is allow_same_origin


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://example.com", "example.com", "ws"),
        ("http://example.com:80", "example.com", "ws"),
        ("http://example.com", "example.com:80", "ws"),
        ("http://EXAMPLE.com", "Example.COM", "ws"),
        ("http://example.com:8000", "example.com:8000", "ws"),
        ("https://example.com", "example.com", "wss"),
        ("https://example.com:443", "example.com", "wss"),
        ("http://[::1]:8000", "[::1]:8000", "ws"),
    ],
)
def test_same_origin_allows_matching_host_and_port(origin: str, host: str, scheme: str) -> None:
    """allow_same_origin allows an Origin whose host and (default) port match the Host header."""
    assert allow_same_origin(scope(origin, host, scheme)) is True


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://evil.com", "example.com", "ws"),
        ("http://example.com.evil.com", "example.com", "ws"),
        ("http://example.com:8000", "example.com", "ws"),
        ("http://example.com", "example.com:8000", "ws"),
        ("https://example.com", "example.com", "ws"),  # 443 against 80
        ("http://example.com", "example.com", "wss"),  # 80 against 443
        ("null", "example.com", "ws"),
        ("http://example.com", None, "ws"),  # no Host header to compare with
    ],
)
def test_same_origin_refuses_other_hosts_ports_and_schemes(
    origin: str, host: str | None, scheme: str
) -> None:
    """allow_same_origin refuses another host or port, an opaque origin, or a missing Host."""
    assert allow_same_origin(scope(origin, host, scheme)) is False


def test_same_origin_reads_header_names_case_insensitively() -> None:
    """Header names are matched case-insensitively (raw servers may not lowercase them)."""
    raw = {"scheme": "ws", "headers": [(b"Host", b"example.com"), (b"Origin", b"http://evil.com")]}
    assert allow_same_origin(raw) is False
    raw["headers"][1] = (b"ORIGIN", b"http://example.com")
    assert allow_same_origin(raw) is True


def test_missing_origin_header_is_allowed_by_the_built_in_checks() -> None:
    """A handshake with no Origin header (a non-browser client) passes every built-in check."""
    no_origin = scope(origin=None)
    assert allow_same_origin(no_origin) is True
    assert allow_same_origin({"headers": []}) is True  # no Host either
    assert allow_all_origins(no_origin) is True
    assert allow_origins("https://example.com")(no_origin) is True


def test_allow_origins_require_refuses_a_missing_origin() -> None:
    """allow_origins(..., require=True) refuses a handshake without an Origin header."""
    check = allow_origins("https://example.com", require=True)
    assert check(scope(origin=None)) is False
    assert check(scope("https://example.com")) is True


def test_allow_all_origins_allows_anything() -> None:
    """allow_all_origins allows any Origin, even a foreign or opaque one."""
    for origin in ("http://evil.com", "null", "https://example.com:1"):
        assert allow_all_origins(scope(origin)) is True


def test_allow_origins_list_is_exact_and_case_insensitive() -> None:
    """allow_origins allows only the listed origins, ignoring case and a trailing slash."""
    check = allow_origins("https://app.example.com", "http://localhost:8000/")
    assert check(scope("https://app.example.com"))
    assert check(scope("HTTPS://App.Example.com/"))
    assert check(scope("http://localhost:8000"))
    assert not check(scope("http://app.example.com"))  # scheme differs
    assert not check(scope("https://app.example.com:8443"))  # port differs
    assert not check(scope("https://example.com"))
    assert not check(scope("http://localhost"))


def test_resolve_returns_a_callable_itself() -> None:
    """resolve() returns a callable check unchanged."""
    check = allow_origins("https://a.example")
    assert resolve(check) is check
    assert resolve(only_localhost) is only_localhost


def test_resolve_imports_a_dotted_path() -> None:
    """resolve() imports a built-in or custom check from its dotted path."""
    assert resolve("wshub_channels.origin.allow_all_origins") is allow_all_origins
    custom = resolve(f"{__name__}.only_localhost")
    assert custom(scope("http://localhost")) is True
    assert custom(scope("http://example.com")) is False


def test_resolve_of_a_bad_dotted_path_raises_import_error() -> None:
    """resolve() of a path naming nothing raises ImportError."""
    with pytest.raises(ImportError):
        resolve("wshub_channels.origin.no_such_check")
