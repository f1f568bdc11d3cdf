"""Fan-out over two processes: one ``group_send`` to members split between them.

For each broker-backed layer, the parent process and one child process each
create N/2 channels, ``group_add`` them to one group and start one receiving
task per channel. When both are ready, the parent calls ``group_send`` once.
"All delivered" runs from that call to the moment the last of the N receivers,
in either process, had its message (both processes read the same monotonic
clock). Every receiver must get exactly the message sent; a run with losses
is reported with its count.

Run from the repository root::

    python benchmarks/layer_fanout_2proc.py                       # 10,000 members, 3 repeats
    python benchmarks/layer_fanout_2proc.py --layers hub-redis,redis-pubsub --repeat 1

Results go to the ``layer_fanout_2proc`` section of ``benchmarks/RESULTS.md``
(``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
import layer_fanout as lf

SECTION = "layer_fanout_2proc"
DEFAULT_LAYERS = "hub-redis,redis,redis-pubsub,nats"


async def _members(spec: lf.LayerSpec, prefix: str, count: int, brokers: lf.Brokers) -> Any:
    """Make a layer with ``count`` waiting group members; return (layer, tally, tasks)."""
    layer = spec.load()(**spec.options(brokers, prefix))
    tally = lf.Tally(count)
    tasks: list[asyncio.Task[None]] = []
    await lf.set_up(layer, count, tally, tasks, settle=0.5, rearm=False)
    return layer, tally, tasks


async def child(spec_key: str, prefix: str, count: int, brokers: lf.Brokers, wait: float) -> None:
    """The second process: members only. Says "ready", then reports its deliveries as JSON."""
    layer, tally, tasks = await _members(lf.LAYERS[spec_key], prefix, count, brokers)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.finished.wait(), wait)
    print(json.dumps({"delivered": tally.delivered, "last_at": tally.last_at}), flush=True)
    for task in tasks:
        task.cancel()
    await lf.dispose(layer)


async def run_once(
    spec: lf.LayerSpec, size: int, brokers: lf.Brokers, wait: float
) -> dict[str, Any]:
    prefix = f"b2p{uuid.uuid4().hex[:10]}"
    half = size // 2
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the timed part
        [sys.executable, __file__, "--child", spec.key, prefix, str(size - half),
         "--redis-url", brokers.redis_url, "--nats-url", brokers.nats_url, "--wait", str(wait)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        layer, tally, tasks = await _members(spec, prefix, half, brokers)
        line = await asyncio.to_thread(proc.stdout.readline)
        if line.strip() != "ready":
            return {"status": "error", "detail": f"child said {line.strip()!r}"}
        await asyncio.sleep(0.5)
        gc.collect()
        sent_at = time.perf_counter()
        await layer.group_send(lf.GROUP, lf.MESSAGE)
        call = time.perf_counter() - sent_at
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.finished.wait(), wait)
        report = json.loads(await asyncio.to_thread(proc.stdout.readline))
        delivered = tally.delivered + report["delivered"]
        last = max(tally.last_at, report["last_at"])
        for task in tasks:
            task.cancel()
        await lf.dispose(layer)
        return {
            "status": "ok" if delivered == size else "lost",
            "delivered": delivered,
            "total_s": last - sent_at if delivered else None,
            "call_s": call,
        }
    finally:
        proc.wait(timeout=wait + 30)


async def benchmark(args: argparse.Namespace) -> str:
    brokers = lf.Brokers(args.redis_url, args.nats_url)
    keys = [k.strip() for k in args.layers.split(",") if k.strip()]
    results: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        for n in range(args.repeat):
            print(f"{key} run {n + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            try:
                outcome = await run_once(lf.LAYERS[key], args.size, brokers, args.wait)
            except Exception as error:  # reported in the table, never hidden
                outcome = {"status": "error", "detail": lf.describe_error(error)}
            results.setdefault(key, []).append(outcome)
    return render(args, keys, results)


def render(
    args: argparse.Namespace, keys: list[str], results: dict[str, list[dict[str, Any]]]
) -> str:
    medians = {}
    for key in keys:
        runs = results[key]
        if all(r["status"] == "ok" for r in runs):
            medians[key] = _common.median(r["total_s"] for r in runs)
    baseline = medians.get("hub-redis")
    rows = []
    for key in keys:
        spec = lf.LAYERS[key]
        runs = results[key]
        totals = [r["total_s"] for r in runs if r.get("total_s") is not None]
        delivered = min((r.get("delivered", 0) for r in runs), default=0)
        median = medians.get(key)
        rows.append([
            spec.label,
            _common.format_ms(median) if median is not None else "lost/failed",
            _span(totals),
            _common.format_ms(_common.median(r["call_s"] for r in runs if "call_s" in r)),
            f"{delivered:,}/{args.size:,}",
            "baseline" if key == "hub-redis" else _common.ratio_text(baseline, median),
            "; ".join(sorted({r.get("detail", "") for r in runs if r.get("detail")})) or "",
        ])  # fmt: skip
    machine = _common.machine_description(
        ["Django", "channels", "channels-redis", "redis", "channels-nats", "nats-py"],
        extra={
            "Redis server": f"{_common.redis_server_version(args.redis_url)} at "
            f"{_common.redact_url(args.redis_url)}",
            "NATS server": _common.redact_url(args.nats_url),
        },
    )
    table = _common.markdown_table(
        ["layer", "all delivered, median (ms)", f"min{_common.DASH}max (ms)",
         "group_send call (ms)", "delivered/expected", "vs RedisHubLayer", "notes"],
        rows, align="lrrrrrl",
    )  # fmt: skip
    command = _common.command_line("benchmarks/layer_fanout_2proc.py", sys.argv[1:])
    return "\n".join([
        f"## {SECTION}: one group_send to {args.size:,} members split over two processes",
        "",
        f"Date: {_common.utc_now()}",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        f"The parent and a child process each hold half of the {args.size:,} members, one "
        "receiving task per channel. The parent calls `group_send` once; all delivered runs "
        "from that call until the last receiver in either process had its message. Median of "
        f"{args.repeat} run(s).",
        "",
        "Machine:",
        "",
        _common.render_description(machine),
        "",
        table,
    ])  # fmt: skip


def _span(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_common.format_ms(min(values))}{_common.DASH}{_common.format_ms(max(values))}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=DEFAULT_LAYERS)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wait", type=float, default=30.0, help="give up on deliveries after")
    parser.add_argument("--redis-url", default=lf.DEFAULT_REDIS_URL)
    parser.add_argument("--nats-url", default=lf.DEFAULT_NATS_URL)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=_common.RESULTS_FILE)
    parser.add_argument("--child", nargs=3, metavar=("LAYER", "PREFIX", "COUNT"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lf.prepare_imports()
    if args.child:
        key, prefix, count = args.child
        brokers = lf.Brokers(args.redis_url, args.nats_url)
        asyncio.run(child(key, prefix, int(count), brokers, args.wait))
        return 0
    text = asyncio.run(benchmark(args))
    print(text)
    if not args.no_write:
        _common.replace_section(SECTION, text, path=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
