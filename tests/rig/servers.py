"""Real server processes for tests: shared process helpers and ASGI servers (daphne/uvicorn).

The ASGI part starts ``daphne`` or ``uvicorn`` as a separate process on a free local port,
exactly as a deployment would, so tests exercise the real protocol servers rather than an
in-process shim. Processes are always stopped by PID (SIGTERM, a grace period, then
SIGKILL) and every wait is a poll bounded by a deadline from :mod:`tests.rig.timing`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol, get_args

from .timing import Deadline, t

__all__ = [
    "DEFAULT_SETTINGS_MODULE",
    "LOCALHOST",
    "REPO_ROOT",
    "AsgiKind",
    "AsgiServer",
    "ServerStartError",
    "StartAsgiServer",
    "asgi_command",
    "free_port",
    "manage",
    "pid_exists",
    "port_accepts",
    "restart_asgi_server",
    "scratch_dir",
    "server_env",
    "spawn",
    "start_asgi_server",
    "stop_process",
    "tail_text",
]

#: The repository root (the directory holding ``wshub_channels/`` and ``tests/``).
REPO_ROOT: Path = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"
DEFAULT_SETTINGS_MODULE = "tests.settings"

AsgiKind = Literal["daphne", "uvicorn"]

#: Log lines suggesting the port picked by :func:`free_port` was taken in the meantime.
_PORT_IN_USE_MARKERS = ("address already in use", "errno 98", "eaddrinuse")


class ServerStartError(RuntimeError):
    """A server process did not come up; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------
# Small process and network helpers (shared with tests.rig.brokers)
# --------------------------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` distinct ports free on ``host`` right now (the OS may hand one out twice)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


def port_accepts(port: int, host: str = LOCALHOST, timeout: float | None = None) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=t(0.5) if timeout is None else timeout):
            return True
    except OSError:
        return False


def pid_exists(pid: int) -> bool:
    """True if a live (non-zombie) process has this PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: the kill(0) answer is all we have
    # The state field follows the parenthesised command name, which may contain spaces.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def tail_text(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a (log) file, or a note if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Processes started by the rig and not yet stopped; stopped at interpreter exit as a last
# resort, so an aborted session does not leave brokers or servers running.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``; stdin is closed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=None if cwd is None else str(cwd),
        )
    with _live_lock:
        _live.add(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], grace: float | None = None) -> None:
    """Stop ``proc`` by PID: SIGTERM, wait up to ``grace`` seconds, then SIGKILL and reap.

    Safe to call more than once. ``grace`` defaults to 5 time units.
    """
    grace = t(5) if grace is None else grace
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=t(10))
    finally:
        with _live_lock:
            _live.discard(proc)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        with contextlib.suppress(Exception):
            stop_process(proc, grace=t(2))


_scratch_dirs: list[Path] = []


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary directory, removed at interpreter exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _scratch_dirs.append(path)
    return path


@atexit.register
def _remove_scratch_dirs() -> None:
    for path in _scratch_dirs:
        shutil.rmtree(path, ignore_errors=True)


def _split_path(value: str | None) -> list[str]:
    return [part for part in (value or "").split(os.pathsep) if part]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def server_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a server process.

    The current environment, plus ``DJANGO_SETTINGS_MODULE=tests.settings`` and unbuffered
    output, overridden by ``env``. ``PYTHONPATH`` always starts with the repository root;
    a ``PYTHONPATH`` in ``env`` is put after it (and before the inherited one).
    """
    extra = dict(env or {})
    extra_pythonpath = extra.pop("PYTHONPATH", None)
    result = dict(os.environ)
    result["DJANGO_SETTINGS_MODULE"] = DEFAULT_SETTINGS_MODULE
    result["PYTHONUNBUFFERED"] = "1"
    result.update(extra)
    result["PYTHONPATH"] = os.pathsep.join(
        _dedupe(
            [
                str(REPO_ROOT),
                *_split_path(extra_pythonpath),
                *_split_path(os.environ.get("PYTHONPATH")),
            ]
        )
    )
    return result


# --------------------------------------------------------------------------------------
# ASGI servers
# --------------------------------------------------------------------------------------


def asgi_command(kind: AsgiKind, app: str, port: int, ws: str = "auto") -> list[str]:
    """The command line that serves ``app`` (``module:attribute``) with ``kind``.

    ``ws`` is uvicorn's ``--ws`` implementation (``auto``: websockets-sansio here).
    """
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", LOCALHOST, "-p", str(port), app]
    if kind == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            LOCALHOST,
            "--port",
            str(port),
            "--lifespan",
            "auto",
            "--ws",
            ws,  # auto: websockets-sansio here, what users get by default
        ]
    raise ValueError(f"unknown ASGI server kind {kind!r}; expected one of {get_args(AsgiKind)}")


