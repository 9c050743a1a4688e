"""Vectorized spike-update kernels, in place on numpy arrays.

Each model has one step function (:func:`lif_step`, :func:`lif_float_step`,
:func:`izhikevich_step`) that advances a population by one time step, updating its
state arrays in place, and returns the neurons that spiked in the form its ``spikes``
argument names:

- ``spikes="mask"`` (the default): a bool mask, one entry per neuron;
  ``mask.view(np.int8)`` reads it as 0/1 bytes without a copy. ``out``, if given, is a
  bool array of ``len(v)`` that receives the mask and is returned.
- ``spikes="indices"``: the sorted ``uint32`` indices of the neurons that spiked, the
  compact form sent to other nodes and the input of :func:`propagate`. No
  population-sized mask is written to memory on the way. ``out``, if given, is a uint32
  buffer of at least ``len(v)`` entries that receives the indices; the result is then
  ``out[:k]``.

Any other ``spikes`` raises ``ValueError``. An ``out`` reused across steps saves an
allocation per step.

The kernels never copy or convert state: arrays must be 1-D, contiguous, aligned,
writeable where they are updated, and of the documented dtype. Anything else raises
``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong length, layout,
writability, overlap between arguments, values), naming the argument, before any array
is modified. The GIL is released while a kernel
runs, so other Python threads go on meanwhile.

Threads: ``threads=None`` runs on one thread below :data:`PARALLEL_MIN_LEN` neurons
(about four million) and on all threads of the kernel pool above: on a 2-core machine
a second thread only pays for populations that large, and only while the other core
is free. ``threads=k`` uses up to ``k`` threads; results are identical for any value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from evospikenet import _native

__all__ = [
    "PARALLEL_MIN_LEN",
    "CsrMatrix",
    "IzhikevichParams",
    "LifFloatParams",
    "default_threads",
    "indices_to_spikes",
    "izhikevich_step",
    "lif_float_step",
    "lif_step",
    "lif_step_indices",
    "propagate",
    "random_csr",
    "spikes_to_indices",
]

#: Population size from which ``threads=None`` uses every thread of the kernel pool.
PARALLEL_MIN_LEN: int = _native.KERNEL_PARALLEL_MIN_LEN

#: A per-neuron float parameter: one value for all neurons, or a float32 array.
FloatParam = float | NDArray[np.float32]

#: The forms a step function returns spikes in: its ``spikes`` argument.
SpikeForm = Literal["mask", "indices"]

#: A step's spikes: the bool mask, or the sorted uint32 indices.
Spikes = NDArray[np.bool_] | NDArray[np.uint32]

# The models' default parameters, as the Rust core defines them (written only there).
_DEFAULTS = _native.kernel_defaults()
_LIF_INT = _DEFAULTS["lif_int"]
_LIF_FLOAT = _DEFAULTS["lif_float"]
_IZHIKEVICH = _DEFAULTS["izhikevich"]


def default_threads(n: int) -> int:
    """Return the number of threads ``threads=None`` uses for ``n`` neurons."""
    return _native.kernel_default_threads(n)


# --- integer LIF -------------------------------------------------------------------


def lif_step(
    v: NDArray[np.int16],
    i_syn: NDArray[np.int16] | NDArray[np.int32],
    *,
    leak: int = _LIF_INT["leak"],
    threshold: int = _LIF_INT["threshold"],
    reset: int = _LIF_INT["reset"],
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Advance integer LIF neurons by one step, in place; return the spikes.

    The semantics of EvoSpikeNet's ``LIFNeuronLayer``, bit for bit, in int32::

        v = clip((v * leak) // 256 + i_syn, -32768, 32767)   # floor division
        spike = v >= threshold
        v[spike] = reset

    Args:
        v: Membrane potentials, int16, updated in place.
        i_syn: Input currents, int16 or int32, one per neuron; read only. int32 inputs
            are added with saturation, which equals the exact sum after the int16
            clip.
        leak: Potential kept per step, in 1/256 (230 keeps ~90%); an int16. Leaks in
            ``[0, 256]`` take a faster 16-bit path with identical results.
        threshold: Spike threshold, an int16.
        reset: Potential after a spike, an int16.
        spikes: ``"mask"`` for the bool spike mask, ``"indices"`` for the sorted uint32
            indices of the neurons that spiked (see the module documentation).
        out: Optional array to write the spikes into, reused across steps: a bool
            array of ``len(v)`` for a mask, a uint32 buffer of at least ``len(v)``
            entries for indices (the result is then ``out[:k]``).
        threads: Number of threads, or None for the default (see module docs).

    Returns:
        The spikes in the form ``spikes`` names (in ``out`` when given).
    """
    return _native.kernel_lif_int_step(
        v, i_syn, leak, threshold, reset, spikes=spikes, out=out, threads=threads
    )


