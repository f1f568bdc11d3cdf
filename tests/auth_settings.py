"""Settings of the token-auth test servers: the test settings plus sessions, on a file database.

``WSHUB_AUTH_DB`` names the sqlite file (the test migrates it first); login
sessions live in the database, as Django's default ``SESSION_ENGINE`` keeps them.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("WSHUB_AUTH_DB", "auth-test.sqlite3"),
        # Concurrent logins write sessions: wait for the lock instead of failing, and take
        # it when a transaction begins (a deferred one that upgrades to a write fails at
        # once with "database is locked", whatever the timeout).
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
}
ROOT_URLCONF = "tests.apps.auth_app"
