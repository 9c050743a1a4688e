"""A brain model split into regions: populations of integer LIF neurons with their own
connectivity, joined by projections with a synaptic delay of at least one step.

Everything is deterministic: each region draws its connectivity and its external drive
from its own seeded random stream, and inputs are accumulated in a fixed order (internal
connections first, then projections in the order they were declared), in int32 with
int16 weights. A network therefore produces exactly the same spikes whether its regions
run in one process (:func:`simulate`) or spread over many (:class:`BrainNode`).

Step semantics, for region ``R`` at step ``t``::

    i = drive_R(t) + W_R^T s_R(t-1) + sum over projections P -> R of W_P^T s_src(P)(t - delay_P)
    s_R(t) = lif_step(v_R, i)          (spikes at t - d < 0 are empty)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from evospikenet import kernels

Spikes = NDArray[np.uint32]
#: Per region, the spike indices of every step.
Raster = dict[str, list[Spikes]]

_EMPTY: Spikes = np.zeros(0, dtype=np.uint32)


@dataclass(frozen=True)
class Region:
    """A population of ``n`` integer LIF neurons (EvoSpikeNet's ``LIFNeuronLayer``).

    Args:
        name: Unique name; also the topic chunk of its spikes (letters, digits, ``-_``).
        n: Number of neurons.
        fan_out: Internal synapses per neuron (random targets within the region).
        weight: Internal weights, int16, uniform in ``(low, high)`` inclusive.
        drive_rate: Probability per neuron and step of an external input kick.
        drive_weight: Size of that kick.
        leak, threshold, reset: LIF parameters (see :func:`evospikenet.kernels.lif_step`).
    """

    name: str
    n: int
    fan_out: int = 10
    weight: tuple[int, int] = (20, 120)
    drive_rate: float = 0.05
    drive_weight: int = 600
    leak: int = 230
    threshold: int = 1024
    reset: int = 0


@dataclass(frozen=True)
class Projection:
    """Synapses from every neuron of ``source`` to ``fan_out`` random neurons of
    ``target``, delivered ``delay`` steps later (at least 1: the time a spike needs to
    cross the network)."""

    source: str
    target: str
    fan_out: int = 10
    weight: tuple[int, int] = (20, 120)
    delay: int = 1


@dataclass(frozen=True)
class Network:
    """Regions and projections, plus the seed all randomness derives from."""

    regions: tuple[Region, ...]
    projections: tuple[Projection, ...] = ()
    seed: int = 0
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "projections", tuple(self.projections))
        index: dict[str, int] = {}
        for i, r in enumerate(self.regions):
            if not r.name or not all(c.isalnum() or c in "-_" for c in r.name):
                raise ValueError(f"region name {r.name!r}: use letters, digits, '-' and '_'")
            if r.name in index:
                raise ValueError(f"region name {r.name!r} is used twice")
            if r.n <= 0 or r.fan_out < 0:
                raise ValueError(f"region {r.name!r}: n must be > 0 and fan_out >= 0")
            index[r.name] = i
        for p in self.projections:
            for end in (p.source, p.target):
                if end not in index:
                    raise ValueError(f"projection {p.source}->{p.target}: no region {end!r}")
            if p.delay < 1:
                raise ValueError(f"projection {p.source}->{p.target}: delay must be >= 1 step")
            if p.fan_out < 0:
                raise ValueError(f"projection {p.source}->{p.target}: fan_out must be >= 0")
        object.__setattr__(self, "_index", index)

    def region(self, name: str) -> Region:
        """The region called ``name``; ``ValueError`` naming it if there is none."""
        try:
            return self.regions[self._index[name]]
        except KeyError:
            raise ValueError(f"no region {name!r} in this network") from None

    @property
    def region_names(self) -> list[str]:
        """The regions' names, in declaration order."""
        return [r.name for r in self.regions]

    def incoming(self, target: str) -> list[tuple[int, Projection]]:
        """The projections into ``target``, with their index, in declaration order."""
        return [(i, p) for i, p in enumerate(self.projections) if p.target == target]

    @property
    def max_delay(self) -> int:
        """The longest projection delay in steps (1 without projections)."""
        return max((p.delay for p in self.projections), default=1)


def default_brain(neurons: int = 1000, seed: int = 0) -> Network:
    """The demo's brain: visual -> pfc -> motor, with feedback from motor to pfc."""
    regions = tuple(Region(name, neurons) for name in ("visual", "pfc", "motor"))
    projections = (
        Projection("visual", "pfc", delay=1),
        Projection("pfc", "motor", delay=1),
        Projection("motor", "pfc", delay=2, weight=(10, 60)),
    )
    return Network(regions, projections, seed)


def _stream(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *tags])


