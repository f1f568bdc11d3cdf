"""The demo project (``demo_project/``) as real server processes, for browser and server tests.

:func:`demo_env` names a sqlite file and the demo's settings; :func:`migrate`
creates its tables and :func:`create_user` a login user, each with the demo's
own ``manage.py``, as a person following the README would. Serve it with the
``asgi_server`` fixture (``asgi_server("daphne", DEMO_APP, env)``) or, as
``./dev demo`` does, with :func:`start_runserver`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .servers import (
    LOCALHOST,
    REPO_ROOT,
    AsgiServer,
    ServerStartError,
    free_port,
    port_accepts,
    server_env,
    spawn,
    tail_text,
)
from .timing import Deadline, t

__all__ = [
    "DEMO_APP",
    "DEMO_SETTINGS",
    "create_user",
    "demo_env",
    "manage",
    "migrate",
    "start_runserver",
]

DEMO_APP = "demo_project.asgi:application"
DEMO_SETTINGS = "demo_project.settings"


def demo_env(db: Path, **extra: str) -> dict[str, str]:
    """Environment of a demo process using the sqlite file ``db``, plus ``extra``."""
    return {"DJANGO_SETTINGS_MODULE": DEMO_SETTINGS, "DEMO_DB": str(db), **extra}


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``python manage.py ARGS`` from the repository root; return its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=t(120),
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def migrate(env: dict[str, str]) -> None:
    """Create the demo's database tables (what ``./dev demo`` runs first)."""
    manage(env, "migrate", "--noinput", "-v", "0")


def create_user(env: dict[str, str], username: str, password: str) -> None:
    """Make a login user, as the README says: ``createsuperuser --noinput`` with the password
    in ``DJANGO_SUPERUSER_PASSWORD``."""
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": password},
        "createsuperuser",
        "--noinput",
        "--username",
        username,
        "--email",
        f"{username}@example.com",
    )


def start_runserver(env: dict[str, str], log_dir: Path) -> AsgiServer:
    """``manage.py runserver`` (daphne's, without the autoreloader) on a free port."""
    port = free_port()
    log_path = log_dir / f"runserver-{port}.log"
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"{LOCALHOST}:{port}"]
    proc = spawn(argv, log_path=log_path, env=server_env(env), cwd=REPO_ROOT)
    server = AsgiServer("daphne", DEMO_APP, port, proc, log_path)
    deadline = Deadline(t(30))
    while proc.poll() is None and not deadline.expired():
        if port_accepts(port):
            return server
        time.sleep(deadline.sleep_interval(0.1))
    server.stop(grace=t(2))
    raise ServerStartError(f"runserver on port {port} did not start:\n{tail_text(log_path)}")
