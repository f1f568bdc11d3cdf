"""Every module declares __all__; the root re-exports the public API, completely and once."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import types

import pytest
from django.apps import apps

import wshub_channels
from wshub_channels import errors

pytestmark = pytest.mark.unit


def _modules() -> list[types.ModuleType]:
    """Every module of the package, but the admin registrations when the admin is not
    installed (Django imports ``wshub_channels.admin`` only when it is)."""
    found = []
    admin = apps.is_installed("django.contrib.admin")
    for info in pkgutil.walk_packages(wshub_channels.__path__, "wshub_channels."):
        if ".migrations" in info.name or ".management" in info.name:
            continue
        if info.name == "wshub_channels.admin" and not admin:
            continue
        found.append(importlib.import_module(info.name))
    return found


def test_exports_are_unique_and_importable() -> None:
    """__all__ has no duplicates and every name in it exists."""
    names = wshub_channels.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(wshub_channels, name), name


def test_root_all_lists_every_public_name_it_binds() -> None:
    """Every public name the root imports is in __all__, and nothing else is."""
    bound = {
        name
        for name, value in vars(wshub_channels).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }
    assert bound == set(wshub_channels.__all__)


def test_every_error_is_exported_from_the_root() -> None:
    """Every error class of wshub_channels.errors is at the package root."""
    assert set(errors.__all__) <= set(wshub_channels.__all__)


def test_every_module_declares_a_complete_all() -> None:
    """Each module's __all__ names only what it defines or imports, with no duplicates."""
    for module in _modules():
        names = getattr(module, "__all__", None)
        assert names is not None, f"{module.__name__} has no __all__"
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
