"""The package root re-exports the public API, completely and once."""

from __future__ import annotations

import wshub_channels
from wshub_channels import errors


def test_exports_are_unique_and_importable() -> None:
    """__all__ has no duplicates and every name in it exists."""
    names = wshub_channels.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(wshub_channels, name), name


def test_every_error_and_core_name_is_exported() -> None:
    """Every error class and the core API names are at the package root."""
    expected = set(errors.__all__) | {
        "HubConsumer", "JsonHubConsumer", "get_hub", "Message", "Config", "Limits",
        "DropPolicy", "MiddlewareChain", "allow_all_origins", "allow_same_origin", "allow_origins",
    }  # fmt: skip
    assert expected <= set(wshub_channels.__all__)
