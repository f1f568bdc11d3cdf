"""Calls between nodes, written once for every bus: ops, call and gather.

:class:`RemoteOps` holds the ops other nodes may call, the request handler
that runs them, :meth:`RemoteOps.call`, which runs an op on another node
through the bus's ``request`` and returns its result or raises its typed
error, and :meth:`RemoteOps.gather` (scatter-gather: every node answers).
The codecs of calls and answers are the core's
(:mod:`wshub_channels.core.wire`); this module adds what needs the Channels
exceptions: :func:`decode_answer` raises the error an answer carries,
rebuilt by :func:`error_from_name`. How a request crosses the bus is the
bus's: native request/reply (NATS), or :mod:`.inbox` over plain publish and
subscribe (Redis).

:class:`RemoteOps` keeps no loop state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.exceptions import ChannelFull, MessageTooLarge

from .. import errors
from ..core.wire import decode_answer_fields, decode_call, encode_call, encode_error, encode_result
from ..log import Throttle
from .bus import NoResponders

__all__ = ["Op", "RemoteOps", "Requester", "decode_answer", "error_from_name"]

logger = logging.getLogger("wshub_channels.layers")
_unencodable = Throttle(logger, 10.0)

Op = Callable[..., Awaitable[Any]]
#: ``request(subject, data, timeout, max_replies)``, as ``Bus.request``.
Requester = Callable[[str, bytes, float, int | None], Awaitable[list[bytes]]]

_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "ChannelFull": ChannelFull,
    "MessageTooLarge": MessageTooLarge,
}


def decode_answer(body: bytes) -> Any:
    """Return the result an answer carries, or raise the error it carries.

    The error is rebuilt by :func:`error_from_name`. Raises ``ValueError`` when
    the answer itself is malformed.
    """
    answer = decode_answer_fields(body)
    if answer.ok:
        return answer.value
    raise error_from_name(answer.value, answer.message)


def error_from_name(name: str, message: str) -> Exception:
    """Rebuild a remote error: a hub error, a few builtins, else ``HubError``."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return _BUILTIN_ERRORS.get(name, errors.HubError)(message)


# -- the core side: ops --------------------------------------------------------------


class RemoteOps:
    """The ops this node answers, and calls of ops on other nodes.

    ``on_bad_request`` runs for each undecodable or unknown call received;
    ``on_bus_error`` for each call the bus failed to carry. A gather (a call
    on ``gather_subject``) of an op this node does not have gets no answer
    with a body, so a process that is not a hub node (a worker, a publisher)
    never counts as one of the nodes a gather waits for.
    """

    def __init__(
        self,
        on_bad_request: Callable[[], None],
        on_bus_error: Callable[[], None],
        gather_subject: str | None = None,
    ) -> None:
        self._ops: dict[str, Op] = {}
        self._on_bad_request = on_bad_request
        self._on_bus_error = on_bus_error
        self._gather_subject = gather_subject

    def register(self, name: str, op: Op) -> None:
        """Make ``op`` callable by other nodes under ``name`` (replacing any before)."""
        self._ops[name] = op

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    async def handle(self, subject: str, body: bytes) -> bytes | None:
        """Run the call in ``body`` and return its answer: the bus's request handler.

        Returns None (answer without a body) for a gather of an unknown op.
        Never raises: an op's error, and a result that cannot be encoded (as
        ``TypeError``), become error answers, so the caller hears at once.
        """
        try:
            name, args = decode_call(body)
        except ValueError:
            self._on_bad_request()
            return encode_error(ValueError("malformed request"))
        op = self._ops.get(name)
        if op is None:
            if subject == self._gather_subject:
                return None
            self._on_bad_request()
            return encode_error(ValueError(f"unknown op {name!r}"))
        try:
            result = await op(*args)
        except Exception as exc:
            return encode_error(exc)
        try:
            return encode_result(result)  # in the error path: a bad answer is an error reply
        except Exception as exc:
            _unencodable.warning("the answer to %r cannot be encoded: %r", name, exc)
            return encode_error(TypeError(f"the answer to {name!r} cannot be encoded: {exc}"))

    async def call(
        self,
        request: Requester,
        subject: str,
        op: str,
        args: Sequence[Any],
        timeout: float,
        node: str,
    ) -> Any:
        """Call ``op`` on the one node listening on ``subject`` and return its result.

        Raises :class:`NoResponders` when the bus knows nobody listens,
        :class:`~wshub_channels.errors.HubTimeout` when no answer comes within
        ``timeout``, :class:`~wshub_channels.errors.BusUnavailable` when the bus
        fails, and otherwise the op's own error, rebuilt by class name.
        """
        try:
            replies = await request(subject, encode_call(op, args), timeout, 1)
        except (NoResponders, errors.HubError, MessageTooLarge):
            raise
        except Exception as exc:
            self._on_bus_error()
            raise errors.BusUnavailable(f"calling node {node} failed: {exc!r}") from exc
        if not replies:
            raise errors.HubTimeout(f"node {node} did not answer {op!r} within {timeout:g}s")
        return decode_answer(replies[0])

    async def gather(
        self,
        request: Requester,
        subject: str,
        op: str,
        args: Sequence[Any],
        timeout: float,
        expect: int | None,
    ) -> list[Any]:
        """Call ``op`` on every node listening on ``subject``; return what they answered.

        Stops as soon as ``expect`` nodes answered (the caller knows how many
        there are, from presence), else when the bus has heard from every
        listener it counted (Redis, the in-memory bus), else at ``timeout``
        (NATS cannot count). An answer that carries an error is returned as
        that exception, so one failing node does not hide the others. No
        listener at all gives an empty list.
        """
        try:
            replies = await request(subject, encode_call(op, args), timeout, expect)
        except NoResponders:
            return []
        except (errors.HubError, MessageTooLarge):
            raise
        except Exception as exc:
            self._on_bus_error()
            raise errors.BusUnavailable(f"gathering {op!r} failed: {exc!r}") from exc
        answers: list[Any] = []
        for body in replies:
            try:
                answers.append(decode_answer(body))
            except Exception as exc:
                answers.append(exc)
        return answers
