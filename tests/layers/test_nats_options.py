"""NatsHubLayer's CONFIG as nats-py connect options, and errors without secrets (no server)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from wshub_channels.layers import NatsHubLayer
from wshub_channels.layers.nats.client import ConnectOptions, describe, safe_server

pytestmark = pytest.mark.unit


def test_connect_options_retry_forever_and_carry_the_credentials() -> None:
    """Unlimited reconnects with a short wait; every credential reaches nats-py."""
    options = ConnectOptions(
        servers=["nats://a:4222", "nats://b:4222"],
        user="u",
        password="p",
        token="t",
        user_credentials="/etc/nats/user.creds",
        reconnect_time_wait=0.2,
    ).kwargs("wshub-node", "_INBOX.node")
    assert options["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert options["max_reconnect_attempts"] == -1 and options["allow_reconnect"]
    assert options["reconnect_time_wait"] == 0.2
    assert (options["user"], options["password"], options["token"]) == ("u", "p", "t")
    assert options["user_credentials"] == "/etc/nats/user.creds"
    assert options["inbox_prefix"] == "_INBOX.node" and "tls" not in options


def test_nkeys_seed_is_a_file_or_the_seed_itself(tmp_path: Path) -> None:
    """A seed string goes to nkeys_seed_str; a path to nkeys_seed."""
    seed = "SU" + "A" * 56  # the shape of a user seed; never used to sign here
    as_text = ConnectOptions(servers=["nats://a"], nkeys_seed=seed).kwargs("n", "_INBOX.n")
    assert as_text["nkeys_seed_str"] == seed and "nkeys_seed" not in as_text
    path = tmp_path / "user.nk"
    path.write_text(seed)
    as_file = ConnectOptions(servers=["nats://a"], nkeys_seed=str(path)).kwargs("n", "_INBOX.n")
    assert as_file["nkeys_seed"] == str(path)


def test_tls_files_build_a_context_and_a_half_pair_is_refused(tmp_path: Path) -> None:
    """A CA file alone gives a verifying context; a certificate without its key is an error."""
    ca = Path(ssl.get_default_verify_paths().openssl_cafile or "")
    if not ca.is_file():
        pytest.skip("no system CA bundle to stand in for a private CA")
    options = ConnectOptions(servers=["tls://a"], tls_ca_file=str(ca)).kwargs("n", "_INBOX.n")
    assert isinstance(options["tls"], ssl.SSLContext)
    assert options["tls"].verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ImproperlyConfigured, match="tls_key_file"):
        NatsHubLayer(servers=["tls://a"], tls_cert_file=str(ca))


def test_errors_and_urls_never_show_secrets() -> None:
    """describe() and safe_server() scrub passwords, tokens, seeds and URL credentials."""
    error = ConnectionError("auth failed for nats://bob:hunter2@host:4222 with token tok123")
    text = describe(error, ["hunter2", "tok123"])
    assert "hunter2" not in text and "tok123" not in text and "bob" not in text
    assert text.startswith("ConnectionError: ")
    assert safe_server("nats://bob:hunter2@host:4222") == "nats://***@host:4222"
    assert safe_server("nats://host:4222") == "nats://host:4222"


def test_a_single_server_string_is_a_list_of_one() -> None:
    layer = NatsHubLayer(servers="nats://one:4222")
    assert layer.bus._conn.options.servers == ["nats://one:4222"]  # type: ignore[attr-defined]


def test_a_layer_not_started_yet_has_no_client_and_no_payload_limit() -> None:
    """Before its first open, the NATS transport says None, not AttributeError."""
    from wshub_channels.layers import NatsHubLayer

    transport = NatsHubLayer(servers=["nats://127.0.0.1:1"]).transport
    assert transport.client is None and transport.max_payload is None
