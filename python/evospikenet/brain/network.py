"""A brain model split into regions joined by projections, simulated by the Rust engine.

A :class:`Region` is a population of one neuron model (integer LIF, bit-exact with
EvoSpikeNet's ``LIFNeuronLayer``; float LIF as NEST's ``iaf_psc_exp``; or Izhikevich)
with an external drive and, optionally, recurrent connections of its own. A
:class:`Projection` connects two regions with a rule (fixed fan-out, fixed probability,
or explicit CSR arrays), weights (constant, uniform, or one per synapse) and a delay of
at least one step. :meth:`Network.description` is what the engine
(``evospikenet._native.Engine``) is built from.

Everything is deterministic: the drive of region ``r`` at step ``t`` and the synapses of
each projection are drawn from counter-based random streams keyed by the seed and their
position, and inputs are accumulated in a fixed order (the drive, the regions' own
connections, then the projections in the order they were declared). A network therefore
produces exactly the same spikes whether its regions run in one process
(:func:`simulate`) or spread over many (:class:`~evospikenet.brain.BrainNode`).

Step semantics, for region ``R`` at step ``t``::

    i = drive_R(t) + W_R^T s_R(t-1) + sum over projections P -> R of W_P^T s_src(P)(t - delay_P)
    s_R(t) = model_step(state_R, i)        (spikes at t - d < 0 are empty)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evospikenet import _native

Spikes = NDArray[np.uint32]
#: Per region, the spike indices of every step.
Raster = dict[str, list[Spikes]]

#: The neuron models a region can use.
MODELS = ("lif_int", "lif_float", "izhikevich")

#: A weight: a constant, ``(low, high)`` for uniform weights, or one per synapse.
Weight = float | tuple[float, float] | Sequence[float] | NDArray[Any]


def model_defaults() -> dict[str, dict[str, float]]:
    """Each model's default parameters, as the engine uses them."""
    return _native.engine_model_defaults()


@dataclass(frozen=True)
class Region:
    """A population of ``n`` neurons of one model.

    Args:
        name: Unique name; also the topic chunk of its spikes (letters, digits, ``-_``).
        n: Number of neurons.
        fan_out: Recurrent synapses per neuron (random targets within the region,
            delay 1); 0 for none.
        weight: Recurrent weights: a constant or ``(low, high)`` uniform (inclusive
            integers for integer LIF).
        drive_rate: Probability per neuron and step of an external input kick.
        drive_weight: Size of that kick (an integer for integer LIF).
        leak, threshold, reset: Integer LIF parameters (see
            :func:`evospikenet.kernels.lif_step`), used when ``model`` is ``"lif_int"``.
        model: ``"lif_int"``, ``"lif_float"`` or ``"izhikevich"``.
        params: The model's parameters other than the defaults (:func:`model_defaults`
            lists them), for ``"lif_float"`` and ``"izhikevich"``.
    """

    name: str
    n: int
    fan_out: int = 10
    weight: Weight = (20, 120)
    drive_rate: float = 0.05
    drive_weight: float = 600
    leak: int = 230
    threshold: int = 1024
    reset: int = 0
    model: str = "lif_int"
    params: Mapping[str, float] = field(default_factory=dict)

    def model_spec(self) -> dict[str, Any]:
        """The engine's description of this region's model."""
        if self.model == "lif_int":
            if self.params:
                raise ValueError(
                    f"region {self.name!r}: lif_int takes leak, threshold and reset as "
                    f"fields, not params {sorted(self.params)}"
                )
            return {
                "kind": "lif_int",
                "leak": self.leak,
                "threshold": self.threshold,
                "reset": self.reset,
            }
        if self.model not in MODELS:
            raise ValueError(
                f"region {self.name!r}: model {self.model!r} is not one of {', '.join(MODELS)}"
            )
        known = model_defaults()[self.model]
        unknown = sorted(set(self.params) - set(known))
        if unknown:
            raise ValueError(
                f"region {self.name!r}: {self.model} has no parameter {unknown[0]!r} "
                f"(it has {', '.join(sorted(known))})"
            )
        return {"kind": self.model, **{k: float(v) for k, v in self.params.items()}}


