"""Networks described in TOML files (see ``docs/network-files.md``).

::

    seed = 0

    [[regions]]
    name = "visual"
    n = 1000
    drive_rate = 0.05
    drive_weight = 600

    [[regions]]
    name = "pfc"
    n = 1000
    model = "izhikevich"
    params = { a = 0.02, d = 8.0 }
    fan_out = 10
    weight = [0.0, 1.5]

    [[projections]]
    source = "visual"
    target = "pfc"
    fan_out = 10            # or p = 0.01, or csr = { indptr = [...], indices = [...] }
    weight = [0.5, 2.0]     # a number, [low, high], or weights = [one per synapse]
    delay = 1

    [nodes]                 # optional: which node runs which regions
    node-a = ["visual"]
    node-b = ["pfc"]

Keys are the fields of :class:`~evospikenet.brain.Region` and
:class:`~evospikenet.brain.Projection`. Every error names the file, the line of the table
at fault when it can be found, the key, and what is wrong.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from evospikenet.brain.network import Network, Projection, Region

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib


class NetworkFileError(ValueError):
    """A network file that cannot be read or describes no valid network."""


@dataclass(frozen=True)
class NetworkFile:
    """A network read from a file, with the node table if the file has one."""

    path: Path
    network: Network
    #: node id -> the regions it runs, from ``[nodes]``; None without that table.
    nodes: dict[str, list[str]] | None


_REGION_KEYS = {f.name for f in fields(Region)}
_PROJECTION_KEYS = {f.name for f in fields(Projection)} | {"weights"}
_TOP_KEYS = {"seed", "regions", "projections", "nodes"}


def _table_lines(text: str, header: str) -> list[int]:
    """Line numbers (1-based) of every ``[[header]]`` table in ``text``."""
    pat = re.compile(rf"^\s*\[\[\s*{re.escape(header)}\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if pat.match(line)]


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.region_lines = _table_lines(text, "regions")
        self.projection_lines = _table_lines(text, "projections")
        m = re.search(r"^[ \t]*\[[ \t]*nodes[ \t]*\]", text, re.M)
        self.nodes_line = text[: m.start()].count("\n") + 1 if m else None

    def fail(self, where: str, msg: str, line: int | None = None) -> NetworkFileError:
        at = f"{self.path}:{line}" if line else str(self.path)
        return NetworkFileError(f"{at}: {where}: {msg}")

    def line_of(self, kind: str, i: int) -> int | None:
        lines = self.region_lines if kind == "regions" else self.projection_lines
        return lines[i] if i < len(lines) else None

    def check_keys(self, kind: str, i: int, table: Any, allowed: set[str]) -> dict[str, Any]:
        where = f"{kind}[{i}]"
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table ([[{kind}]])", self.line_of(kind, i))
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(
                where,
                f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
                self.line_of(kind, i),
            )
        return table

    def region(self, i: int, table: Any) -> Region:
        t = dict(self.check_keys("regions", i, table, _REGION_KEYS))
        for key in ("name", "n"):
            if key not in t:
                raise self.fail(f"regions[{i}]", f"missing key {key!r}", self.line_of("regions", i))
        if isinstance(t.get("weight"), list):
            t["weight"] = self.pair(f"regions[{i}]", t["weight"], self.line_of("regions", i))
        return self.build(Region, f"regions[{i}]", t, self.line_of("regions", i))

    def projection(self, i: int, table: Any) -> Projection:
        t = dict(self.check_keys("projections", i, table, _PROJECTION_KEYS))
        line = self.line_of("projections", i)
        where = f"projections[{i}]"
        for key in ("source", "target"):
            if key not in t:
                raise self.fail(where, f"missing key {key!r}", line)
        if "weights" in t:
            if "weight" in t:
                raise self.fail(where, "give 'weight' or 'weights', not both", line)
            t["weight"] = list(t.pop("weights"))
        elif isinstance(t.get("weight"), list):
            t["weight"] = self.pair(where, t["weight"], line)
        if "csr" in t:
            csr = t["csr"]
            if not isinstance(csr, dict) or set(csr) != {"indptr", "indices"}:
                expected = "expected { indptr = [...], indices = [...] }"
                raise self.fail(where, f"key 'csr': {expected}", line)
            t["csr"] = (csr["indptr"], csr["indices"])
        if "p" in t and "csr" in t:
            raise self.fail(where, "give one rule: 'p', 'csr' or 'fan_out'", line)
        return self.build(Projection, where, t, line)

    def pair(self, where: str, value: list, line: int | None) -> tuple[float, float]:
        if len(value) != 2:
            raise self.fail(
                where,
                f"key 'weight': expected a number or [low, high], got a list of {len(value)}"
                " (one weight per synapse goes in 'weights')",
                line,
            )
        return (value[0], value[1])

    def build(self, cls, where: str, t: dict[str, Any], line: int | None):
        for key, value in t.items():
            expected = _TYPES.get(key)
            if expected is not None and not _is(value, expected):
                raise self.fail(where, f"key {key!r}: expected {expected[1]}, got {value!r}", line)
        return cls(**t)


def _is(value: Any, expected: tuple[tuple[type, ...], str]) -> bool:
    types = expected[0]
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


_INT = ((int,), "an integer")
_NUM = ((int, float), "a number")
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "source": ((str,), "a string"),
    "target": ((str,), "a string"),
    "model": ((str,), "a string"),
    "n": _INT,
    "fan_out": _INT,
    "delay": _INT,
    "leak": _INT,
    "threshold": _INT,
    "reset": _INT,
    "drive_rate": _NUM,
    "drive_weight": _NUM,
    "p": _NUM,
    "params": ((dict,), "a table of numbers"),
    "weight": ((int, float, tuple, list), "a number, [low, high] or an array"),
}


def load_network(path: str | Path) -> NetworkFile:
    """Read a network file; :class:`NetworkFileError` (a ``ValueError``) says what is wrong
    and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise NetworkFileError(f"{path}: cannot read the network file ({e.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise NetworkFileError(f"{path}: not valid TOML: {e}") from None
    r = _Reader(path, text)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise r.fail(f"key {unknown[0]!r}", f"unknown (known: {', '.join(sorted(_TOP_KEYS))})")
    regions_raw = doc.get("regions")
    if not isinstance(regions_raw, list) or not regions_raw:
        raise r.fail("regions", "the file needs at least one [[regions]] table")
    regions = [r.region(i, t) for i, t in enumerate(regions_raw)]
    projections_raw = doc.get("projections", [])
    if not isinstance(projections_raw, list):
        raise r.fail("projections", "expected [[projections]] tables")
    projections = [r.projection(i, t) for i, t in enumerate(projections_raw)]
    seed = doc.get("seed", 0)
    if not _is(seed, _INT):
        raise r.fail("seed", f"expected an integer, got {seed!r}")
    try:
        network = Network(tuple(regions), tuple(projections), seed)
    except ValueError as e:
        raise r.fail(*_locate(r, regions, projections, str(e))) from None
    nodes = _nodes(r, doc.get("nodes"), network)
    return NetworkFile(path, network, nodes)


def _locate(r: _Reader, regions, projections, msg: str) -> tuple[str, str, int | None]:
    """The table a validation message is about: ``(where, msg, line)``."""
    for i, p in enumerate(projections):
        if f"projection {p.source}->{p.target}" in msg:
            return f"projections[{i}]", msg, r.line_of("projections", i)
    for i, reg in enumerate(regions):
        if f"region {reg.name!r}" in msg or f'region "{reg.name}"' in msg:
            return f"regions[{i}]", msg, r.line_of("regions", i)
    return "network", msg, None


def _nodes(r: _Reader, table: Any, network: Network) -> dict[str, list[str]] | None:
    if table is None:
        return None
    if not isinstance(table, dict) or not table:
        raise r.fail("nodes", "expected a table of node id = [region names]", r.nodes_line)
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for node, regions in table.items():
        if not isinstance(regions, list) or not all(isinstance(x, str) for x in regions):
            raise r.fail(f"nodes.{node}", "expected a list of region names", r.nodes_line)
        for name in regions:
            if name not in network.region_names:
                raise r.fail(f"nodes.{node}", f"no region {name!r} in this network", r.nodes_line)
            if name in owner:
                raise r.fail(
                    f"nodes.{node}", f"region {name!r} is also run by {owner[name]!r}", r.nodes_line
                )
            owner[name] = node
        out[node] = list(regions)
    missing = [n for n in network.region_names if n not in owner]
    if missing:
        raise r.fail("nodes", f"no node runs region(s) {', '.join(missing)}", r.nodes_line)
    return out
