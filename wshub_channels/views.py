"""Health probes: ``/healthz`` (liveness) and ``/readyz`` (readiness).

Both answer JSON from :meth:`~wshub_channels.hub.Hub.health` with 200, or 503
when the probe fails. Readiness fails while the hub is starting, draining or
stopped, and while its bus (Redis, NATS) is down, so a load balancer stops
sending new connections to a node that could not reach the rest of the
cluster. The probes read local state only: no bus round trip.
"""

from __future__ import annotations

from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from .health import HealthStatus
from .hub import get_hub

__all__ = ["healthz", "readyz"]


def _answer(health: HealthStatus, ok: bool) -> JsonResponse:
    return JsonResponse(asdict(health), status=200 if ok else 503)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    health = get_hub().health()
    return _answer(health, health.alive)


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    health = get_hub().health()
    return _answer(health, health.ready)
