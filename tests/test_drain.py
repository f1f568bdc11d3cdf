"""The drain policy (pure): batches of closes, and who may ask a node to drain."""

from __future__ import annotations

import pytest

from wshub_channels.core.access import bearer_token, drain_permission, is_loopback
from wshub_channels.core.drain import DRAIN_INTERVAL, batches, closing_time

pytestmark = pytest.mark.unit


def test_batches_cut_in_order_with_a_short_last_batch() -> None:
    """Batches keep the order and sizes; the last one holds the rest."""
    assert batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert batches(list(range(6)), 3) == [[0, 1, 2], [3, 4, 5]]
    assert batches([], 500) == []
    assert batches(["a"], 500) == [["a"]]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        batches([1], 0)


def test_closing_time_is_one_interval_per_batch_after_the_first() -> None:
    """1,200 clients at 500 per batch: three batches, two intervals."""
    assert closing_time(1200, 500) == pytest.approx(2 * DRAIN_INTERVAL)
    assert closing_time(500, 500) == 0.0
    assert closing_time(0, 500) == 0.0
    assert closing_time(10, 3, interval=1.0) == 3.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("203.0.113.7", False),
        ("::ffff:10.0.0.1", False),
        ("localhost", False),  # the ASGI client address is an IP; a name is not trusted
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def _ask(host: str | None, token: str | None, /, **headers: str) -> tuple[bool, int]:
    found = drain_permission(host, {k.replace("_", "-"): v for k, v in headers.items()}, token)
    return found.allowed, found.status


def test_loopback_may_drain_without_a_token() -> None:
    """A preStop hook inside the container reaches /drainz over loopback."""
    assert _ask("127.0.0.1", None) == (True, 202)
    assert _ask("::1", "tok") == (True, 202)


def test_remote_without_a_token_setting_is_forbidden() -> None:
    assert _ask("10.1.2.3", None) == (False, 403)
    assert _ask("10.1.2.3", None, authorization="Bearer anything") == (False, 403)


def test_a_relayed_request_is_not_loopback() -> None:
    """A local reverse proxy relays outside requests from 127.0.0.1: they are not local."""
    assert _ask("127.0.0.1", None, x_forwarded_for="203.0.113.7") == (False, 403)
    assert _ask("127.0.0.1", None, forwarded="for=203.0.113.7") == (False, 403)
    assert _ask("127.0.0.1", None, x_real_ip="203.0.113.7") == (False, 403)
    assert _ask("127.0.0.1", "tok", x_forwarded_for="203.0.113.7") == (False, 401)


def test_the_bearer_token_allows_a_drain_from_anywhere() -> None:
    assert _ask("10.1.2.3", "tok", authorization="Bearer tok") == (True, 202)
    assert _ask("127.0.0.1", "tok", x_forwarded_for="1.2.3.4", authorization="Bearer tok") == (
        True,
        202,
    )


def test_a_wrong_or_missing_token_is_unauthorized() -> None:
    """With a token set, a wrong one is refused even from loopback; none is 401 from outside."""
    assert _ask("10.1.2.3", "tok") == (False, 401)
    assert _ask("10.1.2.3", "tok", authorization="Bearer nope") == (False, 401)
    assert _ask("127.0.0.1", "tok", authorization="Bearer nope") == (False, 401)
    assert _ask("10.1.2.3", "tok", authorization="Basic tok") == (False, 401)


def test_a_browser_on_loopback_needs_the_token() -> None:
    """A page open in a browser on the host (same origin) cannot drain without the token."""
    page = {"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}
    assert _ask("127.0.0.1", None, **page) == (False, 403)
    assert _ask("127.0.0.1", None, sec_fetch_site="same-origin", host="127.0.0.1:8000") == (
        False,
        403,
    )
    assert _ask("127.0.0.1", "tok", **page) == (False, 401)
    assert _ask("127.0.0.1", "tok", authorization="Bearer tok", **page) == (True, 202)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example", "host": "127.0.0.1:8000"},
        {"origin": "http://127.0.0.1:3000", "host": "127.0.0.1:8000"},  # another local port
        {"origin": "http://localhost:8000", "host": "127.0.0.1:8000"},
        {"origin": "null", "host": "127.0.0.1:8000"},
        {"origin": "http://127.0.0.1:8000"},  # no Host to compare with
        {"sec_fetch_site": "cross-site"},
        {"sec_fetch_site": "same-site", "host": "127.0.0.1:8000"},
        {
            "sec_fetch_site": "cross-site",
            "origin": "http://127.0.0.1:8000",
            "host": "127.0.0.1:8000",
        },
    ],
)
def test_a_cross_site_request_is_refused_even_with_the_token(headers: dict[str, str]) -> None:
    """A page of another origin may never drain, even if it somehow holds the token."""
    assert _ask("127.0.0.1", None, **headers) == (False, 403)
    assert _ask("127.0.0.1", "tok", authorization="Bearer tok", **headers) == (False, 403)


def test_tls_sets_the_default_port_of_origin_and_host() -> None:
    page = {"origin": "https://hub.example", "host": "hub.example:443", "authorization": "Bearer t"}
    found = drain_permission("10.0.0.1", page, "t", secure=True)
    assert (found.allowed, found.status) == (True, 202)
    plain = {**page, "host": "hub.example"}  # over plain http the Host means port 80
    found = drain_permission("10.0.0.1", plain, "t", secure=False)
    assert (found.allowed, found.status) == (False, 403)
    found = drain_permission("10.0.0.1", plain, "t", secure=True)
    assert (found.allowed, found.status) == (True, 202)