@dataclass(frozen=True)
class Projection:
    """Synapses from ``source`` to ``target``, delivered ``delay`` steps later (at least
    1: the time a spike needs to cross the network).

    The rule is fixed fan-out (``fan_out`` random targets per source neuron) unless
    ``p`` is given (every pair connected with probability ``p``) or ``csr`` is (explicit
    ``(indptr, indices)`` arrays of shape ``(source n, target n)``).
    """

    source: str
    target: str
    fan_out: int = 10
    weight: Weight = (20, 120)
    delay: int = 1
    p: float | None = None
    csr: tuple[Sequence[int], Sequence[int]] | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """``"source->target"``: how errors and records name this projection."""
        return f"{self.source}->{self.target}"

    def rule_spec(self) -> dict[str, Any]:
        """The engine's description of the connection rule."""
        if self.csr is not None:
            indptr, indices = self.csr
            return {
                "kind": "csr",
                "indptr": [int(x) for x in np.asarray(indptr).ravel()],
                "indices": [int(x) for x in np.asarray(indices).ravel()],
            }
        if self.p is not None:
            return {"kind": "fixed_probability", "p": float(self.p)}
        return {"kind": "fixed_fan_out", "fan_out": int(self.fan_out)}


def weight_spec(weight: Weight, what: str) -> dict[str, Any]:
    """The engine's description of a weight (see :data:`Weight`)."""
    if isinstance(weight, tuple) and len(weight) == 2:
        return {"kind": "uniform", "low": float(weight[0]), "high": float(weight[1])}
    if isinstance(weight, (int, float, np.integer, np.floating)):
        return {"kind": "constant", "value": float(weight)}
    try:
        values = np.asarray(weight, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: weight must be a number, (low, high) or an array, got {weight!r}"
        ) from None
    return {"kind": "array", "values": values.tolist()}


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
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {self.seed}")
        object.__setattr__(self, "_index", index)
        # Everything else (model parameters, weights, rules) is checked by the engine,
        # without building anything.
        _native.engine_validate(self.description())

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

    def spec(self) -> dict[str, Any]:
        """The engine's description: the regions' own connections come first (delay 1),
        then the projections in declaration order."""
        regions = [
            {
                "name": r.name,
                "n": r.n,
                "model": r.model_spec(),
                "drive": {"rate": float(r.drive_rate), "weight": float(r.drive_weight)},
            }
            for r in self.regions
        ]
        projections = [
            {
                "source": r.name,
                "target": r.name,
                "rule": {"kind": "fixed_fan_out", "fan_out": r.fan_out},
                "weights": weight_spec(r.weight, f"region {r.name!r}"),
                "delay": 1,
            }
            for r in self.regions
            if r.fan_out > 0
        ]
        projections += [
            {
                "source": p.source,
                "target": p.target,
                "rule": p.rule_spec(),
                "weights": weight_spec(p.weight, f"projection {p.name}"),
                "delay": p.delay,
            }
            for p in self.projections
        ]
        return {"seed": self.seed, "regions": regions, "projections": projections}

    def description(self) -> str:
        """:meth:`spec` as the JSON the engine reads."""
        return json.dumps(self.spec(), allow_nan=False)

    def engine(self, local: Iterable[str] | None = None) -> _native.Engine:
        """An engine running ``local`` (default: every region), synapses built."""
        return _native.Engine(self.description(), None if local is None else list(local))


def default_brain(neurons: int = 1000, seed: int = 0) -> Network:
    """The demo's brain: visual -> pfc -> motor, with feedback from motor to pfc."""
    regions = tuple(Region(name, neurons) for name in ("visual", "pfc", "motor"))
    projections = (
        Projection("visual", "pfc", delay=1),
        Projection("pfc", "motor", delay=1),
        Projection("motor", "pfc", delay=2, weight=(10, 60)),
    )
    return Network(regions, projections, seed)


def raster_from_record(indices: NDArray[np.uint32], offsets: NDArray[np.uint64]) -> list[Spikes]:
    """The per-step spike arrays of a flat record (``indices`` cut at ``offsets``)."""
    return np.split(indices, offsets[1:-1].astype(np.intp)) if len(offsets) > 1 else []


def simulate(
    network: Network,
    steps: int,
    regions: Iterable[str] | None = None,
    *,
    progress: Callable[[int], Any] | None = None,
    progress_every: float = 1.0,
) -> Raster:
    """Run ``network`` for ``steps`` steps in this process; return the raster of
    ``regions`` (default: all).

    The whole run is one call into the engine, with the GIL released; ``progress``
    is called with the number of steps done at most every ``progress_every`` seconds,
    and Ctrl-C stops the run within about 0.1 s (``KeyboardInterrupt``)."""
    keep = list(regions) if regions is not None else network.region_names
    for name in keep:
        network.region(name)
    engine = network.engine()
    engine.start_recording()
    engine.run(steps, progress, progress_every)
    rec = engine.take_recording()
    assert rec is not None
    return {name: raster_from_record(*rec["spikes"][name]) for name in keep}


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
