"""The wshub_channels test rig: time unit, real brokers and real ASGI server processes.

* :mod:`tests.rig.timing`: ``UNIT`` / ``t()``, the one time unit every wait uses.
* :mod:`tests.rig.brokers`: bundled ``redis-server`` / ``nats-server`` processes.
* :mod:`tests.rig.servers`: daphne / uvicorn processes and process helpers.
* :mod:`tests.rig.echo_asgi`: a minimal Channels echo app for rig self-tests.
"""

from __future__ import annotations

from .timing import UNIT, t

__all__ = ["UNIT", "t"]
