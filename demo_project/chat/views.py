"""The chat's pages: the chat itself, and picking a nickname.

The views are async: they read the session with its async API and ask the
hub, on the server's event loop, whether a nickname is in use anywhere in
the cluster.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from wshub_channels import get_hub

from .identity import check_nickname_free, read_identity, remember_nickname
from .protocol import DEFAULT_ROOMS, MAX_NICK, MEMBERS_ROOM, ChatError, clean_room

__all__ = ["index", "nickname"]


async def _page(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    me = await read_identity(request.session, await request.auser())
    try:
        room = clean_room(request.GET.get("room", DEFAULT_ROOMS[0]))
    except ChatError:
        room = DEFAULT_ROOMS[0]
    change = error or request.GET.get("change") == "1" or me.nick is None
    context = {
        "nick": me.nick,
        "login": me.login,
        "room": room,
        "members_room": MEMBERS_ROOM,
        "show_nick_form": change,
        "nick_value": request.POST.get("nick", "") or me.nick or me.login or "",
        "nick_error": error,
        "max_nick": MAX_NICK,
    }
    return render(request, "chat/index.html", context, status=status)


@require_GET
async def index(request: HttpRequest) -> HttpResponse:
    """The chat page; the nickname form until the person picked one."""
    return await _page(request)


@require_POST
async def nickname(request: HttpRequest) -> HttpResponse:
    """Pick a nickname: refused while someone else connected uses it, on any node."""
    me = await read_identity(request.session, None)
    try:
        nick = await check_nickname_free(get_hub(), request.POST.get("nick", ""), me.person)
    except ChatError as exc:
        return await _page(request, exc.message, status=409)
    await remember_nickname(request.session, nick)
    room = request.POST.get("room") or DEFAULT_ROOMS[0]
    return HttpResponseRedirect(f"{reverse('chat:index')}?{urlencode({'room': room})}")
