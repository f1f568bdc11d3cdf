"""Helpers shared by the benchmark scripts in this directory.

Each script writes its own section of ``benchmarks/RESULTS.md`` and leaves the
others alone, so the file can collect results from several scripts and runs.
A section is delimited by ``<!-- <name>:begin -->`` / ``<!-- <name>:end -->``.

Nothing here writes a path of the machine the benchmark ran on: commands are
given relative to the repository root and the interpreter is called ``python``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "RESULTS.md"
RESULTS_TITLE = "# Benchmark results"
#: Typographic characters for tables, spelled out so the source stays ASCII.
DASH = "\u2013"
TIMES = "\u00d7"
MICRO = "\u00b5"


# ----------------------------------------------------------------- the machine


def import_this_tree() -> None:
    """Make the package of this repository (not an installed copy) the one imported."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(1, root)


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_count() -> str:
    """Logical CPUs, plus how many of them this process may run on if fewer."""
    logical = os.cpu_count() or 0
    text = f"{logical} logical"
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        usable = len(affinity(0))
        if usable != logical:
            text += f" ({usable} usable by this process)"
    return text


def total_ram() -> str:
    """Total memory in GiB, or "unknown"."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    return f"{kib / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return "unknown"
    return f"{pages / 1024**3:.1f} GiB"


def package_version(distribution: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description(
    packages: Iterable[str] = (), extra: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(label, value) pairs describing where and with what a benchmark ran."""
    rows = [
        ("CPU", cpu_model()),
        ("Cores", cpu_count()),
        ("RAM", total_ram()),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]
    rows.extend((name, package_version(name)) for name in packages)
    rows.extend((extra or {}).items())
    return rows


def render_description(rows: Iterable[tuple[str, str]]) -> str:
    """A markdown bullet list of ``machine_description()``'s rows."""
    return "\n".join(f"- {label}: {value}" for label, value in rows)


def redact_url(url: str) -> str:
    """``url`` without a password, fit to be written to a results file."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def redis_server_version(url: str, timeout: float = 2.0) -> str:
    """The version a Redis server reports in INFO, or why it could not be had."""
    try:
        import redis  # only the scripts that use a Redis server need it installed
    except ImportError:
        return "unknown (redis-py not installed)"
    for scheme in ("redis+cluster://", "rediss+cluster://"):
        if url.startswith(scheme):  # a Redis Cluster: ask its first startup node
            rest = url[len(scheme) :]
            auth, _, nodes = rest.rpartition("@")
            first = nodes.split("/", 1)[0].split(",", 1)[0]
            base = scheme.replace("+cluster", "")
            url = f"{base}{auth + '@' if auth else ''}{first}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            info = client.info("server")
        finally:
            client.close()
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    return str(info.get("redis_version", "unknown"))


async def nats_server_version(url: str, connect_timeout: float = 2.0) -> str:
    """The version a NATS server announces on connect, or why it could not be had."""
    try:
        import nats  # only the scripts that use a NATS server need it installed
    except ImportError:
        return "unknown (nats-py not installed)"

    async def quiet(error: Exception) -> None:
        pass  # nats-py logs a traceback per failed attempt otherwise

    try:
        # nats-py takes max_reconnect_attempts=0 as "no limit", and keeps trying an
        # unreachable server; so one attempt, and a fence around it.
        client = await asyncio.wait_for(
            nats.connect(
                servers=[url],
                connect_timeout=connect_timeout,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                error_cb=quiet,
            ),
            connect_timeout * 2 + 1,
        )
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    try:
        version = client.connected_server_version
        return f"{version.major}.{version.minor}.{version.patch}"
    except Exception:
        return "unknown"
    finally:
        await client.close()


def library_fingerprint() -> str:
    """A short hash of the library's sources, to notice them changing during a run."""
    digest = hashlib.sha1()
    package = REPO_ROOT / "wshub_channels"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def library_version(origin: str | None = None) -> str:
    """Which wshub_channels the benchmark measures: this source tree, with its commit,
    whether it has uncommitted changes, and a hash of its sources.

    ``origin`` is where the measuring process finds the package (its ``__init__.py``);
    the text then says whether that is this tree, and if not, that the figures are
    not of this tree.
    """
    text = "source tree of this repository"
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "wshub_channels")
    except (OSError, subprocess.SubprocessError):
        text += f" (sources {library_fingerprint()})"
    else:
        state = " plus uncommitted changes" if dirty else ""
        text += f" at commit {commit}{state} (sources {library_fingerprint()})"
    if origin is not None:
        here = REPO_ROOT / "wshub_channels"
        if Path(origin).resolve().is_relative_to(here.resolve()):
            text += ", imported from this tree"
        else:
            text += ", **but the benchmark imported another copy of the package**"
    return text


