"""Benchmark the spike kernels against numpy references and the memory-bandwidth bound.

Run from the repository root after building the extension::

    python bench/kernel_bench.py            # full run, about two minutes
    python bench/kernel_bench.py --quick    # a few seconds, fewer repetitions

It prints a table and writes the numbers as JSON (``--out``, default
``bench/results/kernel_bench.json``). Every time is the median of several repetitions;
small populations repeat the call within one sample so that the timer's resolution
does not matter.

Integer LIF is also compared with the memory-bandwidth bound, measured in the same run:
``np.copyto`` of an int16 array of the same size moves 4 bytes per element (2 read,
2 written), which gives the bandwidth; one LIF step moves 7 bytes per neuron (reads v
and i_syn, writes v and the bool spike mask), so the fastest possible step takes
``7 * n / bandwidth`` ("of bound"). The copy runs on one thread, so the single-threaded
kernel is the like-for-like comparison. On machines where large copies use
non-temporal stores (glibc does above a cache-size-dependent threshold) the copy can be
slower than a kernel that streams with ordinary stores, and the kernel then exceeds
100% of this bound. For reference the table also gives the bound computed from
``np.add`` of two int16 arrays into a third (6 bytes per element, ordinary stores),
"of add-bd".

Propagation is compared with the fastest of four numpy/scipy implementations; the
"ref-scipy-gather" row (scipy's row selection alone, without the sum) is not a baseline
but shows what fetching the spiking rows from memory costs by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from evospikenet import kernels

SIZES = (10_000, 1_000_000, 10_000_000)
LIF_BYTES_PER_NEURON = 7  # read v (2) + i_syn (2), write v (2) + spike mask (1)
COPY_BYTES_PER_ELEMENT = 4  # int16: read 2, write 2
ADD_BYTES_PER_ELEMENT = 6  # int16 a + b -> c: read 4, write 2

TARGETS = {
    "lif_int_vs_numpy": 10.0,
    "lif_int_of_bound": 0.60,
    "lif_float_vs_numpy": 5.0,
    "propagate_vs_numpy_scipy": 5.0,
}


class Progress:
    """One status line on stderr, rewritten in place."""

    def __init__(self, total: int) -> None:
        """Start counting up to ``total`` measurements."""
        self.total = total
        self.done = 0
        self.width = 0

    def step(self, what: str) -> None:
        """Announce the measurement that starts now."""
        self.done += 1
        line = f"[{self.done:>3}/{self.total}] {what}"
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def close(self) -> None:
        """End the status line."""
        sys.stderr.write("\r" + " " * self.width + "\r")
        sys.stderr.flush()


def measure(fn: Callable[[], Any], n: int, reps: int) -> dict[str, float]:
    """Median and minimum seconds per call of ``fn``, over ``reps`` samples."""
    # Small populations finish in microseconds: run several calls per sample.
    inner = max(1, 2_000_000 // max(n, 1))
    for _ in range(2 * inner):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return {"median_s": float(np.median(samples)), "min_s": float(np.min(samples))}


# --- numpy references -----------------------------------------------------------------------


class NumpyLifInt:
    """LIFNeuronLayer in numpy with preallocated temporaries (no allocation per step).

    ``>> 8`` is numpy's floor division by 256 for int32, and faster than ``// 256``.
    """

    def __init__(self, n: int) -> None:
        """Allocate the int32 temporary for ``n`` neurons."""
        self.t = np.empty(n, np.int32)

    def __call__(self, v, i_syn, out, leak=230, threshold=1024, reset=0):
        """One step, in place on ``v``, mask into ``out``."""
        t = self.t
        np.multiply(v, leak, out=t, dtype=np.int32)
        np.right_shift(t, 8, out=t)
        np.add(t, i_syn, out=t)
        np.clip(t, -32768, 32767, out=t)
        np.greater_equal(t, threshold, out=out)
        np.copyto(t, reset, where=out)
        np.copyto(v, t, casting="unsafe")
        return out


def numpy_lif_int_naive(v, i_syn, leak=230, threshold=1024, reset=0):
    """LIFNeuronLayer as written with whole-array expressions (allocates temporaries)."""
    v32 = (v.astype(np.int32) * leak) // 256 + i_syn
    v_new = np.clip(v32, -32768, 32767).astype(np.int16)
    spikes = v_new >= threshold
    v_new[spikes] = reset
    v[...] = v_new
    return spikes


class NumpyLifFloat:
    """iaf_psc_exp step in numpy, NEST's order, preallocated temporaries."""

    def __init__(self, n: int, p: kernels.LifFloatParams) -> None:
        """Compute the propagators and allocate temporaries for ``n`` neurons."""
        h, tm, ts, c = p.dt, p.tau_m, p.tau_syn, p.c_m
        p22, p11 = np.exp(-h / tm), np.exp(-h / ts)
        p21 = tm * ts / (c * (tm - ts)) * (p22 - p11)
        p20 = tm / c * (1.0 - p22)
        f = np.float32
        self.p11, self.p21, self.p22 = f(p11), f(p21), f(p22)
        self.ie_p20, self.e_l = f(p.i_e * p20), f(p.e_l)
        self.v_th, self.v_reset = f(p.v_th), f(p.v_reset)
        self.t_ref = np.int32(round(p.t_ref / p.dt))
        self.a = np.empty(n, np.float32)
        self.b = np.empty(n, np.float32)
        self.active = np.empty(n, np.bool_)
        self.refr = np.empty(n, np.bool_)

    def __call__(self, v, i_syn, r, i_in, out):
        """One step, in place on ``v``, ``i_syn``, ``r``; mask into ``out``."""
        a, b = self.a, self.b
        np.subtract(v, self.e_l, out=a)
        a *= self.p22
        np.multiply(i_syn, self.p21, out=b)
        a += b
        a += self.ie_p20
        a += self.e_l
        np.less_equal(r, 0, out=self.active)
        np.logical_not(self.active, out=self.refr)
        np.copyto(v, a, where=self.active)
        np.subtract(r, 1, out=r, where=self.refr)
        np.copyto(r, 0, where=self.active)
        i_syn *= self.p11
        i_syn += i_in
        np.greater_equal(v, self.v_th, out=out)
        np.copyto(v, self.v_reset, where=out)
        np.copyto(r, self.t_ref, where=out)
        return out


