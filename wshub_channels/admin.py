"""Admin pages: the cluster's connections, rooms and nodes, listed live from the bus.

Add ``wshub_channels`` and ``django.contrib.admin`` to ``INSTALLED_APPS`` and
run ``migrate`` (it creates the permissions; no table). Three pages appear
under "WebSocket hub", for staff only:

- **Connections**: node, client id, user, rooms, remote address, user agent,
  connected since, messages in and out, queue depth. Search by user, room
  or client id, filter by node, 50 per page (``Hub.cluster_clients``). The
  "disconnect selected" action and a form that sends a text message to a
  room, a user or a client need the change permission; viewing needs the
  view permission.
- **Rooms**: every room with its members on each node, and the position
  (offset and epoch) of history rooms (the nodes' room
  tables), searchable.
- **Nodes**: every node with its counts (``Hub.nodes()``).

The pages ask the cluster on each request, from any process on the bus: a
plain WSGI process runs its hub in publisher mode. Nodes the presence table
knows that did not answer in time are named at the top of the page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from .core.listing import ClientInfo
from .core.presence import NodeInfo
from .errors import ClientNotFound, HubError
from .hub.hub import Hub, get_hub
from .models import Connection, Node, Room

__all__ = ["ConnectionAdmin", "NodeAdmin", "RoomAdmin"]

T = TypeVar("T")
PAGE = 50


def ask(call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run a hub coroutine from this sync view (publisher mode when no server runs here)."""
    return async_to_sync(call)(*args, **kwargs)


def known_nodes(hub: Hub) -> set[str]:
    """The nodes this process has heard beat (read across threads: a copy, best effort)."""
    with contextlib.suppress(RuntimeError):
        return {info.node_id for info in hub.presence.nodes(rooms=False)}
    return set()


class ClusterAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A changelist whose rows come from the cluster; no add, delete or change form."""

    template = ""
    title = ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = (self.model._meta.app_label, self.model._meta.model_name)
        view = self.admin_site.admin_view(self.cluster_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def cluster_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            self.act(request)
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": self.title,
            "can_change": self.has_change_permission(request),
        }
        try:
            context.update(self.rows(request, get_hub()))
        except HubError as exc:
            context["error"] = f"the cluster did not answer: {exc}"
        return TemplateResponse(request, self.template, context)

    def rows(self, request: HttpRequest, hub: Hub) -> dict[str, Any]:
        raise NotImplementedError

    def act(self, request: HttpRequest) -> None:
        raise PermissionDenied


def _page_links(request: HttpRequest, page: int, total: int) -> dict[str, Any]:
    pages = max(1, -(-total // PAGE))
    query = request.GET.dict()

    def link(number: int) -> str:
        return "?" + urlencode({**query, "p": number})

    return {
        "page": page,
        "pages": pages,
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
    }


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("p", "1")))
    except ValueError:
        return 1


@admin.register(Connection)
class ConnectionAdmin(ClusterAdmin):
    template = "wshub_channels/admin/connections.html"
    title = "Connections"

    def rows(self, request: HttpRequest, hub: Hub) -> dict[str, Any]:
        query = request.GET.get("q", "").strip()
        by = request.GET.get("by", "user")
        node = request.GET.get("node") or None
        page = _page_number(request)
        items: list[ClientInfo]
        missing: list[str] = []
        if query and by == "client":
            found = ask(hub.find_client, query)
            items = [found] if found is not None and node in (None, found.node) else []
            total = len(items)
        else:
            result = ask(
                hub.cluster_clients,
                room=query if query and by == "room" else None,
                user_id=query if query and by == "user" else None,
                limit=PAGE,
                offset=(page - 1) * PAGE,
                node=node,
            )
            items, total, missing = result.items, result.total, result.missing_nodes
        nodes = ask(hub.nodes)
        return {
            "items": items,
            "total": total,
            "missing_nodes": missing,
            "nodes": [n.node_id for n in nodes],
            "query": query,
            "by": by,
            "node": node or "",
            **_page_links(request, page, total),
        }

    def act(self, request: HttpRequest) -> None:
        hub = get_hub()
        action = request.POST.get("action")
        if action == "disconnect":
            ids = request.POST.getlist("ids")
            gone, failed = 0, []
            for client_id in ids:
                try:
                    ask(hub.disconnect, client_id)
                    gone += 1
                except ClientNotFound:
                    pass  # it left meanwhile
                except HubError as exc:  # its node did not answer, or the bus failed
                    failed.append(f"{client_id}: {exc}")
            messages.success(request, f"disconnected {gone} of {len(ids)} selected connection(s)")
            if failed:
                messages.error(request, "not disconnected: " + "; ".join(failed))
        elif action == "send":
            self._send(request, hub)

    def _send(self, request: HttpRequest, hub: Hub) -> None:
        kind = request.POST.get("kind", "room")
        target = request.POST.get("target", "").strip()
        text = request.POST.get("text", "")
        if not target or not text:
            messages.error(request, "a message needs a target and some text")
            return
        try:
            if kind == "room":
                ask(hub.broadcast_to_room, target, text)
            elif kind == "user":
                ask(hub.send_to_user, target, text)
            else:
                ask(hub.send_to_client, target, text)
        except (HubError, ValueError) as exc:
            messages.error(request, f"not sent: {exc}")
            return
        messages.success(request, f"sent to {kind} {target!r}")


@admin.register(Room)
class RoomAdmin(ClusterAdmin):
    template = "wshub_channels/admin/rooms.html"
    title = "Rooms"

    def rows(self, request: HttpRequest, hub: Hub) -> dict[str, Any]:
        query = request.GET.get("q", "").strip()
        nodes: list[NodeInfo] = ask(hub.nodes)
        rooms: dict[str, dict[str, int]] = {}
        for info in nodes:
            for room, count in info.rooms.items():
                if query.lower() in room.lower():
                    rooms.setdefault(room, {})[info.node_id] = count
        ordered = sorted(rooms.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        page = _page_number(request)
        shown = ordered[(page - 1) * PAGE : page * PAGE]
        return {
            "rooms": [
                {
                    "name": name,
                    "members": sum(on.values()),
                    "nodes": sorted(on.items()),
                    "history": _history_position(hub, name),
                }
                for name, on in shown
            ],
            "total": len(ordered),
            "query": query,
            "missing_nodes": sorted(known_nodes(hub) - {n.node_id for n in nodes}),
            "partial": [n.node_id for n in nodes if len(n.rooms) < n.room_count],
            **_page_links(request, page, len(ordered)),
        }


def _history_position(hub: Hub, room: str) -> str:
    """A history room's position for the rooms page ("" for a room without history)."""
    if hub.settings.history.rule_for(room) is None:
        return ""
    try:
        page = ask(hub.history, room, limit=0)
    except HubError as exc:
        return f"unavailable ({type(exc).__name__})"
    position = page.position
    return f"offset {position.offset}, epoch {position.epoch or '-'}"


@admin.register(Node)
class NodeAdmin(ClusterAdmin):
    template = "wshub_channels/admin/nodes.html"
    title = "Nodes"

    def rows(self, request: HttpRequest, hub: Hub) -> dict[str, Any]:
        nodes: list[NodeInfo] = ask(hub.nodes)
        return {
            "nodes": nodes,
            "total": len(nodes),
            "clients": sum(n.clients for n in nodes),
            "missing_nodes": sorted(known_nodes(hub) - {n.node_id for n in nodes}),
            "bus": hub.layer.bus_status(),
            "backend": type(hub.layer).__name__,
        }