class AsgiServer:
    """A running daphne or uvicorn process serving one ASGI application."""

    def __init__(
        self,
        kind: AsgiKind,
        app: str,
        port: int,
        process: subprocess.Popen[bytes],
        log_path: Path,
    ) -> None:
        self.kind: AsgiKind = kind
        self.app = app
        self.port = port
        self.process = process
        self.log_path = log_path

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited({self.process.returncode})"
        return f"<AsgiServer {self.kind} {self.app} port={self.port} pid={self.pid} {state}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def http_url(self) -> str:
        """Base HTTP URL, without a trailing slash."""
        return f"http://{LOCALHOST}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """WebSocket URL for ``path`` (with or without a leading slash)."""
        return f"ws://{LOCALHOST}:{self.port}/{path.lstrip('/')}"

    def log_text(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM by PID, wait (default 5 units), then SIGKILL. Idempotent."""
        stop_process(self.process, grace)

    def __enter__(self) -> AsgiServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class StartAsgiServer(Protocol):
    """The callable the ``asgi_server`` fixture yields (same call as :func:`start_asgi_server`)."""

    def __call__(
        self, kind: AsgiKind, app: str, env: dict[str, str] | None = None
    ) -> AsgiServer: ...


def start_asgi_server(
    kind: AsgiKind,
    app: str,
    env: dict[str, str] | None = None,
    *,
    log_dir: Path | None = None,
    startup_timeout: float | None = None,
    ws: str = "auto",
) -> AsgiServer:
    """Start ``kind`` serving ``app`` (e.g. ``"tests.rig.echo_asgi:application"``).

    Runs from the repository root with :func:`server_env` (``tests.settings`` unless
    ``env`` says otherwise) on a free port, logging to a file in ``log_dir`` (a temporary
    directory by default). Returns once the port accepts connections; raises
    :class:`ServerStartError` with the log tail if the process exits or the deadline
    (default 30 time units) passes first. ``ws`` picks uvicorn's WebSocket
    implementation (see :func:`asgi_command`). If the chosen port was grabbed by someone else
    in the meantime, it retries on another port.
    """
    if kind not in get_args(AsgiKind):
        raise ValueError(f"unknown ASGI server kind {kind!r}; expected one of {get_args(AsgiKind)}")
    log_dir = scratch_dir("wshub-asgi-") if log_dir is None else log_dir
    deadline = Deadline(t(30) if startup_timeout is None else startup_timeout)
    full_env = server_env(env)
    attempts = 3
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = log_dir / f"{kind}-{port}.log"
        command = asgi_command(kind, app, port, ws)
        proc = spawn(command, log_path=log_path, env=full_env, cwd=REPO_ROOT)
        server = AsgiServer(kind, app, port, proc, log_path)
        while proc.poll() is None and not deadline.expired():
            if port_accepts(port, timeout=min(t(0.5), max(deadline.remaining(), 0.01))):
                if proc.poll() is None:
                    return server
                break
            time.sleep(deadline.sleep_interval())
        timed_out = proc.poll() is None
        server.stop(grace=t(2))
        log = tail_text(log_path)
        port_taken = any(marker in log.lower() for marker in _PORT_IN_USE_MARKERS)
        if not timed_out and port_taken and attempt < attempts and not deadline.expired():
            continue
        reason = (
            f"did not accept connections within {deadline.timeout:.1f}s"
            if timed_out
            else f"exited with code {proc.returncode}"
        )
        raise ServerStartError(
            f"{kind} serving {app} on port {port} {reason}.\n--- tail of {log_path} ---\n{log}"
        )
    raise AssertionError("unreachable")  # pragma: no cover


def restart_asgi_server(
    server: AsgiServer,
    env: dict[str, str] | None = None,
    *,
    down_for: float = 0.0,
    kill: bool = False,
    while_down: Callable[[], object] | None = None,
) -> float:
    """Stop ``server`` (SIGTERM, which drains; SIGKILL with ``kill``), call ``while_down``,
    keep its port closed until ``down_for`` seconds after the stop, then start the same
    command on the same port, in the environment ``env``.

    Returns the monotonic time the new process accepted connections; raises
    :class:`ServerStartError` if it does not within 30 units.
    """
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
    server.stop(grace=t(10))
    deadline = Deadline(down_for)
    if while_down is not None:
        while_down()
    while not deadline.expired():
        time.sleep(deadline.sleep_interval())
    argv = asgi_command(server.kind, server.app, server.port)
    server.process = spawn(argv, log_path=server.log_path, env=server_env(env), cwd=REPO_ROOT)
    started = Deadline(t(30))
    while server.process.poll() is None and not started.expired():
        if port_accepts(server.port, timeout=t(0.5)):
            return time.monotonic()
        time.sleep(started.sleep_interval())
    log = tail_text(server.log_path)
    server.stop(grace=t(2))
    raise ServerStartError(f"{server.kind} did not restart on port {server.port}:\n{log}")


def manage(
    env: Mapping[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``django-admin <args>`` (a management command) in a server's environment; bounded
    by ``timeout`` test units."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=server_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=t(timeout),
    )