class NumpyIzhikevich:
    """Izhikevich step in numpy, preallocated temporaries, same order as the kernel."""

    def __init__(self, n: int, dt: float) -> None:
        """Allocate temporaries for ``n`` neurons."""
        self.dv = np.empty(n, np.float32)
        self.du = np.empty(n, np.float32)
        self.t = np.empty(n, np.float32)
        self.dt = np.float32(dt)

    def __call__(self, v, u, i_in, a, b, c, d, out):
        """One step, in place on ``v`` and ``u``; mask into ``out``."""
        dv, du, t = self.dv, self.du, self.t
        np.multiply(v, np.float32(0.04), out=dv)
        dv *= v
        np.multiply(v, np.float32(5.0), out=t)
        dv += t
        dv += np.float32(140.0)
        dv -= u
        dv += i_in
        np.multiply(b, v, out=du)
        du -= u
        du *= a
        dv *= self.dt
        du *= self.dt
        v += dv
        u += du
        np.greater_equal(v, np.float32(30.0), out=out)
        np.copyto(v, c, where=out)
        np.add(u, d, out=u, where=out)
        return out


def rows_of(spikes, indptr):
    """Storage positions of the synapses of the listed rows (numpy gather)."""
    starts = indptr[spikes].astype(np.int64)
    lens = indptr[spikes.astype(np.int64) + 1].astype(np.int64) - starts
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return offsets + np.arange(int(lens.sum()), dtype=np.int64)


# --- benchmark sections ------------------------------------------------------------------------


def bench_neurons(sizes, reps, progress, results):
    """Bandwidth, integer LIF, float LIF and Izhikevich at each population size."""
    rng = np.random.default_rng(0)
    for n in sizes:
        bandwidth = bench_copy(n, reps, progress, results, rng)
        bench_lif_int(n, reps, progress, results, rng, bandwidth)
        bench_lif_float(n, reps, progress, results, rng)
        bench_izhikevich(n, reps, progress, results, rng)


