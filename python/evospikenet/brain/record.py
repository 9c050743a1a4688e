"""Run records: each node's spikes (and probed potentials) in an ``.npz`` file, and the
merge of a run's files into one raster.

A record file holds, for every region ``R`` the node ran, ``R.indices`` (uint32, the
spikes of every step one after the other) and ``R.offsets`` (uint64, ``steps + 1``
offsets into them); for each probe ``k``, ``probe{k}.neurons`` and ``probe{k}.values``
(float32, one row per step); and ``meta``, a JSON string with the node id, the first
step, the region order and the probes' regions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evospikenet.brain.network import Raster, raster_from_record

FORMAT = "evospikenet-record/1"


@dataclass
class Probe:
    """The potentials of some neurons of one region, one row per step."""

    region: str
    neurons: NDArray[np.uint32]
    values: NDArray[np.float32]


@dataclass
class Record:
    """What one node recorded."""

    node_id: str
    raster: Raster
    first_step: int = 0
    probes: list[Probe] = field(default_factory=list)


def record_from_engine(node_id: str, taken: Mapping[str, Any]) -> Record:
    """A :class:`Record` from ``Engine.take_recording()``."""
    raster = {name: raster_from_record(*arrays) for name, arrays in taken["spikes"].items()}
    probes = [Probe(r, n, v) for r, n, v in taken["probes"]]
    return Record(node_id, raster, int(taken["first_step"]), probes)


def save_record(record: Record, path: str | Path) -> Path:
    """Write ``record`` to ``path`` (``.npz``)."""
    arrays: dict[str, np.ndarray] = {}
    for name, steps in record.raster.items():
        lengths = np.fromiter((len(s) for s in steps), dtype=np.uint64, count=len(steps))
        offsets = np.zeros(len(steps) + 1, dtype=np.uint64)
        np.cumsum(lengths, out=offsets[1:])
        arrays[f"{name}.indices"] = (
            np.concatenate(steps).astype(np.uint32) if steps else np.zeros(0, np.uint32)
        )
        arrays[f"{name}.offsets"] = offsets
    for k, p in enumerate(record.probes):
        arrays[f"probe{k}.neurons"] = np.asarray(p.neurons, dtype=np.uint32)
        arrays[f"probe{k}.values"] = np.asarray(p.values, dtype=np.float32)
    meta = {
        "format": FORMAT,
        "node_id": record.node_id,
        "first_step": record.first_step,
        "regions": list(record.raster),
        "probes": [p.region for p in record.probes],
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def load_record(path: str | Path) -> Record:
    """Read a file written by :func:`save_record`; ``ValueError`` names the file if it
    is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") == FORMAT:
                raster = {
                    name: raster_from_record(z[f"{name}.indices"], z[f"{name}.offsets"])
                    for name in meta["regions"]
                }
                probes = [
                    Probe(region, z[f"probe{k}.neurons"], z[f"probe{k}.values"])
                    for k, region in enumerate(meta["probes"])
                ]
    except (OSError, KeyError, ValueError, AttributeError, TypeError) as e:
        # np.load says ValueError for a file that is no .npz (it would need pickle).
        raise ValueError(f"{path}: not a readable run record ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a run record ({meta.get('format')!r})")
    return Record(meta["node_id"], raster, int(meta["first_step"]), probes)


def merge_records(paths: Iterable[str | Path] | Sequence[Record]) -> Raster:
    """One raster from the records of a run's nodes; ``ValueError`` if two files hold
    the same region or the records cover different steps."""
    merged: Raster = {}
    source: dict[str, str] = {}
    span: tuple[int, int] | None = None
    for item in paths:
        rec = item if isinstance(item, Record) else load_record(item)
        for name, steps in rec.raster.items():
            if name in merged:
                raise ValueError(
                    f"region {name!r} is in the records of both {source[name]!r} and "
                    f"{rec.node_id!r}"
                )
            this = (rec.first_step, len(steps))
            if span is not None and this != span:
                raise ValueError(
                    f"record of {rec.node_id!r} covers steps {this[0]}..{sum(this)}, "
                    f"another covers {span[0]}..{sum(span)}"
                )
            span = this
            merged[name] = steps
            source[name] = rec.node_id
    return merged