def package_origin() -> str | None:
    """Where this process would import wshub_channels from, or None if it cannot."""
    import importlib.util

    spec = importlib.util.find_spec("wshub_channels")
    return spec.origin if spec is not None else None


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()


async def delete_nats_prefix_streams(url: str, prefix: str, timeout: float = 5.0) -> int:
    """Delete the JetStream streams of a NatsHubLayer ``prefix`` a run made (see
    :func:`wshub_channels.testing.jetstream.delete_prefix_streams`)."""
    from wshub_channels.testing.jetstream import delete_prefix_streams

    return await delete_prefix_streams(url, prefix, timeout)


# ------------------------------------------------------------------ the run


def utc_now() -> str:
    """The current time, e.g. ``2025-01-31 14:05 UTC``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(
    script: str | Path, argv: Sequence[str] | None = None, env: Sequence[str] = ()
) -> str:
    """The command that reproduces this run, relative to the repository root.

    ``env`` names environment variables to show in front of the command when they
    are set (URLs among them are written without their password).
    """
    path = Path(script).resolve()
    try:
        shown = path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        shown = path.name
    arguments = list(sys.argv[1:] if argv is None else argv)
    prefix = [f"{name}={redact_url(os.environ[name])}" for name in env if os.environ.get(name)]
    return shlex.join([*prefix, "python", shown, *arguments])


def median(values: Iterable[float]) -> float | None:
    """The median, or None for no values."""
    data = list(values)
    return statistics.median(data) if data else None


def format_ms(seconds: float | None, digits: int = 1) -> str:
    """Seconds as milliseconds with thousands separators, or an en dash."""
    if seconds is None:
        return DASH
    return f"{seconds * 1000:,.{digits}f}"


def ratio_text(reference: float | None, value: float | None, at_least: bool = False) -> str:
    """How ``value`` compares to ``reference``, both durations.

    "12.3x faster" or "2.0x slower", written with a multiplication sign. With
    ``at_least``, ``reference`` is only a lower bound (a run that never finished),
    and the text says so: "at least 12.3x faster".
    """
    if reference is None or value is None or reference <= 0 or value <= 0:
        return "n/a"
    ratio = reference / value
    if at_least:
        return f"at least {ratio:,.1f}{TIMES} faster" if ratio > 1 else "n/a"
    if 0.995 <= ratio <= 1.005:
        return "same"
    if ratio > 1:
        return f"{ratio:,.1f}{TIMES} faster"
    return f"{1 / ratio:,.1f}{TIMES} slower"


# ---------------------------------------------------------------- the output


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` has one of ``l``/``r``/``c`` per column (default ``l``)."""
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    spec = [marks[align[i]] if i < len(align) else marks["l"] for i in range(len(headers))]
    body = [list(headers), spec, *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(headers))]
    lines = []
    for n, line in enumerate(body):
        cells = []
        for i, cell in enumerate(line):
            if n == 1:
                mark = spec[i]
                cells.append(mark[0] + "-" * (widths[i] - 2) + mark[-1])
            elif align[i : i + 1] == "r":
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell.ljust(widths[i]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section_markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(
    name: str, body: str, path: Path = RESULTS_FILE, title: str = RESULTS_TITLE
) -> None:
    """Write ``body`` as section ``name`` of ``path``, keeping every other section.

    Creates the file, headed by ``title``, if it does not exist, and appends the
    section if the file does not have it yet.
    """
    begin, end = section_markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = f"{title}\n"
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start != -1 else -1
    if start != -1 and stop != -1:
        text = text[:start] + block + text[stop + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
