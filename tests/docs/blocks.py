"""The Markdown files of the documentation, read as the tests need them.

:func:`doc_files` lists README.md and every page under ``docs/``;
:func:`code_blocks` gives a file's fenced blocks with their language, line and the
heading they sit under; :func:`headings` and :func:`slug` give the ``#anchors`` a
page offers (GitHub's rule, which myst's ``myst_heading_anchors`` follows);
:func:`links` gives its relative links. Fences are recognised by three or more
backticks at the start of a line; ``#`` lines inside them are not headings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DOCS",
    "README",
    "REPO_ROOT",
    "Block",
    "code_blocks",
    "doc_files",
    "headings",
    "links",
    "python_blocks",
    "section_text",
    "slug",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"

_FENCE = re.compile(r"^(`{3,})(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")


@dataclass(frozen=True)
class Block:
    """One fenced block: ``lang`` is the info string's first word (``""`` when none;
    ``"{toctree}"`` for a myst directive)."""

    path: Path
    line: int
    lang: str
    text: str
    heading: str  # the nearest heading above, as written ("## Token auth"); "" at the top

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every Markdown page of the documentation."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def _lines_outside_code(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Every line with its number and whether it is inside a fenced block."""
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _FENCE.match(line)
        if match and (fence is None or (match.group(1) == fence and not match.group(2).strip())):
            opening = fence is None
            fence = match.group(1) if opening else None
            yield number, line, True
            continue
        yield number, line, fence is not None


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order."""
    blocks: list[Block] = []
    heading = ""
    fence: str | None = None
    lang, start, body = "", 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, lang, start, body = match.group(1), match.group(2).strip(), number, []
                lang = lang.split()[0] if lang else ""
            elif _HEADING.match(line):
                heading = line.strip()
        elif match and match.group(1) == fence and not match.group(2).strip():
            blocks.append(Block(path, start, lang, "\n".join(body) + "\n", heading))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        raise ValueError(f"{path}:{start}: a fence that never closes")
    return blocks


def python_blocks(path: Path, heading: str) -> list[str]:
    """The ``python`` blocks of ``path`` under ``heading`` (as written, e.g. ``"## Token
    auth"``), up to the next heading of its level or above."""
    level = len(heading.split(" ")[0])
    inside = False
    found: list[str] = []
    current = ""
    for block in code_blocks(path):
        if block.heading != current:
            current = block.heading
            marks = len(current) - len(current.lstrip("#"))
            inside = current == heading or (inside and marks > level)
        if inside and block.lang == "python":
            found.append(block.text)
    return found


def section_text(path: Path, heading: str) -> str:
    """The lines of ``path`` under ``heading`` up to the next heading of its level or
    above, code blocks included."""
    level = len(heading.split(" ")[0])
    out: list[str] = []
    inside = False
    for _, line, in_code in _lines_outside_code(path):
        match = None if in_code else _HEADING.match(line)
        if match:
            if inside and len(match.group(1)) <= level:
                break
            if line.strip() == heading:
                inside = True
                continue
        if inside:
            out.append(line)
    return "\n".join(out)


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped, spaces
    to hyphens (letters, digits, ``-`` and ``_`` kept, Unicode included)."""
    text = _LINK_TEXT.sub(r"\1", text).replace("`", "").strip().lower()
    kept = []
    for char in text:
        if char in "-_ " or unicodedata.category(char)[0] in "LN":
            kept.append("-" if char == " " else char)
    return "".join(kept)


_LINK_TEXT = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def headings(path: Path) -> list[str]:
    """The anchors of ``path``'s headings, GitHub-style (a repeated one gets ``-1``, ...)."""
    seen: dict[str, int] = {}
    anchors: list[str] = []
    for _, line, in_code in _lines_outside_code(path):
        match = None if in_code else _HEADING.match(line)
        if not match:
            continue
        anchor = slug(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.append(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def links(path: Path) -> list[tuple[int, str]]:
    """The relative link targets of ``path`` (outside code), with their line numbers."""
    found: list[tuple[int, str]] = []
    for number, line, in_code in _lines_outside_code(path):
        if in_code:
            continue
        for match in _LINK.finditer(_INLINE_CODE.sub("``", line)):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto:
            found.append((number, target))
    return found
