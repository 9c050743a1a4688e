"""The fenced code blocks of the README and docs/, with the markers that say how each is
checked.

A marker is an HTML comment (invisible on a forge, visible in the source) on the line
just above a block's opening fence:

- ``<!-- file: examples/x.py -->`` above a ``python`` block: the block is that file,
  verbatim; a test runs the file (two-process examples).
- ``<!-- not-run: reason -->`` above a ``python`` block: shown but not executed (rare:
  the reason says why).
- ``<!-- output -->`` above a ``text`` block: what the ``python`` block before it prints.
- ``<!-- output: examples/x.py ARGS -->`` above a ``text`` block: what that example prints
  when run with ARGS, as the test that runs it checks.

Every other ``python`` block runs on its own (tests/test_docs.py). In expected output,
``...`` stands for any text within a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!--\s*([a-z-]+)(?::\s*(.*?))?\s*-->$")
FENCE = re.compile(r"^(```+)\s*([\w-]*)\s*$")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None = None  # "file", "not-run", "output"
    argument: str | None = None  # what follows the marker's colon

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order, each with the marker just above it."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        block = Block(path, start + 1, lang, "\n".join(lines[start + 1 : j]) + "\n")
        above = lines[start - 1].strip() if start > 0 else ""
        if mk := MARKER.match(above):
            block.marker, block.argument = mk.group(1), mk.group(2)
        found.append(block)
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks(path)]


def output_block(example: str) -> Block:
    """The documented output of ``example`` (``examples/x.py`` plus its arguments, as
    written in the ``<!-- output: ... -->`` marker)."""
    matches = [b for b in all_blocks() if b.marker == "output" and b.argument == example]
    assert len(matches) == 1, f"expected one output block for {example!r}, found {len(matches)}"
    return matches[0]


def matches_output(expected: str, actual: str) -> bool:
    """Whether ``actual`` has exactly the lines of ``expected``, where ``...`` in an
    expected line stands for any text within that line."""
    want = expected.strip("\n").splitlines()
    got = actual.strip("\n").splitlines()
    if len(want) != len(got):
        return False
    for w, g in zip(want, got, strict=True):
        pattern = ".*?".join(re.escape(part) for part in w.rstrip().split("..."))
        if not re.fullmatch(pattern, g.rstrip()):
            return False
    return True
