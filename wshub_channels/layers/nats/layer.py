"""``NatsHubLayer``: the shared core over core NATS subjects and JetStream.

The layer only configures and builds a
:class:`~wshub_channels.layers.nats.bus.NatsBus` and its store; everything
else is the core's (:class:`~wshub_channels.layers.base.HubLayer`), with the
same loop and thread rules.
"""

from __future__ import annotations

from typing import Any

from ..base import HubLayer
from ..node import Backend
from .bus import NatsBus
from .client import ConnectOptions
from .history import NatsHistory

__all__ = ["NatsHubLayer"]


class NatsHubLayer(HubLayer):
    """The hub layer over NATS: interest-routed subjects plus JetStream-kept queues.

    Takes every :class:`~wshub_channels.layers.base.HubLayer` option plus:

    - ``servers``: a list of NATS URLs (``nats://host:4222``, ``tls://...``),
      the servers of one NATS cluster; the client picks one and moves to
      another when it fails. A single URL string works too.
    - ``user``/``password``, ``token``, ``nkeys_seed`` (a seed file's path,
      or the seed itself), ``user_credentials`` (a ``.creds`` file):
      authentication, as the server is configured.
    - ``tls_ca_file``, ``tls_cert_file``, ``tls_key_file``: TLS with a
      private CA and/or a client certificate (a ``tls://`` URL alone uses
      the system CAs).
    - ``connect_timeout`` (2 s): the bound on one connect attempt, and on
      how long the first call waits for NATS before it fails.
    - ``reconnect_time_wait`` (0.25 s): the wait between two attempts at one
      server. The client retries forever; a client NATS closed for good is
      replaced by a new one.
    - ``pending_size`` (8 MiB): what the client buffers while NATS is away;
      those publishes go out on reconnect. Once the buffer is full a publish
      fails at once with ``BusUnavailable`` (counted in
      ``stats.publish_errors``), and Channels sends raise it too.
    - ``ping_interval`` (5 s): the keepalive; a server silent for three
      intervals counts as gone and the client reconnects.
    - ``storage`` ("file"): where JetStream keeps normal channels and
      stored group members and room history ("memory" is faster and lost
      when the server restarts).

    ``request_timeout`` (5 s) bounds acknowledged calls to other nodes and
    every JetStream call. Messages are checked against the server's
    ``max_payload`` (read at connect): a larger one raises
    ``MessageTooLarge`` at ``send`` and ``group_send``. Normal channels and
    room history (:mod:`.history`) need JetStream; without it their first
    use raises ``ImproperlyConfigured``, and everything else works.
    """

    def __init__(
        self,
        servers: list[str] | str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        nkeys_seed: str | None = None,
        user_credentials: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_time_wait: float = 0.25,
        pending_size: int = 8 * 1024 * 1024,
        ping_interval: float = 5.0,
        storage: str = "file",
        **kwargs: Any,
    ) -> None:
        if isinstance(servers, str):
            servers = [servers]
        self._nats_options = ConnectOptions(
            servers=list(servers or ["nats://127.0.0.1:4222"]),
            user=user,
            password=password,
            token=token,
            nkeys_seed=nkeys_seed,
            user_credentials=user_credentials,
            tls_ca_file=tls_ca_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            connect_timeout=connect_timeout,
            reconnect_time_wait=reconnect_time_wait,
            pending_size=pending_size,
            ping_interval=ping_interval,
        )
        self._storage = storage
        super().__init__(**kwargs)

    def make_backend(self) -> Backend:
        bus = NatsBus(
            self._nats_options,
            prefix=self.prefix,
            name=self.node_id,
            request_timeout=self.request_timeout,
            expiry=float(self.expiry),
            group_expiry=self.group_expiry,
            storage=self._storage,
        )
        return Backend(bus, bus.store, NatsHistory(bus, storage=self._storage))
