"""The brain demo script, and checks of what its nodes produce."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from support.procs import Proc

REPO = Path(__file__).resolve().parents[2]
DEMO = "examples/secure_distributed_brain_demo.py"
DEMO_PATH = REPO / DEMO
DIGEST_LINE = re.compile(r"^raster digest: ([0-9a-f]{64})$", re.MULTILINE)

# Small enough for 2 shared cores, large enough that every region spikes and every
# projection carries messages.
STEPS, NEURONS, SEED = 25, 300, 11
# Seconds a node may take for the whole run, start-up and start barrier included.
NODE_TIMEOUT = 180
# The demo's flags for that run (every node gets the same).
RUN_FLAGS = {"--steps": str(STEPS), "--neurons": str(NEURONS), "--seed": str(SEED)}


def require_demo() -> None:
    if not DEMO_PATH.exists():
        pytest.fail(f"{DEMO} does not exist: docker-compose.yml and the image run it")


def expected_assignment(region_names: Sequence[str], node_ids: Sequence[str]) -> dict[str, str]:
    """The demo's contract: a node named after a region (``pfc`` or ``pfc-<k>``) runs it;
    the other regions, in declaration order, go round robin over the sorted ids."""
    nodes = sorted(set(node_ids))
    owner: dict[str, str] = {}
    for node in nodes:
        base = node.rsplit("-", 1)[0] if node.rsplit("-", 1)[-1].isdigit() else node
        for name in (node, base):
            if name in region_names and name not in owner:
                owner[name] = node
                break
    rest = [r for r in region_names if r not in owner]
    owner.update({r: nodes[i % len(nodes)] for i, r in enumerate(rest)})
    return owner


def check_results(
    out_dir: Path,
    procs: Mapping[str, Proc],
    *,
    steps: int = STEPS,
    neurons: int = NEURONS,
    seed: int = SEED,
) -> None:
    """Every node (``procs`` by node id) exited 0, printed the digest of its own regions and
    wrote ``<node-id>.json`` whose per-region digests equal a single-process simulation."""
    from evospikenet.brain import default_brain, raster_digest, simulate

    for node, proc in procs.items():
        assert proc.returncode == 0, f"node {node} failed\n{proc.output}"

    network = default_brain(neurons, seed)
    reference = simulate(network, steps)
    owner = expected_assignment(network.region_names, list(procs))
    seen: dict[str, str] = {}
    for node, proc in procs.items():
        result_file = out_dir / f"{node}.json"
        assert result_file.exists(), f"{node} wrote no {result_file.name}\n{proc.output}"
        result = json.loads(result_file.read_text())
        mine = sorted(r for r, n in owner.items() if n == node)
        assert result["node_id"] == node
        assert result["steps"] == steps
        assert sorted(result["regions"]) == mine, proc.output
        for region in mine:
            assert result["region_digests"][region] == raster_digest({region: reference[region]}), (
                f"{node}: region {region} differs from the single-process simulation"
            )
            seen[region] = node
        own = raster_digest({r: reference[r] for r in mine})
        printed = DIGEST_LINE.findall(proc.out)
        assert printed == [own], f"{node}: expected 'raster digest: {own}'\n{proc.output}"
        assert result["raster_digest"] == own
    assert sorted(seen) == sorted(network.region_names)
