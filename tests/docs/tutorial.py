"""The tutorial (``docs/tutorial.md``) put together into a real project.

:func:`build_project` follows the page in a directory: it runs the page's
``django-admin`` and ``manage.py`` commands with this interpreter (the virtual
environment and ``pip install`` steps are what this test environment already
is), then writes each ``python`` and ``html`` block to the file its first line
names (``# chat/consumers.py``, ``{# chat/templates/chat/room.html #}``),
appending where the line says "add at the end". :func:`serve` starts the page's
``runserver`` (daphne's) on a free port.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tests.docs.blocks import DOCS, Block, code_blocks
from tests.rig.servers import (
    LOCALHOST,
    AsgiServer,
    ServerStartError,
    free_port,
    port_accepts,
    server_env,
    spawn,
    tail_text,
)
from tests.rig.timing import Deadline, t

__all__ = ["TUTORIAL", "build_project", "serve"]

TUTORIAL = DOCS / "tutorial.md"
_FILE_LINE = re.compile(r"^(?:#|\{#)\s*([\w./-]+\.(?:py|html))(\s*\(add at the end\))?\s*(?:#\})?$")
#: The commands of the page this test runs; the others set up what it already has.
_RUN = ("django-admin", "manage.py")


def _env(project: Path) -> dict[str, str]:
    return server_env({"DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(project)})


def _run(project: Path, words: list[str]) -> None:
    if Path(words[0]).name == "django-admin":
        argv = [sys.executable, "-m", "django", *words[1:]]
    else:
        argv = [sys.executable, *words[1:]]
    done = subprocess.run(
        argv,
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=t(120),
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(words)} failed:\n{done.stdout}\n{done.stderr}")


def _write(project: Path, block: Block) -> Path:
    first = block.text.partition("\n")[0]
    match = _FILE_LINE.match(first.strip())
    if match is None:
        raise ValueError(f"{block.where}: the first line does not name a file: {first!r}")
    path = project / match.group(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if match.group(2):
        with path.open("a") as out:
            out.write("\n" + block.text)
    else:
        path.write_text(block.text)
    return path


def build_project(project: Path) -> list[Path]:
    """Follow the tutorial in ``project`` up to ``runserver``; return the files written."""
    written: list[Path] = []
    for block in code_blocks(TUTORIAL):
        if block.lang == "sh":
            for line in block.text.splitlines():
                words = shlex.split(line, comments=True)
                runs = words and any(Path(w).name in _RUN for w in words[:2])
                if runs and "runserver" not in words:
                    _run(project, words)
        elif block.lang in {"python", "html"}:
            written.append(_write(project, block))
    return written


def serve(project: Path, log_dir: Path) -> AsgiServer:
    """``manage.py runserver`` (daphne's, no autoreloader) in ``project`` on a free port."""
    port = free_port()
    log_path = log_dir / f"tutorial-runserver-{port}.log"
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"{LOCALHOST}:{port}"]
    proc = spawn(argv, log_path=log_path, env=_env(project), cwd=project)
    server = AsgiServer("daphne", "mysite.asgi:application", port, proc, log_path)
    deadline = Deadline(t(30))
    while proc.poll() is None and not deadline.expired():
        if port_accepts(port):
            return server
        time.sleep(deadline.sleep_interval(0.1))
    server.stop(grace=t(2))
    raise ServerStartError(f"the tutorial's runserver did not start:\n{tail_text(log_path)}")
