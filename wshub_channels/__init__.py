"""wshub_channels: a production WebSocket hub for Django Channels."""

from __future__ import annotations

from .config import Config, DropPolicy, Limits
from .connection.consumer import HubConsumer, JsonHubConsumer
from .connection.protocol import HubProtocolMixin, ProtocolHubConsumer
from .core.history import HistoryMessage, HistoryPage, Position, Recovery
from .core.listing import ClientInfo, ClusterPage, RoomEvent
from .core.presence import NodeInfo
from .errors import (
    AlreadyInRoom,
    AuthenticationFailed,
    BusUnavailable,
    ClientNotFound,
    ConnectionClosed,
    DuplicateNodeId,
    EmptyRoomName,
    ForeignChannel,
    HistoryUnavailable,
    HubDraining,
    HubError,
    HubNotStarted,
    HubStopped,
    HubTimeout,
    InvalidFrame,
    InvalidLayerName,
    InvalidName,
    LayerClosed,
    MaxConnectionsReached,
    MaxRoomsReached,
    MaxUserConnectionsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    RoomNotFound,
    SendBufferFull,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    Unauthorized,
)
from .hooks import Hooks
from .hub.hub import Hub, get_hub
from .message import Message
from .middleware import MiddlewareChain
from .origin import allow_all_origins, allow_origins, allow_same_origin
from .types import Client

__all__ = [
    "AlreadyInRoom",
    "AuthenticationFailed",
    "BusUnavailable",
    "Client",
    "ClientInfo",
    "ClientNotFound",
    "ClusterPage",
    "Config",
    "ConnectionClosed",
    "DropPolicy",
    "DuplicateNodeId",
    "EmptyRoomName",
    "ForeignChannel",
    "HistoryMessage",
    "HistoryPage",
    "HistoryUnavailable",
    "Hooks",
    "Hub",
    "HubConsumer",
    "HubDraining",
    "HubError",
    "HubNotStarted",
    "HubProtocolMixin",
    "HubStopped",
    "HubTimeout",
    "InvalidFrame",
    "InvalidLayerName",
    "InvalidName",
    "JsonHubConsumer",
    "LayerClosed",
    "Limits",
    "MaxConnectionsReached",
    "MaxRoomsReached",
    "MaxUserConnectionsReached",
    "Message",
    "MiddlewareChain",
    "NodeInfo",
    "NotInRoom",
    "Position",
    "ProtocolHubConsumer",
    "RateLimitExceeded",
    "Recovery",
    "RoomEvent",
    "RoomFull",
    "RoomNotFound",
    "SendBufferFull",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMissing",
    "TokenRevoked",
    "Unauthorized",
    "allow_all_origins",
    "allow_origins",
    "allow_same_origin",
    "get_hub",
]

__version__ = "0.1.0"