class RegionState:
    """One region being simulated: its potentials, its connectivity, its drive."""

    def __init__(self, network: Network, name: str) -> None:
        self.region = r = network.region(name)
        idx = network.region_names.index(name)
        self.v = np.zeros(r.n, dtype=np.int16)
        self.internal = kernels.random_csr(
            r.n, r.n, r.fan_out, weight=r.weight, dtype=np.int16, seed=_seed(network.seed, 1, idx)
        )
        self.incoming: list[tuple[Projection, kernels.CsrMatrix]] = []
        for i, p in network.incoming(name):
            src = network.region(p.source)
            w = kernels.random_csr(
                src.n,
                r.n,
                p.fan_out,
                weight=p.weight,
                dtype=np.int16,
                seed=_seed(network.seed, 2, i),
            )
            self.incoming.append((p, w))
        self._drive = _stream(network.seed, 3, idx)
        self._i = np.zeros(r.n, dtype=np.int32)
        self._out = np.empty(r.n, dtype=np.uint32)
        self.last: Spikes = _EMPTY

    def step(self, inputs: Sequence[Spikes]) -> Spikes:
        """Advance one step. ``inputs[k]`` are the source spikes of ``self.incoming[k]``
        at ``t - delay`` (empty before step 0). Returns this step's spike indices."""
        r = self.region
        i = self._i
        i.fill(0)
        kicks = self._drive.random(r.n) < r.drive_rate
        i[kicks] = r.drive_weight
        kernels.propagate(self.last, self.internal, i)
        for (_, w), spikes in zip(self.incoming, inputs, strict=True):
            if len(spikes):
                kernels.propagate(spikes, w, i)
        out = kernels.lif_step_indices(
            self.v, i, leak=r.leak, threshold=r.threshold, reset=r.reset, out=self._out
        )
        self.last = out.copy()
        return self.last


def _seed(seed: int, kind: int, index: int) -> int:
    h = hashlib.sha256(f"{seed}/{kind}/{index}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def simulate(network: Network, steps: int, regions: Iterable[str] | None = None) -> Raster:
    """Run ``network`` for ``steps`` steps in this process; return the raster of
    ``regions`` (default: all)."""
    states = {name: RegionState(network, name) for name in network.region_names}
    history: dict[str, list[Spikes]] = {name: [] for name in network.region_names}
    for t in range(steps):
        step_spikes = {}
        for name, st in states.items():
            inputs = [
                history[p.source][t - p.delay] if t - p.delay >= 0 else _EMPTY
                for p, _ in st.incoming
            ]
            step_spikes[name] = st.step(inputs)
        for name, s in step_spikes.items():
            history[name].append(s)
    keep = list(regions) if regions is not None else network.region_names
    return {name: history[name] for name in keep}


def raster_digest(raster: Raster) -> str:
    """SHA-256 over every region's spikes, step by step (regions in name order): equal
    digests mean spike-for-spike equal rasters."""
    h = hashlib.sha256()
    for name in sorted(raster):
        h.update(name.encode() + b"\0")
        for t, s in enumerate(raster[name]):
            h.update(t.to_bytes(8, "little") + len(s).to_bytes(8, "little"))
            h.update(np.ascontiguousarray(s, dtype=np.uint32).tobytes())
    return h.hexdigest()
