"""System checks: stable IDs, messages that name the problem."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings


def _ids() -> dict[str, str]:
    return {m.id or "": m.msg for m in run_checks() if (m.id or "").startswith("wshub")}


def test_clean_settings_pass() -> None:
    """The test settings raise no hub check."""
    assert _ids() == {}


@override_settings(WSHUB={"NOPE": 1})
def test_unknown_key_is_e001_naming_it() -> None:
    """An unknown WSHUB key is E001 and the message names the key."""
    assert "NOPE" in _ids()["wshub_channels.E001"]


@override_settings(WSHUB={"CONFIG": {"send_queue_size": -1}})
def test_bad_value_is_e001_naming_the_key() -> None:
    """A bad Config value is E001 naming CONFIG and the field."""
    message = _ids()["wshub_channels.E001"]
    assert "CONFIG" in message and "send_queue_size" in message


@override_settings(WSHUB={"LIMITS": {"max_rooms": 3}})
def test_unknown_limits_field_is_e001() -> None:
    """An unknown Limits field is reported by name."""
    assert "max_rooms" in _ids()["wshub_channels.E001"]


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
def test_non_hub_layer_is_e002() -> None:
    """A stock layer under the hub's alias is E002."""
    assert "InMemoryChannelLayer" in _ids()["wshub_channels.E002"]


@override_settings(WSHUB={"CONFIG": {"max_message_size": 32 * 1024 * 1024}})
def test_message_size_above_server_limit_is_w001() -> None:
    """max_message_size above the server's own limit warns W001."""
    assert "max_message_size" in _ids()["wshub_channels.W001"]


@override_settings(
    WSHUB={
        "CONFIG": {"max_message_size": 64 * 1024},
        "LIMITS": {"max_bytes_per_second": 16 * 1024, "burst": 2},
    }
)
def test_byte_bucket_smaller_than_max_message_size_is_w003() -> None:
    """A byte bucket (rate x burst) below max_message_size warns W003 with both figures."""
    message = _ids()["wshub_channels.W003"]
    assert "max_bytes_per_second" in message and "32768" in message and "65536" in message


@override_settings(
    WSHUB={
        "CONFIG": {"max_message_size": 64 * 1024},
        "LIMITS": {"max_bytes_per_second": 64 * 1024},  # burst 0: one second's worth
    }
)
def test_byte_bucket_that_holds_a_whole_message_passes() -> None:
    """A bucket of one second's worth that holds max_message_size raises no W003."""
    assert "wshub_channels.W003" not in _ids()


@override_settings(
    WSHUB={"CONFIG": {"max_message_size": 2 * 1024 * 1024, "compression": True}},
    INSTALLED_APPS=[
        "daphne",
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "channels",
        "wshub_channels",
    ],
)
def test_daphne_limits_warn() -> None:
    """With daphne installed, 2 MiB messages warn W001 and compression warns W002."""
    ids = _ids()
    assert "daphne" in ids["wshub_channels.W001"] and "wshub_channels.W002" in ids
