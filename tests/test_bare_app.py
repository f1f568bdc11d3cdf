"""The app imports and serves without django.contrib.admin, auth or contenttypes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.rig.servers import REPO_ROOT, server_env
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

SCRIPT = """
import asyncio, django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["channels", "wshub_channels"],
    CHANNEL_LAYERS={"default": {"BACKEND": "wshub_channels.layers.InMemoryHubLayer"}},
)
django.setup()
from django.core import management
management.call_command("check")
from wshub_channels import get_hub
from wshub_channels.models import Connection
assert Connection._meta.managed is False

async def main():
    hub = get_hub()
    await hub.start()
    print("clients", await hub.global_client_count(), len(await hub.nodes()))
    await hub.shutdown()

asyncio.run(main())
"""


def test_the_app_runs_without_admin_auth_or_contenttypes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**server_env(), "DJANGO_SETTINGS_MODULE": ""},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "clients 0 1" in done.stdout
