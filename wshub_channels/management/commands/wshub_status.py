"""``manage.py wshub_status [--json]``: the cluster's nodes, counts and bus state.

Asks the nodes over the bus from this process (publisher mode). Exits with
status 1 and a clear message when the bus is unreachable.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...hub.hub import Hub, get_hub
from ..cli import SLACK, bus_errors, connected_hub, run

__all__ = ["Command"]


async def status(timeout: float | None) -> dict[str, Any]:
    """The report: bus, nodes (with their counts), clients and distinct users."""
    hub: Hub = await connected_hub()
    layer = hub.layer
    bus = layer.bus_status()
    with bus_errors():
        nodes = await hub.nodes(timeout=timeout)
        clients = await hub.global_client_count(timeout=timeout)
        users = await hub.global_user_count(timeout=timeout)
    return {
        "bus": {
            "backend": type(layer).__name__,
            "shared": layer.shared,
            "connected": bus.connected,
            "last_error": bus.last_error,
        },
        "nodes": [
            {
                "node_id": n.node_id,
                "host": n.host,
                "pid": n.pid,
                "clients": n.clients,
                "users": n.users,
                "rooms": n.room_count,
            }
            for n in nodes
        ],
        "clients": clients,
        "users": users,
    }


class Command(BaseCommand):
    help = "Show the cluster: its nodes, client and user counts, and the bus state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--timeout", type=float, default=None, help="seconds to wait for the nodes"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wait = options["timeout"] or get_hub().layer.request_timeout
        report = run(status(options["timeout"]), 3 * wait + SLACK)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        bus = report["bus"]
        state = "connected" if bus["connected"] else f"down ({bus['last_error']})"
        self.stdout.write(f"bus: {bus['backend']}, {state}")
        self.stdout.write(f"clients: {report['clients']}, distinct users: {report['users']}")
        self.stdout.write(f"nodes: {len(report['nodes'])}")
        if report["nodes"]:
            self.stdout.write(
                f"  {'NODE':<14} {'HOST':<24} {'PID':>8} {'CLIENTS':>8} {'USERS':>6} {'ROOMS':>6}"
            )
        for n in report["nodes"]:
            self.stdout.write(
                f"  {n['node_id']:<14} {n['host']:<24} {n['pid']:>8} {n['clients']:>8} "
                f"{n['users']:>6} {n['rooms']:>6}"
            )
