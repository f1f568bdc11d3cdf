"""``manage.py wshub_drain --node ID``: drain one node of the cluster through the bus.

Without ``--node``, list the nodes of the cluster (``hub.nodes()``). Runs from any process that
reaches the bus (a shell on any pod, a job): the hub runs here in publisher
mode, so this process never shows up as a node itself. The node drains
exactly as on SIGTERM: readiness fails at once, new handshakes are refused,
its clients get ``--timeout`` (default: that node's ``DRAIN_TIMEOUT``) to
leave, the rest are closed in batches, and under ``HubApplication`` the node's
process exits once the drain is over. The command returns once the node has
started draining; it does not wait for the drain to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from wshub_channels import get_hub
from wshub_channels.errors import BusUnavailable, HubTimeout
from wshub_channels.layers.transport import NoResponders
from wshub_channels.presence import NodeInfo
from wshub_channels.publisher import publisher_loop

__all__ = ["Command"]

T = TypeVar("T")

#: Seconds the command waits for the bus and the node, on top of the hub's own timeouts.
SLACK = 10.0


def _run(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on the publisher loop (which owns this process's bus connection)."""
    return asyncio.run_coroutine_threadsafe(coro, publisher_loop()).result(timeout)


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
        hub = get_hub()
        if node is None:
            nodes = _run(self._nodes(), hub.layer.request_timeout + SLACK)
            self._print_nodes(nodes)
            return
        answer = _run(self._drain(node, timeout), hub.layer.request_timeout + SLACK)
        self.stdout.write(
            f"node {answer['node_id']} is {answer['state']} "
            f"({answer['clients']} client(s) connected)"
        )

    async def _drain(self, node: str, timeout: float | None) -> dict[str, Any]:
        hub = get_hub()
        await hub.start()
        if not hub.layer.shared:
            raise CommandError("the hub's layer is not shared by other processes: no nodes")
        try:
            answer: dict[str, Any] = await hub.layer.remote_call(node, "drain", timeout)
        except NoResponders:
            raise CommandError(f"no node {node!r} on the bus") from None
        except HubTimeout as exc:
            raise CommandError(f"node {node!r} did not answer: {exc}") from None
        except BusUnavailable as exc:
            raise CommandError(f"the bus is unavailable: {exc}") from None
        return answer

    async def _nodes(self) -> list[NodeInfo]:
        """Every node of the cluster (asked over the bus: this process has just started)."""
        hub = get_hub()
        await hub.start()
        if not hub.layer.shared:
            raise CommandError("the hub's layer is not shared by other processes: no nodes")
        try:
            return await hub.nodes()
        except BusUnavailable as exc:
            raise CommandError(f"the bus is unavailable: {exc}") from None

    def _print_nodes(self, nodes: list[NodeInfo]) -> None:
        if not nodes:
            self.stdout.write("no nodes heard on the bus")
            return
        self.stdout.write(f"{'NODE':<14} {'HOST':<24} {'PID':>8} {'CLIENTS':>8} {'ROOMS':>6}")
        for info in nodes:
            self.stdout.write(
                f"{info.node_id:<14} {info.host:<24} {info.pid:>8} {info.clients:>8} "
                f"{info.room_count:>6}"
            )