def bench_copy(n, reps, progress, results, rng):
    """Measure np.copyto of int16 arrays; return the bandwidth in bytes/s.

    Also measured, for reference only: ``np.add`` of two int16 arrays into a third,
    which streams with ordinary stores as the kernels do (6 bytes per element).
    """
    src = rng.integers(-1000, 1000, n).astype(np.int16)
    src2 = rng.integers(-1000, 1000, n).astype(np.int16)
    dst = np.empty_like(src)
    progress.step(f"copy n={n}")
    m = measure(lambda: np.copyto(dst, src), n, reps)
    bandwidth = COPY_BYTES_PER_ELEMENT * n / m["median_s"]
    results.append(row("copy_int16", n, "np.copyto", 1, m, n, "elements/s", bandwidth=bandwidth))
    progress.step(f"add n={n}")
    m = measure(lambda: np.add(src, src2, out=dst), n, reps)
    results.append(
        row(
            "add_int16",
            n,
            "np.add",
            1,
            m,
            n,
            "elements/s",
            bandwidth=ADD_BYTES_PER_ELEMENT * n / m["median_s"],
        )
    )
    return bandwidth


def bench_lif_int(n, reps, progress, results, rng, bandwidth):
    """Integer LIF on the guide's example input, against numpy and the bandwidth bound."""
    bound_s = LIF_BYTES_PER_NEURON * n / bandwidth
    i_syn = rng.integers(0, 300, n).astype(np.int16)
    out = np.empty(n, np.bool_)
    v_np = np.zeros(n, np.int16)
    v_rs = np.zeros(n, np.int16)
    ref = NumpyLifInt(n)
    for _ in range(20):  # reach the steady state, checking equality on the way
        s_np = ref(v_np, i_syn, out.copy())
        s_rs = kernels.lif_step(v_rs, i_syn, out=out)
        assert np.array_equal(v_np, v_rs) and np.array_equal(s_np, s_rs)
    rate = float(out.mean())
    progress.step(f"lif_int numpy n={n}")
    m = measure(lambda: ref(v_np, i_syn, out), n, reps)
    results.append(row("lif_int", n, "numpy", 1, m, n, "neurons/s", spike_rate=rate))
    progress.step(f"lif_int numpy-naive n={n}")
    m = measure(lambda: numpy_lif_int_naive(v_np, i_syn), n, reps)
    results.append(row("lif_int", n, "numpy-naive", 1, m, n, "neurons/s"))
    add_bw = next(r["bandwidth"] for r in results if r["kernel"] == "add_int16" and r["n"] == n)
    add_bound_s = LIF_BYTES_PER_NEURON * n / add_bw
    for threads in (1, None):
        t = threads or kernels.default_threads(n)
        progress.step(f"lif_int rust threads={t} n={n}")
        m = measure(lambda th=threads: kernels.lif_step(v_rs, i_syn, out=out, threads=th), n, reps)
        results.append(
            row(
                "lif_int",
                n,
                "rust",
                t,
                m,
                n,
                "neurons/s",
                bound_s=bound_s,
                of_add_bound=add_bound_s / m["median_s"],
                spike_rate=rate,
            )
        )
    t = kernels.default_threads(n)
    progress.step(f"lif_int rust-indices threads={t} n={n}")
    m = measure(lambda: kernels.lif_step(v_rs, i_syn, spikes="indices"), n, reps)
    results.append(row("lif_int", n, "rust-indices", t, m, n, "neurons/s", spike_rate=rate))


def bench_float_model(model, run, numpy_step, rust_step):
    """Time a float model's numpy step, then its kernel on one thread and on the default.

    ``run`` is ``(n, reps, progress, results)``; ``numpy_step(out)`` and
    ``rust_step(out, threads)`` each advance their own copy of the state, the spike mask
    into ``out``.
    """
    n, reps, progress, results = run
    out = np.empty(n, np.bool_)
    progress.step(f"{model} numpy n={n}")
    m = measure(lambda: numpy_step(out), n, reps)
    results.append(row(model, n, "numpy", 1, m, n, "neurons/s"))
    for threads in (1, None):
        t = threads or kernels.default_threads(n)
        progress.step(f"{model} rust threads={t} n={n}")
        m = measure(lambda th=threads: rust_step(out, th), n, reps)
        rate = float(out.mean())
        results.append(row(model, n, "rust", t, m, n, "neurons/s", spike_rate=rate))


