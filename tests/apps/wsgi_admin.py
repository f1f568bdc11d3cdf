"""A plain WSGI process serving the Django admin on a test cluster's bus.

``python -m tests.apps.wsgi_admin PORT`` migrates the file database named by
``WSHUB_ADMIN_DB``, creates three users (password ``pw``): ``boss`` (staff,
may view and change the hub's pages), ``viewer`` (staff, may only view) and
``plain`` (not staff), prints ``ready`` and serves on 127.0.0.1:PORT with
wsgiref, one thread per request, static files included. Its hub runs in
publisher mode.
"""

from __future__ import annotations

import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.admin_settings")

import django

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("wsgi: " + format % args + "\n")


def make_users() -> None:
    hub_perms = Permission.objects.filter(content_type__app_label="wshub_channels")
    boss = User.objects.create_user("boss", password="pw", is_staff=True)
    boss.user_permissions.set(hub_perms)
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(hub_perms.filter(codename__startswith="view_"))
    User.objects.create_user("plain", password="pw")


if __name__ == "__main__":
    call_command("migrate", verbosity=0, interactive=False)
    make_users()
    app = StaticFilesHandler(get_wsgi_application())  # the admin's CSS, as in production
    server = make_server("127.0.0.1", int(sys.argv[1]), app, ThreadingServer, QuietHandler)
    print("ready", flush=True)
    server.serve_forever()
