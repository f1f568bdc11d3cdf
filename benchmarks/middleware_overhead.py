"""Per-message cost of a built chain of 3 middlewares plus the signal checks.

Times N awaited calls of the innermost handler alone, then of a chain built
from three built-in middlewares (recovery, logging at INFO, require-user)
followed by the listener checks the consumer makes per message
(``signals.has_listeners`` for ``message_received`` and ``hub_error``), and
reports the difference per message. Target: at most 1 µs. Pure CPU, one process.

    python benchmarks/middleware_overhead.py [--messages 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from benchmarks._common import (  # noqa: E402
    command_line,
    machine_description,
    markdown_table,
    render_description,
    replace_section,
    utc_now,
)
from wshub_channels import Message, MiddlewareChain, signals  # noqa: E402
from wshub_channels.middleware import (  # noqa: E402
    logging_middleware,
    recovery_middleware,
    require_user_middleware,
)


class Client:
    id = "bench"
    user_id = "u1"


async def final(client: Any, msg: Message) -> None:
    return None


async def time_calls(handler: Any, n: int, signal_checks: bool) -> float:
    client, msg, cls = Client(), Message("payload", "bench"), Client
    received, errored, check = signals.message_received, signals.hub_error, signals.has_listeners
    started = time.perf_counter()
    for _ in range(n):
        await handler(client, msg)
        if signal_checks:
            check(received, cls)
            check(errored, cls)
    return (time.perf_counter() - started) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    chain = (
        MiddlewareChain(final)
        .use(recovery_middleware(), logging_middleware(), require_user_middleware())
        .build()
    )
    bare, chained = [], []
    for _ in range(args.runs):
        bare.append(await time_calls(final, args.messages, signal_checks=False))
        chained.append(await time_calls(chain, args.messages, signal_checks=True))
    base, full = statistics.median(bare), statistics.median(chained)
    overhead_us = (full - base) * 1e6
    rows = [
        ["handler alone", f"{base * 1e9:.0f}"],
        ["3 middlewares + 2 signal checks", f"{full * 1e9:.0f}"],
        ["overhead per message", f"{overhead_us * 1e3:.0f}"],
    ]
    table = markdown_table(["path", "ns per message (median of runs)"], rows, "lr")
    verdict = "meets" if overhead_us <= 1.0 else "misses"
    print(table)
    print(f"overhead {overhead_us:.3f} µs per message ({verdict} the 1 µs target)")
    body = f"""## middleware_overhead: 3 middlewares and the signal checks, per message

Date: {utc_now()}

Command (from the repository root): `{command_line(__file__)}`

{args.messages:,} awaited calls per run, median of {args.runs} runs; no signal has listeners.
Overhead: **{overhead_us:.3f} µs per message**, which {verdict} the 1 µs target.

{table}

Machine:

{render_description(machine_description(["Django", "channels"]))}
"""
    replace_section("middleware_overhead", body)


if __name__ == "__main__":
    asyncio.run(main())