def lif_step_indices(
    v: NDArray[np.int16], i_syn: NDArray[Any], **kwargs: Any
) -> NDArray[np.uint32]:
    """``lif_step(v, i_syn, spikes="indices", **kwargs)``, under its earlier name.

    Kept for the callers that use it; new code passes ``spikes="indices"`` to
    :func:`lif_step`, which documents the other arguments.
    """
    return lif_step(v, i_syn, spikes="indices", **kwargs)


# --- float LIF (iaf_psc_exp) ----------------------------------------------------------


@dataclass(frozen=True)
class LifFloatParams:
    """Parameters of the current-based LIF neuron, in NEST's units (ms, mV, pF, pA).

    The defaults are those of NEST's ``iaf_psc_exp`` at a 0.1 ms resolution. There is
    one synaptic current with one time constant (NEST's model with equal excitatory and
    inhibitory time constants); inhibitory input is negative current.

    Attributes:
        tau_m: Membrane time constant (ms), > 0.
        tau_syn: Synaptic current time constant (ms), > 0.
        c_m: Membrane capacitance (pF), > 0.
        dt: Step length (ms), > 0.
        e_l: Resting potential (mV).
        v_th: Spike threshold (mV).
        v_reset: Potential after a spike and while refractory (mV), below ``v_th``.
        t_ref: Refractory period (ms), >= 0; rounded to whole steps as NEST does.
        i_e: Constant input current (pA).
    """

    tau_m: float = _LIF_FLOAT["tau_m"]
    tau_syn: float = _LIF_FLOAT["tau_syn"]
    c_m: float = _LIF_FLOAT["c_m"]
    dt: float = _LIF_FLOAT["dt"]
    e_l: float = _LIF_FLOAT["e_l"]
    v_th: float = _LIF_FLOAT["v_th"]
    v_reset: float = _LIF_FLOAT["v_reset"]
    t_ref: float = _LIF_FLOAT["t_ref"]
    i_e: float = _LIF_FLOAT["i_e"]


_LIF_FLOAT_DEFAULTS = LifFloatParams()


