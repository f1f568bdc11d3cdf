"""Config and Limits: builders, the settings form, and the message-rate alias."""

from __future__ import annotations

import pytest

from wshub_channels import Config, DropPolicy, Limits

pytestmark = pytest.mark.unit


def test_config_and_limits_builders_and_dict_form() -> None:
    """Builders return modified copies; the settings form names bad keys and values."""
    base = Config.default()
    tuned = base.with_send_queue_size(8).with_drop_policy("drop_oldest").with_coalescing(True, 100)
    assert base.send_queue_size == 256 and tuned.send_queue_size == 8
    assert tuned.drop_policy is DropPolicy.DROP_OLDEST and tuned.coalesce_max_bytes == 100
    assert Config.from_dict({"drop_policy": "disconnect"}).drop_policy is DropPolicy.DISCONNECT
    with pytest.raises(ValueError, match="bogus"):
        Config.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="send_queue_size"):
        Config.from_dict({"send_queue_size": 0})
    limits = Limits.default().with_max_connections(5).with_rate_limit(10, 1000)
    assert (limits.max_connections, limits.max_messages_per_second) == (5, 10)
    with pytest.raises(ValueError, match="max_rooms_per_client"):
        Limits.from_dict({"max_rooms_per_client": -1})


def test_max_message_rate_is_the_name_and_max_messages_per_second_its_alias() -> None:
    """Both settings keys set the same rate; the builder and the property agree."""
    assert Limits.from_dict({"max_message_rate": 4}).max_message_rate == 4
    aliased = Limits.from_dict({"max_messages_per_second": 6})
    assert aliased.max_message_rate == 6 and aliased.max_messages_per_second == 6
    assert Limits().with_max_message_rate(3).max_message_rate == 3
    with pytest.raises(ValueError, match="alias"):
        Limits.from_dict({"max_message_rate": 1, "max_messages_per_second": 2})
