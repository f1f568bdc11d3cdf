"""Every fenced block of README.md and of the pages under ``docs/`` is checked.

By language:

- ``python``: a settings block (only imports and UPPERCASE assignments) runs and
  its ``WSHUB`` goes through the package's own parser, each ``CHANNEL_LAYERS``
  backend is built from its ``CONFIG`` (no connection is made), and every app in
  ``INSTALLED_APPS`` imports; any other block runs (top-level ``await`` allowed),
  and the ``test_*`` functions it defines are called. Blocks in
  :data:`RUN_ELSEWHERE` need context a dedicated test gives them, and run there.
- ``sh``/``bash``: every command names something that exists: a ``./dev``
  subcommand, a ``manage.py``/``django-admin`` command, a pip extra of
  ``pyproject.toml``, or a program installed here.
- ``js``: ``node --check`` as an ES module (skipped, saying so, without node).
- ``yaml``: parses, and every probe path it names resolves in
  ``wshub_channels.urls``.
- Exempt, as they only show what a person types or sees: ``html`` (the tutorial's
  template, served by the tutorial test), ``text`` and blocks without a language
  (output, server configuration files).
- myst directives (``{toctree}``, ``{include}``, ``{eval-rst}``) are the site's
  structure, checked by the Sphinx build.

A block of any other language fails. ``benchmarks/RESULTS.md`` (included in the
site) is a record of commands run, not documentation to follow, and is not read.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from tests.docs.blocks import DOCS, README, REPO_ROOT, Block, code_blocks, doc_files
from wshub_channels.conf import parse_settings
from wshub_channels.layers import HubLayer

pytestmark = pytest.mark.unit

#: (page, heading) -> the test that runs that section's python blocks with its context.
RUN_ELSEWHERE: dict[tuple[str, str], str] = {
    ("docs/topics/security.md", "## Token auth"): "tests/test_readme.py::test_token_auth_example",
    (
        "docs/topics/history.md",
        "# History and recovery",
    ): "tests/test_readme.py::test_history_example",
    ("README.md", "## Quickstart"): "tests/docs/test_readme_page.py::test_quickstart_serves_a_chat",
}
#: Every block of the tutorial is put together into a project by its own test.
TUTORIAL = "docs/tutorial.md"
TUTORIAL_TEST = "tests/docs/test_tutorial.py::test_tutorial_project_chats"

EXEMPT = {"html", "text", ""}
DIRECTIVES = {"{toctree}", "{include}", "{eval-rst}"}
CHECKED = {"python", "sh", "bash", "js", "yaml"}
SHELL_BUILTINS = {"export", "cd", "source", "."}


def _all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in code_blocks(path)]


BLOCKS = _all_blocks()


def _runs_here(block: Block) -> bool:
    """False for the blocks a dedicated test runs (see ``RUN_ELSEWHERE``)."""
    rel = _rel(block)
    return rel != TUTORIAL and (rel, block.heading) not in RUN_ELSEWHERE


def _rel(block: Block) -> str:
    return str(block.path.relative_to(REPO_ROOT))


def _blocks(*langs: str) -> list[Any]:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.lang in langs and _runs_here(b)]


def test_every_block_has_a_checked_or_exempt_language() -> None:
    """A block in a language nobody checks fails, naming where it is."""
    unknown = [
        f"{b.where}: {b.lang!r}" for b in BLOCKS if b.lang not in CHECKED | EXEMPT | DIRECTIVES
    ]
    assert not unknown, "code blocks in a language the docs tests do not check: " + ", ".join(
        unknown
    )


def test_blocks_run_elsewhere_name_real_tests() -> None:
    """Each pointer to a dedicated test names a section that has python blocks and a test
    function that exists."""
    for (page, heading), test in [*RUN_ELSEWHERE.items(), ((TUTORIAL, ""), TUTORIAL_TEST)]:
        blocks = [b for b in BLOCKS if _rel(b) == page and b.lang == "python"]
        if heading:
            blocks = [b for b in blocks if b.heading == heading]
        assert blocks, f"{page} {heading!r} has no python block"
        module, name = test.split("::")
        source = (REPO_ROOT / module).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{test} does not exist"


# -- python -------------------------------------------------------------------------------


def _is_settings(tree: ast.Module) -> bool:
    def upper(target: ast.expr) -> bool:
        return isinstance(target, ast.Name) and target.id.isupper()

    statements = [s for s in tree.body if not isinstance(s, ast.Import | ast.ImportFrom)]
    return bool(statements) and all(
        (isinstance(s, ast.Assign) and all(upper(t) for t in s.targets))
        or (isinstance(s, ast.AugAssign) and upper(s.target))
        for s in statements
    )


def _check_settings(block: Block, namespace: dict[str, Any]) -> None:
    if "WSHUB" in namespace:
        parse_settings(namespace["WSHUB"])  # raises ImproperlyConfigured naming the key
    for alias, spec in namespace.get("CHANNEL_LAYERS", {}).items():
        backend = import_string(spec["BACKEND"])
        assert issubclass(backend, HubLayer), f"{block.where}: {alias} is not a hub layer"
        backend(**spec.get("CONFIG", {}))  # unknown options raise TypeError
    for app in namespace.get("INSTALLED_APPS", []):
        if isinstance(app, str):
            import_module(app)


@pytest.mark.parametrize("block", _blocks("python"))
async def test_python_block_runs(block: Block) -> None:
    """The block runs as written; a settings block is what the package accepts."""
    tree = ast.parse(block.text, filename=block.where)
    # The apps a settings block extends (``[*INSTALLED_APPS, ...]``) start as Django's.
    namespace: dict[str, Any] = {"__name__": "docs_block", "INSTALLED_APPS": []}
    code = compile(tree, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        await result
    if _is_settings(tree):
        _check_settings(block, namespace)
        return
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            outcome = value()
            if asyncio.iscoroutine(outcome):
                await outcome


# -- shell --------------------------------------------------------------------------------


def _dev_commands() -> set[str]:
    text = (REPO_ROOT / "dev").read_text()
    return set(re.findall(r"^  ([a-z]+)\)$", text, re.M))


def _extras() -> set[str]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(data["project"]["optional-dependencies"])


def _commands(text: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped,
    split on ``&&``, ``||``, ``;`` and ``|``."""
    joined = re.sub(r"\\\n", " ", text)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in [*words, ";"]:
            if word in {"&&", "||", ";", "|"}:
                while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                    current.pop(0)  # VAR=value before a command
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def _program_exists(program: str) -> bool:
    name = Path(program).name
    return shutil.which(name) is not None or (Path(sys.executable).parent / name).exists()