def bench_lif_float(n, reps, progress, results, rng):
    """Float LIF, NEST defaults with a suprathreshold constant current and noisy input."""
    p = kernels.LifFloatParams(i_e=380.0)
    v0 = rng.uniform(-70, -55, n).astype(np.float32)
    np_state = (v0.copy(), np.zeros(n, np.float32), np.zeros(n, np.int32))
    rs_state = (v0.copy(), np.zeros(n, np.float32), np.zeros(n, np.int32))
    i_in = rng.normal(0, 300, n).astype(np.float32)
    ref = NumpyLifFloat(n, p)
    bench_float_model(
        "lif_float",
        (n, reps, progress, results),
        lambda out: ref(*np_state, i_in, out),
        lambda out, th: kernels.lif_float_step(*rs_state, i_in, p, out=out, threads=th),
    )


def bench_izhikevich(n, reps, progress, results, rng):
    """Izhikevich (2003)'s network: per-neuron a, b, c, d, noisy input."""
    r = rng.random(n).astype(np.float32)
    exc = rng.random(n) < 0.8
    a = np.where(exc, 0.02, 0.02 + 0.08 * r).astype(np.float32)
    b = np.where(exc, 0.2, 0.25 - 0.05 * r).astype(np.float32)
    c = np.where(exc, -65 + 15 * r**2, -65.0).astype(np.float32)
    d = np.where(exc, 8 - 6 * r**2, 2.0).astype(np.float32)
    p = kernels.IzhikevichParams(a=a, b=b, c=c, d=d, dt=0.5)
    np_state = (np.full(n, -65.0, np.float32), (b * -65.0).astype(np.float32))
    rs_state = (np_state[0].copy(), np_state[1].copy())
    drive = (5.0 * rng.standard_normal(n)).astype(np.float32)
    ref = NumpyIzhikevich(n, 0.5)
    bench_float_model(
        "izhikevich",
        (n, reps, progress, results),
        lambda out: ref(*np_state, drive, a, b, c, d, out),
        lambda out, th: kernels.izhikevich_step(*rs_state, drive, p, out=out, threads=th),
    )


def bench_propagate(n, fan_out, fractions, reps, progress, results):
    """Synaptic events per second: the kernel against numpy and scipy implementations."""
    w = kernels.random_csr(n, n, fan_out, weight=(-1.0, 1.0), dtype=np.float32, seed=1)
    w16 = kernels.random_csr(n, n, fan_out, weight=(-50, 50), dtype=np.int16, seed=1)
    rng = np.random.default_rng(2)
    for frac in fractions:
        k = int(n * frac)
        spikes = np.sort(rng.choice(n, k, replace=False)).astype(np.uint32)
        bench_propagate_case(w, w16, spikes, reps, progress, results)


def bench_propagate_case(w, w16, spikes, reps, progress, results):
    """One spike count: every implementation adds the same rows into a float target."""
    n_pre, n = w.shape
    m = w.to_scipy()
    m_t = m.T.tocsr()  # built once: the matrix-vector product form
    k = spikes.size
    fan_out = w.nnz // max(n_pre, 1)
    events = int(np.sum(np.diff(w.indptr)[spikes]))
    target = np.zeros(n, np.float32)
    pos = rows_of(spikes, w.indptr)
    want = np.zeros(n, np.float64)
    np.add.at(want, w.indices[pos], w.data[pos])
    kernels.propagate(spikes, w, target)
    assert np.allclose(target, want, rtol=1e-4, atol=1e-3)
    mask = np.zeros(n, np.float32)
    mask[spikes] = 1.0
    rows = spikes.astype(np.int64)
    t32 = np.zeros(n, np.int32)

    def np_bincount():
        p = rows_of(spikes, w.indptr)
        target[:] += np.bincount(w.indices[p], weights=w.data[p], minlength=n)

    def np_add_at():
        p = rows_of(spikes, w.indptr)
        np.add.at(target, w.indices[p], w.data[p])

    def sp_rows():
        target[:] += m[rows].sum(axis=0)

    def sp_matvec():
        target[:] += m_t @ mask

    def gather_only():
        m[rows]

    impls = [
        ("numpy-bincount", np_bincount),
        ("numpy-add.at", np_add_at),
        ("scipy-rows", sp_rows),
        ("scipy-matvec", sp_matvec),
        ("ref-scipy-gather", gather_only),
        ("rust", lambda: kernels.propagate(spikes, w, target)),
        ("rust-int16w-int32", lambda: kernels.propagate(spikes, w16, t32)),
    ]
    for name, fn in impls:
        progress.step(f"propagate {name} {k} spikes")
        r = measure(fn, events, reps)
        results.append(
            row("propagate", n, name, 1, r, events, "events/s", spikes=k, fan_out=fan_out)
        )


