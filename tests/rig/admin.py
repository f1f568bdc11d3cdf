"""The admin test process: Django's admin served by wsgiref on a file database, on a bus.

:func:`start_admin_server` runs ``tests.apps.wsgi_admin`` (users ``boss``,
``viewer`` and ``plain``, password ``pw``) with the environment of a test
cluster node, waits for it to say ``ready``, and stops it by PID on exit.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .servers import LOCALHOST, REPO_ROOT, free_port, server_env, spawn, stop_process
from .timing import Deadline, t

__all__ = ["AdminServer", "start_admin_server"]


@dataclass(frozen=True)
class AdminServer:
    url: str
    log: Path


@contextlib.contextmanager
def start_admin_server(bus_env: Mapping[str, str], scratch: Path) -> Iterator[AdminServer]:
    """Serve the admin on a free port with ``bus_env`` (see ``node_env``) and a file database."""
    port = free_port()
    env = server_env(
        {
            **bus_env,
            "DJANGO_SETTINGS_MODULE": "tests.admin_settings",
            "WSHUB_ADMIN_DB": str(scratch / "admin.sqlite3"),
        }
    )
    log = scratch / "wsgi.log"
    proc = spawn(
        [sys.executable, "-m", "tests.apps.wsgi_admin", str(port)],
        log_path=log,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        deadline = Deadline(t(30))
        while "ready" not in log.read_text():
            if proc.poll() is not None or deadline.expired():
                raise RuntimeError(f"the admin server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(deadline.sleep_interval(0.05))
        yield AdminServer(f"http://{LOCALHOST}:{port}", log)
    finally:
        stop_process(proc)
