"""A NATS cluster for tests: several ``nats-server`` processes joined by routes.

Each server listens for clients and for routes on its own free ports, with
an 8 MB ``max_payload`` and no JetStream (a JetStream cluster needs a
quorum of three and a leader election; the hub's cluster features use core
NATS only, so the cluster tests leave normal channels to the single-server
runs). :func:`start_nats_cluster` returns once every server answers and the
routes are up (each server's ``/routez`` lists the others), so a test starts
on a formed cluster.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from .brokers import NATS_MAX_PAYLOAD, BrokerError, ServerHandle, find_nats_server, nats_answers
from .servers import LOCALHOST, free_ports, scratch_dir
from .timing import Deadline, t

__all__ = ["NatsCluster", "start_nats_cluster"]


class NatsCluster:
    """The servers of one test cluster; ``urls`` in order, ``stop()`` ends them all."""

    def __init__(self, servers: list[ServerHandle], monitor_ports: list[int]) -> None:
        self.servers = servers
        self.monitor_ports = monitor_ports

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(server.url for server in self.servers)

    def routes(self, index: int) -> int:
        """How many routes server ``index`` has right now (from its monitoring port)."""
        url = f"http://{LOCALHOST}:{self.monitor_ports[index]}/routez"
        try:
            with urllib.request.urlopen(url, timeout=t(1)) as response:
                return int(json.loads(response.read()).get("num_routes", 0))
        except OSError:
            return 0

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _config(name: str, client_port: int, route_port: int, monitor: int, peers: list[int]) -> str:
    routes = ", ".join(f"nats-route://{LOCALHOST}:{port}" for port in peers)
    return (
        f"server_name: {name}\n"
        f"listen: {LOCALHOST}:{client_port}\n"
        f"http: {LOCALHOST}:{monitor}\n"
        f"max_payload: {NATS_MAX_PAYLOAD // (1024 * 1024)}MB\n"
        f"cluster {{\n  name: wshub-test\n  listen: {LOCALHOST}:{route_port}\n"
        f"  routes: [{routes}]\n}}\n"
    )


def start_nats_cluster(size: int = 3, *, binary: str | None = None) -> NatsCluster:
    """Start ``size`` routed nats-servers on free ports and wait for the full mesh; tried
    up to three times (a port another process took between the pick and the start)."""
    binary = binary or find_nats_server()
    for attempt in range(1, 4):
        try:
            return _start_cluster(size, binary)
        except (BrokerError, TimeoutError):
            if attempt == 3:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start_cluster(size: int, binary: str) -> NatsCluster:
    ports = free_ports(3 * size)
    client_ports, route_ports, monitor_ports = (
        ports[:size],
        ports[size : 2 * size],
        ports[2 * size :],
    )
    servers: list[ServerHandle] = []
    for index in range(size):
        workdir = scratch_dir(f"wshub-nats-cluster{index}-")
        peers = [port for n, port in enumerate(route_ports) if n != index]
        config_text = _config(
            f"wshub-c{index}", client_ports[index], route_ports[index], monitor_ports[index], peers
        )

        def argv(handle: ServerHandle, text: str = config_text) -> list[str]:
            config = Path(handle.workdir) / "nats.conf"
            config.write_text(text)
            return [handle.binary, "-c", str(config)]

        servers.append(
            ServerHandle(
                name=f"nats-cluster{index}",
                binary=binary,
                scheme="nats",
                port=client_ports[index],
                workdir=workdir,
                argv=argv,
                probe=lambda p, timeout: nats_answers(LOCALHOST, p, timeout),
                startup_timeout=t(20),
            )
        )
    cluster = NatsCluster(servers, monitor_ports)
    try:
        for server in servers:
            server.start()
        deadline = Deadline(t(10))
        while not all(cluster.routes(i) >= size - 1 for i in range(size)):
            if deadline.expired():
                raise TimeoutError(f"the {size} NATS servers did not form a full mesh of routes")
            time.sleep(deadline.sleep_interval(t(0.05)))
    except BaseException:
        cluster.stop()
        raise
    return cluster
