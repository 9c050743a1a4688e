"""Finding key material in files: a PSK as hex, base64 or raw bytes, identity keys as hex.

Used by ``evospikenet audit`` on log files (``--logs``) and on source or configuration
files (``--scan``). Hits name the file and line, never the key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_HITS = 20
"""Stop after this many hits: one is enough to fail, and the report stays readable."""


@dataclass(frozen=True)
class Needle:
    """One form of a secret to look for."""

    what: str
    """What it is, as the report names it: ``"PSK (hex)"``."""
    data: bytes
    ignore_case: bool = False


@dataclass(frozen=True)
class Hit:
    """Where a needle was found."""

    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def psk_needles(psk_hex: str) -> list[Needle]:
    """The PSK as hex (any case), standard and URL-safe base64 (padding stripped, so it
    is found inside longer base64 too when aligned), and raw bytes."""
    raw = bytes.fromhex(psk_hex.strip())
    b64 = base64.b64encode(raw).rstrip(b"=")
    b64url = base64.urlsafe_b64encode(raw).rstrip(b"=")
    needles = [
        Needle("PSK (hex)", psk_hex.strip().lower().encode(), ignore_case=True),
        Needle("PSK (base64)", b64),
        Needle("PSK (raw bytes)", raw),
    ]
    if b64url != b64:
        needles.append(Needle("PSK (base64url)", b64url))
    return needles


def identity_needles(identity_hex: str) -> list[Needle]:
    """A secret identity key as hex (any case)."""
    return [Needle("identity key (hex)", identity_hex.strip().lower().encode(), ignore_case=True)]


def files_under(paths: Iterable[str]) -> Iterator[Path]:
    """The files named, and every file under the folders named (symlinks not followed)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, _dirs, names in os.walk(path):
                for name in sorted(names):
                    f = Path(root) / name
                    if f.is_file() and not f.is_symlink():
                        yield f
        else:
            yield path


CHUNK = 1 << 20
"""Files are read in chunks of this size, so a large log costs no more memory than this."""


def scan(paths: Iterable[str], needles: list[Needle]) -> tuple[list[Hit], list[str]]:
    """Every (file, line) holding a needle, and the paths that could not be read.

    Files are searched as bytes, not line by line: a raw key may contain a newline byte,
    and is found across it (the hit names the line it starts on).
    """
    hits: list[Hit] = []
    unreadable: list[str] = []
    for path in files_under(paths):
        try:
            for line, what in _hits_in(path, needles):
                hits.append(Hit(str(path), line, what))
                if len(hits) >= MAX_HITS:
                    return hits, unreadable
        except OSError as e:
            unreadable.append(f"{path}: {e.strerror or e}")
    return hits, unreadable


def _hits_in(path: Path, needles: list[Needle]) -> Iterator[tuple[int, str]]:
    """(line, what) of every needle in the file, each once, in file order per chunk."""
    keep = max((len(n.data) for n in needles), default=1) - 1
    seen: set[tuple[int, str]] = set()
    tail, tail_line = b"", 1  # the end of what was read, and the line it starts on
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            data = tail + chunk
            lowered = data.lower()
            for n in needles:
                hay = lowered if n.ignore_case else data
                start = hay.find(n.data)
                while start != -1:
                    # Found in an earlier round if it ends inside the kept tail.
                    if start + len(n.data) > len(tail):
                        hit = (tail_line + data.count(b"\n", 0, start), n.what)
                        if hit not in seen:
                            seen.add(hit)
                            yield hit
                    start = hay.find(n.data, start + 1)
            cut = max(len(data) - keep, 0)
            tail_line += data.count(b"\n", 0, cut)
            tail = data[cut:]
