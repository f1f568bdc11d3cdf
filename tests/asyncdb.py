"""``async_db``: the test database for async tests, closed again in the sync thread.

Async code reaches the database from asgiref's one thread-sensitive worker thread
(``database_sync_to_async``, the async ORM). pytest-django's in-memory sqlite
connection there is never closed (closing it would drop an in-memory database),
so a later test that is not allowed the database would meet it when Channels'
consumers call ``close_old_connections`` in that thread. The fixture closes that
thread's own handle at teardown; the database lives on through the main thread's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async

__all__ = ["async_db"]


def _close_this_threads_connections() -> None:
    from django.db import connections
    from django.db.backends.base.base import BaseDatabaseWrapper

    for conn in connections.all(initialized_only=True):
        BaseDatabaseWrapper.close(conn)  # the real close, even for an in-memory sqlite


@pytest.fixture
async def async_db(transactional_db: None) -> AsyncIterator[None]:
    yield
    await sync_to_async(_close_this_threads_connections)()