def bench_spike_forms(n, reps, progress, results):
    """Mask -> indices conversion against np.flatnonzero."""
    rng = np.random.default_rng(3)
    mask = rng.random(n) < 0.05
    progress.step(f"spikes_to_indices numpy n={n}")
    m = measure(lambda: np.flatnonzero(mask).astype(np.uint32), n, reps)
    results.append(row("spikes_to_indices", n, "numpy", 1, m, n, "neurons/s"))
    progress.step(f"spikes_to_indices rust n={n}")
    m = measure(lambda: kernels.spikes_to_indices(mask), n, reps)
    results.append(row("spikes_to_indices", n, "rust", 1, m, n, "neurons/s"))


def row(kernel, n, impl, threads, m, work, unit, **extra):
    """One result record; ``rate`` is ``work`` per second at the median time."""
    r = {
        "kernel": kernel,
        "n": n,
        "impl": impl,
        "threads": threads,
        "median_s": m["median_s"],
        "min_s": m["min_s"],
        "rate": work / m["median_s"],
        "unit": unit,
    }
    if "bound_s" in extra:
        extra["of_bound"] = extra["bound_s"] / m["median_s"]
    r.update(extra)
    return r


# --- report ------------------------------------------------------------------------------------


def add_speedups(results):
    """Speedup of each row over the numpy reference (the fastest baseline) of its case."""
    for r in results:
        if r["kernel"] == "propagate":
            same = [
                x
                for x in results
                if x["kernel"] == "propagate"
                and x["spikes"] == r["spikes"]
                and not x["impl"].startswith(("rust", "ref-"))
            ]
        else:
            same = [
                x
                for x in results
                if x["kernel"] == r["kernel"] and x["n"] == r["n"] and x["impl"] == "numpy"
            ]
        if same and not r["impl"].startswith("ref-"):
            base = min(same, key=lambda x: x["median_s"])
            r["speedup"] = base["median_s"] / r["median_s"]
            r["baseline"] = base["impl"]


def evaluate_targets(results, n_top):
    """Check each stated target on the largest population (and every propagation case)."""

    def pick(kernel, impl, threads=None, n=n_top):
        rows = [x for x in results if x["kernel"] == kernel and x["impl"] == impl and x["n"] == n]
        if threads is not None:
            rows = [x for x in rows if x["threads"] == threads]
        return rows

    out = []
    lif_rows = pick("lif_int", "rust")
    if lif_rows:
        best = max(lif_rows, key=lambda x: x["speedup"])
        single = pick("lif_int", "rust", threads=1)[0]
        out.append(target("lif_int_vs_numpy", f"integer LIF vs numpy, n={n_top}", best["speedup"]))
        out.append(
            target(
                "lif_int_of_bound",
                f"integer LIF 1 thread, of bandwidth bound, n={n_top}",
                single["of_bound"],
            )
        )
    float_rows = pick("lif_float", "rust")
    if float_rows:
        best = max(float_rows, key=lambda x: x["speedup"])
        out.append(target("lif_float_vs_numpy", f"float LIF vs numpy, n={n_top}", best["speedup"]))
    for r in results:
        if r["kernel"] == "propagate" and r["impl"] == "rust":
            out.append(
                target(
                    "propagate_vs_numpy_scipy",
                    f"propagation vs best numpy/scipy, {r['spikes']} spikes x {r['fan_out']}",
                    r["speedup"],
                )
            )
    return out


