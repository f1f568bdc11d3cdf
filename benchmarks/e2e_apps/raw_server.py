"""The floor: a plain ``websockets.asyncio.server`` with ``broadcast()``, no Django.

Run as ``python raw_server.py --port PORT`` (it adds ``benchmarks/`` to
``sys.path`` itself). Same protocol as the other servers (see the package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from websockets.asyncio.server import ServerConnection, broadcast, serve

from e2e_apps import BENCH_PATH, CONTROL_PATH, mark, parse_go, run_go

members: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    route = ws.request.path.strip("/") + "/" if ws.request is not None else ""
    if route == BENCH_PATH:
        members.add(ws)
        try:
            await ws.send("ready")
            await ws.wait_closed()
        finally:
            members.discard(ws)
    elif route == CONTROL_PATH:
        async for text in ws:
            if text == "count":
                await ws.send(f"count {len(members)}")
                continue
            if isinstance(text, str) and text.startswith("mark"):
                await ws.send(mark(text))
                continue
            go = parse_go(text if isinstance(text, str) else "")
            if go is None:
                await ws.send("error unknown command")
                continue
            await ws.send(await run_go(go, lambda text: broadcast(members, text)))
    else:
        await ws.close(1008, "unknown path")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # No compression, no pings: the same as every other server in the benchmark.
    async with serve(
        handler, args.host, args.port, compression=None, ping_interval=None, backlog=2048
    ):
        await stop


if __name__ == "__main__":
    asyncio.run(main())