def lif_float_step(
    v: NDArray[np.float32],
    i_syn: NDArray[np.float32],
    refractory: NDArray[np.int32],
    i_in: FloatParam | None = None,
    params: LifFloatParams = _LIF_FLOAT_DEFAULTS,
    *,
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Advance current-based LIF neurons by one step, in place; return the spikes.

    Exact integration as NEST's ``iaf_psc_exp``, in NEST's order, with propagators
    ``P22 = exp(-dt/tau_m)``, ``P11 = exp(-dt/tau_syn)``, ``P21`` (synaptic current to
    potential) and ``P20 = tau_m/c_m * (1 - P22)`` computed in float64::

        if refractory <= 0: v = e_l + ((v - e_l) * P22 + i_syn * P21 + i_e * P20)
        else:               refractory -= 1
        i_syn = i_syn * P11 + i_in
        spike = v >= v_th; where spike: v = v_reset, refractory = round(t_ref / dt)

    Input arriving in this step (``i_in``) moves the potential from the next step on,
    as a spike delivered to NEST at step t does.

    Args:
        v: Membrane potentials (mV), float32, updated in place.
        i_syn: Synaptic currents (pA), float32, updated in place.
        refractory: Remaining refractory steps, int32, updated in place; 0 or less
            means not refractory.
        i_in: Input current arriving this step (pA): a float32 array (e.g. the target
            of :func:`propagate`, cleared by the caller after the step), a scalar, or
            None for no input.
        params: Neuron parameters.
        spikes: ``"mask"`` or ``"indices"``; it, ``out``, ``threads`` and the result are
            as in :func:`lif_step`.
    """
    return _native.kernel_lif_float_step(
        v, i_syn, refractory, i_in, params, spikes=spikes, out=out, threads=threads
    )


# --- Izhikevich ------------------------------------------------------------------------


@dataclass(frozen=True)
class IzhikevichParams:
    """Parameters of the Izhikevich neuron; the defaults are regular spiking.

    Each of ``a``, ``b``, ``c``, ``d`` is a scalar or a float32 array with one value
    per neuron (Izhikevich 2003 draws them per neuron).

    Attributes:
        a: Time scale of the recovery variable ``u``.
        b: Sensitivity of ``u`` to the potential.
        c: Potential after a spike (mV).
        d: Increment of ``u`` at a spike.
        dt: Step length (ms), > 0.
        v_peak: Spike cut-off (mV).
    """

    a: FloatParam = _IZHIKEVICH["a"]
    b: FloatParam = _IZHIKEVICH["b"]
    c: FloatParam = _IZHIKEVICH["c"]
    d: FloatParam = _IZHIKEVICH["d"]
    dt: float = _IZHIKEVICH["dt"]
    v_peak: float = _IZHIKEVICH["v_peak"]


_IZHIKEVICH_DEFAULTS = IzhikevichParams()


def izhikevich_step(
    v: NDArray[np.float32],
    u: NDArray[np.float32],
    i_in: FloatParam,
    params: IzhikevichParams = _IZHIKEVICH_DEFAULTS,
    *,
    spikes: SpikeForm = "mask",
    out: Spikes | None = None,
    threads: int | None = None,
) -> Spikes:
    """Advance Izhikevich neurons by one step, in place; return the spikes.

    Forward Euler with both derivatives taken at the start of the step, in float32 and
    in this order of operations::

        dv = 0.04 * v * v + 5 * v + 140 - u + i_in
        du = a * (b * v - u)
        v, u = v + dt * dv, u + dt * du
        spike = v >= v_peak; where spike: v = c, u = u + d

    Args:
        v: Membrane potentials (mV), float32, updated in place.
        u: Recovery variables, float32, updated in place.
        i_in: Input current: a float32 array or a scalar.
        params: Neuron parameters (scalars or per-neuron float32 arrays).
        spikes: ``"mask"`` or ``"indices"``; it, ``out``, ``threads`` and the result are
            as in :func:`lif_step`.
    """
    return _native.kernel_izhikevich_step(
        v, u, i_in, params, spikes=spikes, out=out, threads=threads
    )


# --- spikes -----------------------------------------------------------------------------


def spikes_to_indices(mask: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Return the sorted uint32 indices of the set entries of a bool spike mask."""
    return _native.kernel_spikes_to_indices(mask)


def indices_to_spikes(
    indices: NDArray[np.uint32], n: int, *, out: NDArray[np.bool_] | None = None
) -> NDArray[np.bool_]:
    """Return the bool mask of ``n`` neurons with the listed ``indices`` set.

    ``indices`` may be unsorted and repeat. An index ``>= n`` raises ``ValueError``
    before ``out`` is touched.

    Args:
        indices: uint32 spike indices.
        n: Population size (``len(out)`` when ``out`` is given).
        out: Optional bool array of length ``n`` to fill; cleared first.
    """
    if out is None:
        out = np.empty(n, dtype=np.bool_)
    elif len(out) != n:
        raise ValueError(f"out: expected length {n}, got {len(out)}")
    _native.kernel_indices_to_spikes(indices, out)
    return out


# --- synapses ---------------------------------------------------------------------------


class CsrLike(Protocol):
    """Anything with scipy.sparse's CSR attributes (a ``csr_array``/``csr_matrix``)."""

    @property
    def indptr(self) -> NDArray[Any]: ...
    @property
    def indices(self) -> NDArray[Any]: ...
    @property
    def data(self) -> NDArray[Any]: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


@dataclass(frozen=True, eq=False)
class CsrMatrix:
    """A synaptic weight matrix in CSR layout, shape ``(n_pre, n_post)``.

    Row ``i`` holds the outgoing synapses of presynaptic neuron ``i``: targets
    ``indices[indptr[i]:indptr[i+1]]`` with weights at the same positions of ``data``,
    exactly scipy.sparse's layout (:meth:`from_scipy` and :meth:`to_scipy` convert
    without copying). The whole structure is validated on construction (``O(nnz)``, once);
    :func:`propagate` then checks only the rows it uses.

    Attributes:
        indptr: int32 or int64, ``n_pre + 1`` entries, starting at 0, non-decreasing.
        indices: Postsynaptic neuron of each synapse, same dtype as ``indptr``, each in
            ``[0, n_post)``.
        data: Weights: int16 (for int16 or int32 inputs), int32 (for int32 inputs) or
            float32 (for float32 inputs).
        shape: ``(n_pre, n_post)``.
    """

    indptr: NDArray[np.int32] | NDArray[np.int64]
    indices: NDArray[np.int32] | NDArray[np.int64]
    data: NDArray[np.int16] | NDArray[np.int32] | NDArray[np.float32]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        """Validate the structure; raise TypeError or ValueError naming the field."""
        shape = tuple(int(x) for x in self.shape)
        if len(shape) != 2:
            raise ValueError(f"shape: expected (n_pre, n_post), got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        _native.kernel_validate_csr(self)

    @property
    def nnz(self) -> int:
        """Number of synapses."""
        return int(self.indptr[-1])

    @classmethod
    def from_scipy(cls, m: CsrLike) -> CsrMatrix:
        """Wrap a scipy.sparse CSR matrix or array (sharing its arrays) and validate it."""
        if getattr(m, "format", "csr") != "csr":
            raise TypeError(f"expected a CSR matrix, got format {m.format!r}")  # type: ignore[attr-defined]
        return cls(m.indptr, m.indices, m.data, (int(m.shape[0]), int(m.shape[1])))

    def to_scipy(self) -> Any:
        """Return a ``scipy.sparse.csr_array`` sharing these arrays (needs scipy)."""
        from scipy import sparse

        return sparse.csr_array(
            (self.data, self.indices, self.indptr), shape=self.shape, copy=False
        )


def random_csr(
    n_pre: int,
    n_post: int,
    fan_out: int,
    *,
    weight: float | tuple[float, float] = 1.0,
    dtype: type[np.generic] | np.dtype[Any] = np.float32,
    seed: int | None = None,
    index_dtype: type[np.generic] | np.dtype[Any] = np.int32,
) -> CsrMatrix:
    """Build random connectivity with a fixed out-degree, reproducibly from ``seed``.

    Every presynaptic neuron gets ``fan_out`` targets drawn uniformly from ``n_post``
    neurons (with replacement, so a pair may be connected more than once, as NEST's
    ``fixed_outdegree`` with multapses); the targets of each row are sorted, which
    keeps the scatter of :func:`propagate` moving forward through memory.

    Args:
        n_pre: Number of presynaptic neurons (rows).
        n_post: Number of postsynaptic neurons (columns).
        fan_out: Synapses per presynaptic neuron.
        weight: A constant weight, or ``(low, high)`` for weights uniform in that range
            (inclusive integers for integer dtypes).
        dtype: Weight dtype: float32, int16 or int32.
        seed: Seed of ``numpy.random.default_rng``.
        index_dtype: int32 (scipy's usual) or int64, for ``indptr`` and ``indices``.

    Returns:
        The validated matrix, shape ``(n_pre, n_post)``.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.int16), np.dtype(np.int32)):
        raise TypeError(f"dtype: expected float32, int16 or int32, got {dt}")
    ix = np.dtype(index_dtype)
    if ix not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise TypeError(f"index_dtype: expected int32 or int64, got {ix}")
    if n_pre < 0 or n_post < 0 or fan_out < 0:
        raise ValueError("n_pre, n_post and fan_out must be >= 0")
    if fan_out > 0 and n_post == 0:
        raise ValueError("fan_out: must be 0 when n_post is 0")
    nnz = n_pre * fan_out
    if nnz > np.iinfo(ix).max or n_post > np.iinfo(ix).max:
        raise ValueError(f"index_dtype: {ix} cannot index {nnz} synapses of {n_post} targets")
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, max(n_post, 1), size=(n_pre, fan_out), dtype=ix)
    cols.sort(axis=1)
    if isinstance(weight, tuple):
        low, high = weight
        if dt.kind == "f":
            data = rng.uniform(low, high, size=nnz).astype(dt)
        else:
            data = rng.integers(int(low), int(high), size=nnz, endpoint=True, dtype=dt)
    else:
        data = np.full(nnz, weight, dtype=dt)
    indptr = (np.arange(n_pre + 1, dtype=np.int64) * fan_out).astype(ix)
    return CsrMatrix(indptr, cols.reshape(-1), data, (n_pre, n_post))


def propagate(
    spikes: NDArray[np.uint32],
    weights: CsrMatrix | CsrLike,
    target: NDArray[np.int16] | NDArray[np.int32] | NDArray[np.float32],
) -> int:
    """Add the weights of every spiking presynaptic neuron into ``target``, in place.

    Event-driven: the cost is proportional to the number of synaptic events (the
    summed out-degree of the listed neurons), not to the size of the matrix. The same
    call serves both sides of the network: local connections (``spikes`` from a step
    function of this node) and incoming projections (``spikes`` received from another
    node, ``weights`` the projection's matrix from the source population to the local
    target population).

    Accumulation: float32 adds; int16 and int32 targets add with saturation at their
    limits. An int32 target with int16 weights never saturates in practice, so its
    result does not depend on the order of the spikes, keeping multi-node runs
    bit-identical to single-node ones.

    Args:
        spikes: uint32 indices of the presynaptic neurons that spiked (sorted or not;
            a repeated index is propagated once per occurrence).
        weights: A :class:`CsrMatrix`, or a scipy.sparse CSR matrix/array (used as is,
            without a full validation).
        target: Input currents of the postsynaptic population, ``n_post`` entries:
            int16 (int16 weights), int32 (int16 or int32 weights) or float32 (float32
            weights).

    Returns:
        The number of synaptic events (weights added).

    Raises:
        TypeError: A dtype does not match the list above.
        ValueError: A spike index is not below ``n_pre``, a row used is malformed or
            points outside ``[0, n_post)``, or a length is wrong. ``target`` is then
            unchanged.
    """
    if not isinstance(weights, CsrMatrix):  # a CsrMatrix was checked when it was made
        if getattr(weights, "format", "csr") != "csr":
            raise TypeError(f"weights: expected a CSR matrix, got format {weights.format!r}")  # type: ignore[union-attr]
        if len(weights.shape) != 2:
            raise ValueError(f"weights: expected a 2-D matrix, got shape {weights.shape!r}")
    return _native.kernel_propagate(spikes, weights, target)
