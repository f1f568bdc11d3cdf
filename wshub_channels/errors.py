"""Typed errors raised by the hub and its layers.

Every error the hub raises on purpose is a :class:`HubError`. Errors about
names are also :class:`ValueError` so that generic validation code catches
them; errors about capacity keep Channels' own types (``ChannelFull``,
``MessageTooLarge``) where the channel layer spec names them.
"""

from __future__ import annotations

__all__ = [
    "AlreadyInRoom",
    "AuthenticationFailed",
    "BusUnavailable",
    "ClientNotFound",
    "ConnectionClosed",
    "DuplicateNodeId",
    "EmptyRoomName",
    "ForeignChannel",
    "HistoryUnavailable",
    "HubDraining",
    "HubError",
    "HubNotStarted",
    "HubStopped",
    "HubTimeout",
    "InvalidFrame",
    "InvalidLayerName",
    "InvalidName",
    "LayerClosed",
    "MaxConnectionsReached",
    "MaxRoomsReached",
    "MaxUserConnectionsReached",
    "NotInRoom",
    "RateLimitExceeded",
    "RoomFull",
    "RoomNotFound",
    "SendBufferFull",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMissing",
    "TokenRevoked",
    "Unauthorized",
]


class HubError(Exception):
    """Base class of every error the hub raises on purpose."""


class ClientNotFound(HubError, LookupError):
    """No node of the cluster has a client with this id."""


class AlreadyInRoom(HubError):
    """The client is already a member of the room."""


class InvalidName(HubError, ValueError):
    """A room name or user id is not a ``str`` of 1 to 256 characters in strict UTF-8."""


class InvalidLayerName(InvalidName, TypeError):
    """A group or channel name breaks the Channels rules or is not strict UTF-8.

    A ``TypeError``, as the Channels layer spec wants, and an :class:`InvalidName`,
    as the hub's callers catch.
    """


class InvalidFrame(HubError, ValueError):
    """A frame to send cannot go on the wire: text holding a lone surrogate
    (``"\\ud800"``), which UTF-8 cannot encode. Nothing was sent to anyone."""


class EmptyRoomName(InvalidName):
    """A room name was empty."""


class RoomNotFound(HubError, LookupError):
    """The room has no members on this node."""


class NotInRoom(HubError):
    """The client is not a member of the room."""


class ConnectionClosed(HubError):
    """The client's connection is closed; nothing more can be sent to it."""


class SendBufferFull(HubError):
    """The client's outbound queue stayed full for the whole timeout."""


class HubNotStarted(HubError):
    """The hub has not started yet."""


class HubDraining(HubError):
    """The hub is draining and refuses new connections."""


class HubStopped(HubError):
    """The hub has shut down."""


class MaxConnectionsReached(HubError):
    """This node already holds ``Limits.max_connections`` connections."""


class MaxUserConnectionsReached(HubError):
    """The user already holds ``Limits.max_connections_per_user`` connections here."""


class MaxRoomsReached(HubError):
    """The client is already in ``Limits.max_rooms_per_client`` rooms."""


class RoomFull(HubError):
    """The room already holds ``Limits.max_clients_per_room`` clients on this node."""


class RateLimitExceeded(HubError):
    """A client sent faster than its rate limit allows; the message was not handled."""


class AuthenticationFailed(HubError):
    """Raised by ``before_connect`` to reject a handshake (HTTP 403)."""


class TokenError(AuthenticationFailed):
    """A WebSocket token was refused (:mod:`wshub_channels.auth`).

    ``close_code`` is the code the connection is closed with (accepted first,
    so the client can read it).
    """

    close_code = 4401


class TokenMissing(TokenError):
    """No token where the consumer reads one, and no authenticated user (4401)."""


class TokenInvalid(TokenError):
    """A forged, altered or malformed token (4401: stop, do not retry)."""


class TokenRevoked(TokenInvalid):
    """A genuine token refused since: logout, a password change, the user gone (4401)."""


class TokenExpired(TokenError):
    """A genuine token past its expiry (4419: fetch a fresh token and retry)."""

    close_code = 4419


class Unauthorized(HubError):
    """Raised by a hook to reject an action the client may not take."""


class HubTimeout(HubError, TimeoutError):
    """A remote call to another node got no answer in time."""


class BusUnavailable(HubError, ConnectionError):
    """The bus (Redis, NATS) could not take a publish or a call.

    Raised after local delivery is done, within a bounded time; the hub
    counts it, and a consumer whose handler it escapes reports it to
    ``on_error`` and ``hub_error`` like any handler error.
    """


class HistoryUnavailable(HubError):
    """The channel layer keeps no room history, but ``WSHUB["HISTORY"]`` asks for it."""


class ForeignChannel(HubError, ValueError):
    """``receive()`` on a ``!`` channel that another node owns: only its owner can read it."""


class LayerClosed(HubError):
    """The channel layer was closed while a ``receive()`` waited on it."""


class DuplicateNodeId(HubError):
    """Two processes publish with one node id: one was forked after its layer was built.

    Reported (logged as an error, counted as ``duplicate_node_id`` and sent
    to ``hub_error``), never raised: neither process can fix it alone.
    """