def _pip_extras(args: list[str]) -> list[str]:
    """The ``[extras]`` of this project named in a pip install line."""
    wanted: list[str] = []
    for arg in args:
        match = re.fullmatch(r"(?:wshub-channels|\.)\[([a-z,]+)\]", arg)
        if match:
            wanted += match.group(1).split(",")
    return wanted


def _check_command(words: list[str], dev: set[str], commands: set[str], extras: set[str]) -> str:
    """'' when the command names what exists, else what is wrong."""
    program, args = Path(words[0]).name, words[1:]
    if program in SHELL_BUILTINS:
        return ""
    if words[0] == "./dev":
        return "" if args and args[0] in dev else f"no ./dev subcommand {args[:1]}"
    if program in {"python", "python3"} and args[:2] == ["-m", "pip"]:
        program, args = "pip", args[2:]
    if program in {"python", "python3"} and args[:1] == ["manage.py"]:
        name = args[1] if len(args) > 1 else ""
        return "" if name in commands else f"no manage.py command {name!r}"
    if program == "django-admin":
        return "" if args and args[0] in commands else f"no django-admin command {args[:1]}"
    if program == "pip":
        missing = sorted(set(_pip_extras(args)) - extras)
        return f"no pip extra {missing}" if missing else ""
    return "" if _program_exists(words[0]) else f"no program {words[0]!r}"


@pytest.mark.parametrize("block", _blocks("sh", "bash"))
def test_shell_block_names_what_exists(block: Block) -> None:
    """Each command line names a ./dev subcommand, a management command, a pip extra or a
    program that exists."""
    dev, commands, extras = _dev_commands(), set(get_commands()), _extras()
    # daphne's runserver replaces Django's; both are called runserver.
    problems = []
    for words in _commands(block.text):
        problem = _check_command(words, dev, commands, extras)
        if problem:
            problems.append(f"{' '.join(words)}: {problem}")
    assert not problems, f"{block.where}: " + "; ".join(problems)


def test_shell_check_refuses_what_does_not_exist() -> None:
    """The shell check fails unknown subcommands, commands, extras and programs."""
    dev, commands, extras = _dev_commands(), set(get_commands()), _extras()
    for line in [
        "./dev deploy",
        ".venv/bin/python manage.py wshub_explode",
        'pip install "wshub-channels[kafka]"',
        "no-such-program-here --now",
    ]:
        assert _check_command(shlex.split(line), dev, commands, extras), line
    assert not _check_command(["./dev", "docs"], dev, commands, extras)


# -- js, yaml -----------------------------------------------------------------------------


@pytest.mark.parametrize("block", _blocks("js"))
def test_js_block_parses(block: Block, tmp_path: Path) -> None:
    """``node --check`` accepts the block as an ES module."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot check JavaScript blocks")
    source = tmp_path / "block.mjs"
    source.write_text(block.text)
    done = subprocess.run(
        [node, "--check", str(source)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{block.where}:\n{done.stderr}"


def _probe_paths(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["httpGet"]["path"]] if "httpGet" in node else []
        return found + [p for value in node.values() for p in _probe_paths(value)]
    if isinstance(node, list):
        return [p for value in node for p in _probe_paths(value)]
    return []


@pytest.mark.parametrize("block", _blocks("yaml"))
def test_yaml_block_parses_and_its_probes_exist(block: Block) -> None:
    """The manifest parses, and the probe paths it names are the app's URLs."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (a myst-parser dependency) is missing")
    document = yaml.safe_load(block.text)
    for path in _probe_paths(document):
        try:
            resolve(path, urlconf="wshub_channels.urls")
        except Resolver404:
            pytest.fail(f"{block.where}: probe path {path} is not a wshub_channels URL")


def test_the_documentation_has_blocks_of_every_checked_kind() -> None:
    """The parser finds the blocks (a broken parser would make every test above vacuous)."""
    langs = {b.lang for b in BLOCKS}
    assert {"python", "sh", "js", "yaml"} <= langs
    assert any(b.path == README and b.lang == "python" for b in BLOCKS)
    assert any(b.path.is_relative_to(DOCS / "topics") for b in BLOCKS)
