"""The bus's own size limit: refuse what the bus could not carry, before sending it.

A bus may take at most ``Bus.max_payload`` bytes in one message (a NATS
server's ``max_payload``, less the backend's framing). What is larger
raises ``MessageTooLarge`` here, naming the size, the limit and the bus's
hint on raising it, instead of failing on the bus (or, for an answer to a
call, leaving the caller waiting out its timeout).
"""

from __future__ import annotations

from channels.exceptions import MessageTooLarge

from ..core.wire import encode_error
from .bus import Bus

__all__ = ["answer_within_limit", "check_wire_size"]


def check_wire_size(bus: Bus, data: bytes) -> None:
    """Raise ``MessageTooLarge`` if ``data`` is more than ``bus`` takes in one message."""
    limit = bus.max_payload
    if limit is not None and len(data) > limit:
        hint = bus.payload_limit_hint
        raise MessageTooLarge(
            f"message is {len(data)} bytes on the bus, envelope included; the bus takes "
            f"at most {limit}" + (f". {hint}" if hint else "")
        )


def answer_within_limit(bus: Bus, answer: bytes) -> tuple[bytes, MessageTooLarge | None]:
    """Return ``answer``, or, when it is larger than ``bus`` takes, a ``MessageTooLarge``
    answer in its place together with that error (for the caller to log)."""
    limit = bus.max_payload
    if limit is None or len(answer) <= limit:
        return answer, None
    too_large = MessageTooLarge(f"the answer is {len(answer)} bytes; the bus takes at most {limit}")
    return encode_error(too_large), too_large
