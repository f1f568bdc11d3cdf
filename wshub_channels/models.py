"""Unmanaged models for the admin pages: permissions, and no table.

``Connection``, ``Room`` and ``Node`` exist so that ``migrate`` creates their
view and change permissions and the Django admin can list them; their rows
come from the cluster (``cluster_clients``, ``nodes()``), never from the
database (``managed = False``: no table is ever created). Importing them
needs nothing from ``django.contrib``.
"""

from __future__ import annotations

from django.db import models

__all__ = ["Connection", "Node", "Room"]


class Connection(models.Model):
    """A WebSocket connection on some node of the cluster."""

    id = models.CharField(primary_key=True, max_length=300)

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "connection"
        verbose_name_plural = "connections"

    def __str__(self) -> str:
        return self.id


class Room(models.Model):
    """A room with members on some node of the cluster."""

    name = models.CharField(primary_key=True, max_length=300)

    class Meta:
        managed = False
        default_permissions = ("view", "change")

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    """A node (server process) of the cluster."""

    node_id = models.CharField(primary_key=True, max_length=12)

    class Meta:
        managed = False
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.node_id
