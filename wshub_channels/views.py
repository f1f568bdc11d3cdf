"""Health probes (``/healthz``, ``/readyz``) and the drain trigger (``POST /drainz``).

The probes answer JSON from :meth:`~wshub_channels.hub.Hub.health` with 200,
or 503 when the probe fails: ``/healthz`` while the hub is alive (not
stopped), ``/readyz`` only while it runs with its bus connected (so 503 at
once when a drain begins). They are async views: under an ASGI server they
run on the server's loop with no thread hop (as long as every middleware is
async-capable), and read local state only, with no bus round trip. A probe
that finds the hub not started yet starts it in the background (the hub
starts on first use) and reports ``starting``.

``POST /drainz`` starts a drain (:meth:`~wshub_channels.hub.Hub.drain`) and
answers 202 at once with the health JSON; under ``HubApplication`` the
process exits once the drain is over. It is allowed from loopback, or with
``Authorization: Bearer <WSHUB["DRAIN_TOKEN"]>`` (see
:func:`~wshub_channels.core.access.drain_permission`); otherwise 401 or 403. A
request from a browser (``Origin`` or ``Sec-Fetch-*`` headers) needs the
token even from loopback, and a cross-site one is refused with 403 always.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .conf import get_settings
from .core.access import drain_permission
from .hub.hub import Hub, get_hub
from .publisher import is_temporary
from .tasks import spawn

__all__ = ["drainz", "healthz", "readyz"]

logger = logging.getLogger("wshub_channels.drain")


def _probe_hub() -> Hub:
    """The hub; started in the background if nothing has started it yet."""
    hub = get_hub()
    if hub.state == "new" and not is_temporary(asyncio.get_running_loop()):
        spawn(hub.start(), "hub start from a probe")
    return hub


def _answer(body: dict[str, Any], status: int) -> JsonResponse:
    return JsonResponse(body, status=status)


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    health = _probe_hub().health()
    return _answer(asdict(health), 200 if health.alive else 503)


@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    health = _probe_hub().health()
    return _answer(asdict(health), 200 if health.ready else 503)


@csrf_exempt
@require_POST
async def drainz(request: HttpRequest) -> JsonResponse:
    headers = {name.lower(): value for name, value in request.headers.items()}
    permission = drain_permission(
        request.META.get("REMOTE_ADDR"), headers, get_settings().drain_token, request.is_secure()
    )
    if not permission.allowed:
        logger.warning(
            "refused a drain request from %s: %s",
            request.META.get("REMOTE_ADDR"),
            permission.reason,
        )
        response = _answer({"error": permission.reason}, permission.status)
        if permission.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="wshub drain"'
        return response
    hub = get_hub()
    draining = await hub.start_drain()
    logger.info("drain requested (%s): node %s is %s", permission.reason, hub.node_id, hub.state)
    health = asdict(hub.health())
    if not draining:
        return _answer({"error": f"the hub is not running ({health['state']})", **health}, 409)
    return _answer(health, 202)
