"""Fan-out over two processes: one ``group_send`` to members split between them.

For each broker-backed layer, the parent process and one child process each
create N/2 channels, ``group_add`` them to one group and start one receiving
task per channel. When both are ready, the parent calls ``group_send`` once.
"All delivered" runs from that call to the moment the last of the N receivers,
in either process, had its message (both processes read the same monotonic
clock). Every receiver must get exactly the message sent; a run with losses
is reported with its count. Each process also reads its own CPU time, from just
before the call (the parent) or from saying "ready" (the child) to its last
delivery; their sum per member is the CPU column (a broker's own CPU is not in it).
The layers run round robin (run 1 of each, then run 2, ...), so drift on the
machine spreads over all of them.

Run from the repository root::

    python benchmarks/layer_fanout_2proc.py                       # 10,000 members, 3 repeats
    python benchmarks/layer_fanout_2proc.py --layers hub-redis,redis-pubsub --repeat 1
    python benchmarks/layer_fanout_2proc.py --layers hub-nats,nats

Results go to the ``layer_fanout_2proc`` section of ``benchmarks/RESULTS.md``
(``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
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
DEFAULT_LAYERS = "hub-redis,hub-nats,redis,redis-pubsub,nats"
#: The layers the ratio columns compare against, when they ran.
BASELINES = ("hub-redis", "nats")


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
    gc.collect()
    cpu_at = time.process_time()
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.finished.wait(), wait)
    cpu = None if tally.finished_cpu is None else tally.finished_cpu - cpu_at
    report = {"delivered": tally.delivered, "last_at": tally.last_at, "cpu_s": cpu}
    print(json.dumps(report), flush=True)
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
        cpu_at = time.process_time()
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
        cpu = None
        if tally.finished_cpu is not None and report.get("cpu_s") is not None:
            cpu = (tally.finished_cpu - cpu_at, report["cpu_s"])
        return {
            "status": "ok" if delivered == size else "lost",
            "delivered": delivered,
            "total_s": last - sent_at if delivered else None,
            "call_s": call,
            "cpu_s": cpu,
        }
    finally:
        proc.wait(timeout=wait + 30)
        if spec.cleanup is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(spec.cleanup(brokers, prefix), 30)


async def benchmark(args: argparse.Namespace) -> str:
    brokers = lf.Brokers(args.redis_url, args.nats_url)
    keys = args.layer_keys
    machine = await describe_machine(args, brokers)
    results: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    # Round robin, so that drift on the machine spreads over all layers alike.
    for n in range(args.repeat):
        for key in keys:
            try:
                outcome = await run_once(lf.LAYERS[key], args.size, brokers, args.wait)
            except Exception as error:  # reported in the table, never hidden
                outcome = {"status": "error", "detail": lf.describe_error(error)}
            results[key].append(outcome)
            print(
                f"{lf.LAYERS[key].label:41} run {n + 1}/{args.repeat}: "
                f"{outcome['status']:5} all delivered {_common.format_ms(outcome.get('total_s'))} "
                f"ms, call {_common.format_ms(outcome.get('call_s'), 2)} ms, "
                f"{outcome.get('delivered', 0):,}/{args.size:,}, CPU s parent / child "
                f"{_cpu_pair(outcome)}"
                + (f" [{outcome['detail']}]" if outcome.get("detail") else ""),
                file=sys.stderr,
                flush=True,
            )
    return render(args, keys, results, machine)


def _cpu_pair(outcome: dict[str, Any]) -> str:
    cpu = outcome.get("cpu_s")
    return _common.DASH if not cpu else f"{cpu[0]:.3f} / {cpu[1]:.3f}"


async def describe_machine(args: argparse.Namespace, brokers: lf.Brokers) -> list[tuple[str, str]]:
    extra = {}
    with contextlib.suppress(OSError, AttributeError):
        extra["Load average at start"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return await lf.describe_machine([lf.LAYERS[key] for key in args.layer_keys], brokers, extra)


def render(
    args: argparse.Namespace,
    keys: list[str],
    results: dict[str, list[dict[str, Any]]],
    machine: list[tuple[str, str]],
) -> str:
    medians = {}
    for key in keys:
        runs = results[key]
        if all(r["status"] == "ok" for r in runs):
            medians[key] = _common.median(r["total_s"] for r in runs)
    baselines = [key for key in BASELINES if key in keys]
    rows = []
    for key in keys:
        spec = lf.LAYERS[key]
        runs = results[key]
        totals = [r["total_s"] for r in runs if r.get("total_s") is not None]
        delivered = min((r.get("delivered", 0) for r in runs), default=0)
        median = medians.get(key)
        cpus = [r["cpu_s"] for r in runs if r.get("status") == "ok" and r.get("cpu_s")]
        rows.append([
            spec.label,
            _common.format_ms(median) if median is not None else "lost/failed",
            _span(totals),
            _common.format_ms(_common.median(r["call_s"] for r in runs if "call_s" in r)),
            f"{delivered:,}/{args.size:,}",
            *(
                "baseline" if key == base else _common.ratio_text(medians.get(base), median)
                for base in baselines
            ),
            _cpu_text(cpus, args.size),
            "; ".join(sorted({r.get("detail", "") for r in runs if r.get("detail")})) or "",
        ])  # fmt: skip
    table = _common.markdown_table(
        ["layer", "all delivered, median (ms)", f"min{_common.DASH}max (ms)",
         "group_send call (ms)", "delivered/expected",
         *(f"vs {lf.LAYERS[base].name}" for base in baselines),
         f"CPU {_common.MICRO}s per member, both (sender / other)", "notes"],
        rows, align="lrrrr" + "r" * len(baselines) + "rl",
    )  # fmt: skip
    command = _common.command_line(__file__, sys.argv[1:], env=("REDIS_URL", "NATS_URL"))
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
        f"{args.repeat} run(s), the layers round robin. The CPU column is the CPU time of "
        "both processes (`time.process_time()`: the parent's from just before the call, the "
        "child's from the moment it was ready, each to its own last delivery) per member, "
        "median of the runs that delivered everything, with the median of each process "
        "apart; a broker's own CPU is not in it.",
        "",
        "Machine:",
        "",
        _common.render_description(machine),
        "",
        table,
    ])  # fmt: skip


def _cpu_text(cpus: list[tuple[float, float]], size: int) -> str:
    """Median CPU microseconds per member: both processes (parent / child)."""
    if not cpus:
        return _common.DASH
    both = _common.median(a + b for a, b in cpus) or 0.0
    parent = _common.median(a for a, _ in cpus) or 0.0
    child = _common.median(b for _, b in cpus) or 0.0
    scale = 1e6 / size
    return f"{both * scale:,.2f} ({parent * scale:,.2f} / {child * scale:,.2f})"


def _span(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_common.format_ms(min(values))}{_common.DASH}{_common.format_ms(max(values))}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layers",
        default=DEFAULT_LAYERS,
        help="comma-separated broker-backed layer keys of layer_fanout.py "
        f"(default {DEFAULT_LAYERS})",
    )
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wait", type=float, default=30.0, help="give up on deliveries after")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", lf.DEFAULT_REDIS_URL))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", lf.DEFAULT_NATS_URL))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=_common.RESULTS_FILE)
    parser.add_argument("--child", nargs=3, metavar=("LAYER", "PREFIX", "COUNT"))
    args = parser.parse_args(argv)
    args.layer_keys = [k.strip() for k in args.layers.split(",") if k.strip()]
    unknown = [key for key in args.layer_keys if key not in lf.LAYERS]
    if unknown or not args.layer_keys:
        parser.error(f"unknown layer(s) {unknown}; choose from {', '.join(lf.LAYERS)}")
    broker_less = [key for key in args.layer_keys if lf.LAYERS[key].broker is None]
    if broker_less and not args.child:
        parser.error(f"{', '.join(broker_less)}: in-process layers cannot span two processes")
    return args


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
