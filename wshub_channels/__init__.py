"""wshub_channels: a production WebSocket hub for Django Channels."""

from __future__ import annotations

from .config import Config, DropPolicy, Limits
from .errors import (
    AlreadyInRoom,
    AuthenticationFailed,
    ClientNotFound,
    ConnectionClosed,
    EmptyRoomName,
    HubDraining,
    HubError,
    HubNotStarted,
    HubStopped,
    HubTimeout,
    InvalidName,
    MaxConnectionsReached,
    MaxRoomsReached,
    MaxUserConnectionsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    RoomNotFound,
    SendBufferFull,
    Unauthorized,
)

__all__ = [
    "AlreadyInRoom",
    "AuthenticationFailed",
    "ClientNotFound",
    "Config",
    "ConnectionClosed",
    "DropPolicy",
    "EmptyRoomName",
    "HubDraining",
    "HubError",
    "HubNotStarted",
    "HubStopped",
    "HubTimeout",
    "InvalidName",
    "Limits",
    "MaxConnectionsReached",
    "MaxRoomsReached",
    "MaxUserConnectionsReached",
    "NotInRoom",
    "RateLimitExceeded",
    "RoomFull",
    "RoomNotFound",
    "SendBufferFull",
    "Unauthorized",
]

__version__ = "0.1.0"
