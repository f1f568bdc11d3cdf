"""``manage.py wshub_drain --node ID``: drain one node of the cluster through the bus.

Without ``--node``, list the nodes of the cluster (``hub.nodes()``). Runs from
any process that reaches the bus (a shell on any pod, a job): the hub runs
here in publisher mode (see :mod:`wshub_channels.management.cli`), so this
process never shows up as a node itself. The node drains exactly as on
SIGTERM: readiness fails at once, new handshakes are refused, its clients get
``--timeout`` (default: that node's ``DRAIN_TIMEOUT``) to leave, the rest are
closed in batches, and under ``HubApplication`` the node's process exits once
the drain is over. The command returns once the node has started draining;
it does not wait for the drain to end. Exits with status 1 and a clear
message when the node is unknown or the bus is unreachable.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...core.presence import NodeInfo
from ...hub.hub import get_hub
from ...layers import NoResponders
from ..cli import SLACK, bus_errors, connected_hub, run

__all__ = ["Command"]


async def drain_node(node: str, timeout: float | None) -> dict[str, Any]:
    """Ask ``node`` to drain (the ``drain`` op); its answer: node id, state, clients."""
    hub = await connected_hub()
    if not hub.layer.shared:
        raise CommandError("the hub's layer is not shared by other processes: no nodes")
    with bus_errors():
        try:
            answer: dict[str, Any] = await hub.layer.remote_call(node, "drain", timeout)
        except NoResponders:
            raise CommandError(f"no node {node!r} on the bus") from None
    return answer


async def list_nodes() -> list[NodeInfo]:
    hub = await connected_hub()
    with bus_errors():
        return await hub.nodes()


class Command(BaseCommand):
    help = "Drain one node of the cluster through the bus; without --node, list the nodes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--node", help="id of the node to drain (listed without --node)")
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="seconds the node's clients get to leave before they are closed "
            "(default: that node's WSHUB['DRAIN_TIMEOUT'])",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        node: str | None = options["node"]
        timeout: float | None = options["timeout"]
        if timeout is not None and timeout < 0:
            raise CommandError("--timeout must not be negative")
        wait = get_hub().layer.request_timeout + SLACK
        if node is None:
            self._print_nodes(run(list_nodes(), wait))
            return
        answer = run(drain_node(node, timeout), wait)
        self.stdout.write(
            f"node {answer['node_id']} is {answer['state']} "
            f"({answer['clients']} client(s) connected)"
        )

    def _print_nodes(self, nodes: list[NodeInfo]) -> None:
        if not nodes:
            self.stdout.write("no nodes on the bus")
            return
        self.stdout.write(f"{'NODE':<14} {'HOST':<24} {'PID':>8} {'CLIENTS':>8} {'ROOMS':>6}")
        for info in nodes:
            self.stdout.write(
                f"{info.node_id:<14} {info.host:<24} {info.pid:>8} {info.clients:>8} "
                f"{info.room_count:>6}"
            )
