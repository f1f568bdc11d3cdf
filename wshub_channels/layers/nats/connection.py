"""The supervised NATS client of one node: the first connect, reconnects, and a client that quit.

nats-py reconnects and resubscribes by itself, but gives up after
``max_reconnect_attempts`` and then closes the client for good. A
:class:`Connection` runs it with unlimited attempts and a short wait
(``reconnect_time_wait``), and supervises what nats-py leaves to its user:

- the first connect runs in a supervisor task, so a node whose NATS is not
  up yet starts anyway; the bus counts as down (with the last error) until
  the server answers;
- a client that closes on its own (the server refused it for good, say) is
  replaced by a new one after a backoff, and ``on_connected`` runs again
  for it, so the bus subscribes anew to every subject it holds;
- ``error_cb``, ``disconnected_cb`` and ``reconnected_cb`` become the
  bus's reports: "down" once per outage, "up" once it is over, and
  "slow_consumer" for every message nats-py dropped because this node did
  not read its subscription fast enough.

``last_error`` never holds a secret (:func:`.client.describe`).

Loop safety: a connection belongs to the bus's home loop; every
method must run there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ...log import Throttle
from ..bus import Reporter
from ..supervisor import Supervisor
from .client import Client, ConnectOptions, describe, nats_errors, safe_server

__all__ = ["Connection"]

logger = logging.getLogger("wshub_channels.layers.nats")

#: How long closing a client may take: a client whose server stopped answering
#: (a half-open socket) would otherwise wait in its final flush for TCP to give up.
CLOSE_TIMEOUT = 2.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 1.0

OnClient = Callable[[Client], Awaitable[None]]
#: Errors that only say the connection ended, and so never hide the reason it ended.
_AFTERMATH: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    nats_errors.UnexpectedEOF,
)


class Connection(Supervisor):
    """One supervised client. ``on_connected(client)`` runs after every connect of a
    new client, ``on_reconnected(client)`` after nats-py reconnected one."""

    what = "nats connection"

    def __init__(
        self,
        options: ConnectOptions,
        name: str,
        inbox_prefix: str,
        on_connected: OnClient,
        on_reconnected: OnClient,
        report: Reporter,
    ) -> None:
        super().__init__()
        self.options = options
        self.name = name
        self.inbox_prefix = inbox_prefix
        self._on_connected = on_connected
        self._on_reconnected = on_reconnected
        self._report = report
        self._secrets = options.secrets()
        # Built once, so a bad TLS file or option fails when the layer is made.
        self._base_kwargs = options.kwargs(name, inbox_prefix)
        #: The client once it connected (None before, and after it closed).
        self.client: Client | None = None
        self._cause: str | None = None  # the last error that was not a mere hang-up
        self._log = Throttle(logger, 10.0)

    def use_inbox_prefix(self, prefix: str) -> None:
        """Reply subjects start with ``prefix`` from the next connect on."""
        self.inbox_prefix = prefix
        self._base_kwargs["inbox_prefix"] = prefix

    async def stop(self) -> None:
        """Stop supervising and close the client."""
        client = self.client
        await self._stop_task()
        if client is not None:
            await _close(client)

    def abandon(self) -> None:
        """Forget the client without I/O (its loop is gone, or :meth:`stop` closes it)."""
        super().abandon()
        self.client = None

    def connected(self) -> Client:
        """The client, if it is connected now; else raise ``ConnectionError``."""
        client = self.client
        if client is None or not client.is_connected:
            raise ConnectionError(f"NATS is not connected: {self.last_error or 'connecting'}")
        return client

    async def _supervise(self, generation: int) -> None:
        delay = BACKOFF_MIN
        while generation == self._generation:
            client = Client()
            closed = asyncio.Event()
            try:
                await client.connect(**self._kwargs(generation, closed))
            except asyncio.CancelledError:
                await _close(client)
                raise
            except Exception as exc:  # a configuration nats-py refuses outright
                self._failed(exc)
                await _close(client)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if generation != self._generation:
                await _close(client)
                return
            self.client = client
            logger.info(
                "connected to NATS at %s (server %s, max_payload %d bytes)",
                safe_server(str(client.connected_url.geturl() if client.connected_url else "")),
                client.connected_server_version,
                client.max_payload,
            )
            try:
                await self._on_connected(client)
            except Exception:
                logger.exception("setting up a new NATS client failed")
            self._set_up()
            await closed.wait()
            if generation != self._generation:
                return
            self.client = None
            self._set_down()
            logger.warning("the NATS client closed (%s); starting a new one", self.last_error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _kwargs(self, generation: int, closed: asyncio.Event) -> dict[str, Any]:
        # What these callbacks raise would end nats-py's own reader or reconnect task
        # (a client stuck reconnecting forever): they report, and log what fails.
        async def error_cb(error: Exception) -> None:
            if generation != self._generation:
                return
            with _logged("reporting a NATS error"):
                if isinstance(error, nats_errors.SlowConsumerError):
                    self._report("slow_consumer", error)
                else:
                    self._failed(error)

        async def disconnected_cb() -> None:
            if generation == self._generation:
                with _logged("reporting a lost NATS connection"):
                    self._set_down()

        async def reconnected_cb() -> None:
            if generation == self._generation and self.client is not None:
                with _logged("reporting a NATS reconnect"):
                    self._set_up()
                try:
                    await self._on_reconnected(self.client)
                except Exception:
                    logger.exception("refreshing a reconnected NATS client failed")

        async def closed_cb() -> None:
            closed.set()

        return {
            **self._base_kwargs,
            "error_cb": error_cb,
            "disconnected_cb": disconnected_cb,
            "reconnected_cb": reconnected_cb,
            "closed_cb": closed_cb,
        }

    def _failed(self, error: BaseException) -> None:
        text = describe(error, self._secrets)
        if isinstance(error, _AFTERMATH) and self._cause is not None:
            # The server said why (an authorization violation, say) and then hung up:
            # keep its reason rather than the reset that followed it.
            text = self._cause
        else:
            self._cause = text
        self.last_error = text
        self._log.warning("NATS: %s", self.last_error)

    def _set_up(self) -> None:
        if self.up:
            return
        self.up = True
        self.last_error = self._cause = None
        self._up_event.set()
        self._report("up", None)

    def _set_down(self) -> None:
        if not self.up:
            return
        self.up = False
        self._report("down", ConnectionError(self.last_error or "NATS connection lost"))


async def _close(client: Client) -> None:
    """Close a client in any state, quietly, within a bound (its socket may be dead)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Log (and swallow) what the block raises: for code that runs in nats-py's tasks."""
    try:
        yield
    except Exception:
        logger.exception("%s failed", what)