def target(key, what, value):
    """A target record: the measured value against the stated minimum."""
    return {
        "target": key,
        "what": what,
        "value": value,
        "minimum": TARGETS[key],
        "met": value >= TARGETS[key],
    }


def fmt_rate(x):
    """Rate with an SI prefix."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:7.2f} {unit}"
    return f"{x:7.2f}  "


def print_table(results, targets, machine):
    """The human-readable report."""
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; numpy {machine['numpy']}")
    print(f"load average at start: {machine['loadavg']}")
    header = (
        f"{'kernel':<18} {'n':>10} {'impl':<18} {'thr':>3} {'median':>11} {'rate':>13} "
        f"{'vs numpy':>9} {'of bound':>9} {'of add-bd':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        med = r["median_s"]
        t = f"{med * 1e3:8.3f} ms" if med >= 1e-4 else f"{med * 1e6:8.2f} us"
        unit = {"neurons/s": "upd/s", "events/s": "ev/s", "elements/s": "el/s"}[r["unit"]]
        if "bandwidth" in r:
            extra = f"{'':>9} {r['bandwidth'] / 1e9:6.1f}GB/s"
        else:
            sp = f"{r['speedup']:8.1f}x" if "speedup" in r else f"{'':>9}"
            ob = ""
            if "of_bound" in r:
                ob = f"{r['of_bound'] * 100:8.0f}% {r['of_add_bound'] * 100:8.0f}%"
            extra = f"{sp} {ob}"
        n = r["n"] if r["kernel"] != "propagate" else f"{r['spikes']}sp"
        rate = fmt_rate(r["rate"]) + f"{unit:<5}"
        print(
            f"{r['kernel']:<18} {n!s:>10} {r['impl']:<18} {r['threads']:>3} {t:>11} {rate} {extra}"
        )
    print()
    for t in targets:
        mark = "met" if t["met"] else "MISSED"
        unit = "%" if t["target"] == "lif_int_of_bound" else "x"
        val = t["value"] * 100 if unit == "%" else t["value"]
        want = t["minimum"] * 100 if unit == "%" else t["minimum"]
        print(f"target {t['what']}: {val:.1f}{unit} (>= {want:.0f}{unit}) {mark}")


def machine_info():
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import scipy

        scipy_version = scipy.__version__
    except ImportError:
        scipy_version = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy_version,
        "kernel_threads_default_large": kernels.default_threads(10**7),
        "parallel_min_len": kernels.PARALLEL_MIN_LEN,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "openblas_env": {
            k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
        },
    }


def main(argv=None):
    """Run the benchmark, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/kernel_bench.json"))
    ap.add_argument("--quick", action="store_true", help="few repetitions, smaller propagation")
    ap.add_argument("--reps", type=int, default=None, help="samples per measurement (median)")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 15)
    sizes = SIZES
    prop_n, fan_out = (20_000, 50) if args.quick else (100_000, 100)
    fractions = (0.01, 0.1)
    try:
        import scipy  # noqa: F401

        have_scipy = True
    except ImportError:
        have_scipy = False
    total = len(sizes) * 13 + (14 if have_scipy else 0) + 2
    progress = Progress(total)
    results: list[dict[str, Any]] = []
    machine = machine_info()
    t0 = time.perf_counter()
    try:
        bench_neurons(sizes, reps, progress, results)
        if have_scipy:
            bench_propagate(prop_n, fan_out, fractions, reps, progress, results)
        bench_spike_forms(max(sizes), reps, progress, results)
    finally:
        progress.close()
    add_speedups(results)
    targets = evaluate_targets(results, max(sizes))
    print_table(results, targets, machine)
    if not have_scipy:
        print("scipy not installed: propagation not measured")
    report = {
        "machine": machine,
        "settings": {
            "reps": reps,
            "sizes": list(sizes),
            "quick": args.quick,
            "propagate": {"n": prop_n, "fan_out": fan_out, "fractions": list(fractions)},
        },
        "seconds": time.perf_counter() - t0,
        "results": results,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
