"""Kernels against independent numpy references, and their argument checking.

The references are written from the published formulas (EvoSpikeNet's
``LIFNeuronLayer``, NEST's ``iaf_psc_exp`` update, Izhikevich 2003) in plain numpy,
sharing no code with the kernels.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from evospikenet import kernels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

I16 = st.integers(-32768, 32767)


# --- references ------------------------------------------------------------------------


def lif_int_ref(v, i_syn, leak=230, threshold=1024, reset=0):
    """LIFNeuronLayer in int64: floor division, int16 clamp, threshold, reset."""
    v32 = (v.astype(np.int64) * leak) // 256 + i_syn.astype(np.int64)
    v_new = np.clip(v32, -32768, 32767).astype(np.int16)
    spikes = v_new >= threshold
    v_new[spikes] = reset
    return v_new, spikes


def nest_propagators(p: kernels.LifFloatParams):
    """iaf_psc_exp propagators, textbook form (singular case as its limit)."""
    h, tm, ts, c = p.dt, p.tau_m, p.tau_syn, p.c_m
    p22 = np.exp(-h / tm)
    p11 = np.exp(-h / ts)
    # At tm == ts the textbook form is 0/0; its limit is h/c * p22.
    p21 = h / c * p22 if tm == ts else tm * ts / (c * (tm - ts)) * (p22 - p11)
    p20 = tm / c * (1.0 - p22)
    return p11, p21, p22, p20


def lif_float_ref(v, i_syn, refr, i_in, p: kernels.LifFloatParams):
    """One iaf_psc_exp step in NEST's order; returns new state, spikes, pre-reset v."""
    p11, p21, p22, p20 = nest_propagators(p)
    f = np.float32
    p11, p21, p22 = f(p11), f(p21), f(p22)
    ie_p20 = f(p.i_e * p20)
    active = refr <= 0
    integrated = f(p.e_l) + ((v - f(p.e_l)) * p22 + i_syn * p21 + ie_p20)
    v1 = np.where(active, integrated, v).astype(np.float32)
    r1 = np.where(active, 0, refr - 1).astype(np.int32)
    spikes = v1 >= f(p.v_th)
    v_out = np.where(spikes, f(p.v_reset), v1).astype(np.float32)
    r_out = np.where(spikes, np.int32(round(p.t_ref / p.dt)), r1).astype(np.int32)
    i_out = (i_syn * p11 + i_in).astype(np.float32)
    return v_out, i_out, r_out, spikes, v1


def izhikevich_ref(v, u, i_in, a, b, c, d, dt=1.0, v_peak=30.0):
    """One Izhikevich step, forward Euler, same order of operations as documented."""
    f = np.float32
    dv = f(0.04) * v * v + f(5.0) * v + f(140.0) - u + i_in
    du = a * (b * v - u)
    v1 = (v + f(dt) * dv).astype(np.float32)
    u1 = (u + f(dt) * du).astype(np.float32)
    spikes = v1 >= f(v_peak)
    return (
        np.where(spikes, c, v1).astype(np.float32),
        np.where(spikes, u1 + d, u1).astype(np.float32),
        spikes,
        v1,
    )


# --- integer LIF -------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    n=st.integers(0, 3000),
    leak=st.one_of(st.integers(0, 256), I16),
    threshold=I16,
    reset=I16,
    i32=st.booleans(),
    threads=st.sampled_from([None, 1, 2, 3]),
)
def test_lif_int_matches_reference_bit_for_bit(data, n, leak, threshold, reset, i32, threads):
    v0 = data.draw(hnp.arrays(np.int16, n, elements=I16))
    if i32:
        i_syn = data.draw(hnp.arrays(np.int32, n, elements=st.integers(-(2**31), 2**31 - 1)))
    else:
        i_syn = data.draw(hnp.arrays(np.int16, n, elements=I16))
    want_v, want_s = lif_int_ref(v0, i_syn, leak, threshold, reset)

    v = v0.copy()
    s = kernels.lif_step(v, i_syn, leak=leak, threshold=threshold, reset=reset, threads=threads)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(s, want_s)
    assert s.dtype == np.bool_

    v = v0.copy()
    idx = kernels.lif_step(
        v, i_syn, leak=leak, threshold=threshold, reset=reset, spikes="indices", threads=threads
    )
    assert idx.dtype == np.uint32
    np.testing.assert_array_equal(idx, np.flatnonzero(want_s))
    np.testing.assert_array_equal(v, want_v)


def test_lif_int_saturates_at_both_ends_and_floors_negatives():
    v = np.array([-1, -256, 32767, -32768, 100], dtype=np.int16)
    i_syn = np.array([0, 0, 32767, -32768, 0], dtype=np.int16)
    s = kernels.lif_step(v, i_syn, leak=256, threshold=32767, reset=-7)
    # leak 256 keeps v; 32767 + 32767 saturates to 32767 and spikes; -65536 clamps.
    np.testing.assert_array_equal(v, [-1, -256, -7, -32768, 100])
    np.testing.assert_array_equal(s, [False, False, True, False, False])
    v = np.array([-1, -255, 1], dtype=np.int16)
    kernels.lif_step(v, np.zeros(3, np.int16))  # default leak 230
    np.testing.assert_array_equal(v, [-1, -230, 0])  # floor, not truncation


def test_lif_int_example_from_the_guide_over_many_steps():
    rng = np.random.default_rng(1)
    v = np.zeros(1_000_000, np.int16)
    i_syn = rng.integers(0, 300, v.size).astype(np.int16)
    v_ref = v.copy()
    out = np.empty(v.size, np.bool_)
    total = 0
    for _ in range(12):
        spikes = kernels.lif_step(v, i_syn, leak=230, threshold=1024, reset=0, out=out)
        assert spikes is out
        v_ref, s_ref = lif_int_ref(v_ref, i_syn)
        np.testing.assert_array_equal(v, v_ref)
        np.testing.assert_array_equal(spikes, s_ref)
        total += int(spikes.sum())
    assert total > 0
    assert spikes.view(np.int8).max() == 1


def test_index_forms_fill_a_reused_buffer():
    rng = np.random.default_rng(5)
    n = 70_000
    v0 = rng.integers(0, 1100, n).astype(np.int16)
    i_syn = rng.integers(0, 300, n).astype(np.int16)
    buf = np.full(n + 3, 7, np.uint32)
    for threads in (1, 2):
        v = v0.copy()
        got = kernels.lif_step(v, i_syn, spikes="indices", out=buf, threads=threads)
        want_v, want_s = lif_int_ref(v0, i_syn)
        assert np.shares_memory(got, buf)
        np.testing.assert_array_equal(got, np.flatnonzero(want_s))
        np.testing.assert_array_equal(v, want_v)
        assert list(buf[n:]) == [7, 7, 7]
    vf = np.full(4, -54.0, np.float32)
    got = kernels.lif_float_step(
        vf, np.zeros(4, np.float32), np.zeros(4, np.int32), spikes="indices", out=buf
    )
    np.testing.assert_array_equal(got, [0, 1, 2, 3])
    vi = np.array([29.9, -65.0], np.float32)
    got = kernels.izhikevich_step(vi, np.zeros(2, np.float32), 10.0, spikes="indices", out=buf[:2])
    np.testing.assert_array_equal(got, [0])
    with pytest.raises(ValueError, match=r"^out: expected at least 4 entries, got 3"):
        kernels.lif_step(
            np.zeros(4, np.int16), np.zeros(4, np.int16), spikes="indices", out=buf[:3]
        )
    with pytest.raises(TypeError, match=r"^out: .*uint32.*float64"):
        kernels.lif_step(
            np.zeros(4, np.int16), np.zeros(4, np.int16), spikes="indices", out=np.zeros(4)
        )


# --- spike forms: one step function per model, spikes="mask" or "indices" ----------------


def _populations(n, seed):
    """(model, step function, fresh state) of each model, with about a tenth spiking."""
    rng = np.random.default_rng(seed)
    v16 = rng.integers(0, 1100, n).astype(np.int16)
    i16 = rng.integers(0, 300, n).astype(np.int16)
    vf = rng.uniform(-75, -54, n).astype(np.float32)
    i_f = rng.uniform(-500, 1500, n).astype(np.float32)
    refr = rng.integers(-1, 3, n).astype(np.int32)
    vi = rng.uniform(-70, 31, n).astype(np.float32)
    return [
        ("lif_int", kernels.lif_step, lambda: (v16.copy(), i16)),
        ("lif_float", kernels.lif_float_step, lambda: (vf.copy(), i_f.copy(), refr.copy(), 5.0)),
        ("izhikevich", kernels.izhikevich_step, lambda: (vi.copy(), 0.2 * vi, 10.0)),
    ]


@pytest.mark.parametrize("model", ["lif_int", "lif_float", "izhikevich"])
def test_both_spike_forms_step_alike_and_match_the_reference(model):
    n = 5000
    (step, state) = {m: (f, s) for m, f, s in _populations(n, 3)}[model]
    mask_state, idx_state, buf_state = state(), state(), state()
    mask = step(*mask_state)  # spikes="mask" is the default
    assert mask.dtype == np.bool_ and mask.shape == (n,)
    idx = step(*idx_state, spikes="indices")
    buf = np.zeros(n, np.uint32)
    in_buf = step(*buf_state, spikes="indices", out=buf)
    assert idx.dtype == np.uint32 and np.shares_memory(in_buf, buf)
    assert 0 < idx.size < n
    np.testing.assert_array_equal(idx, np.flatnonzero(mask))
    np.testing.assert_array_equal(in_buf, idx)
    for got in (idx_state, buf_state):
        for a, b in zip(got, mask_state, strict=True):
            np.testing.assert_array_equal(a, b)
    # The same step as the independent references the older per-form functions matched.
    ref = state()
    if model == "lif_int":
        want_v, want_s = lif_int_ref(*ref)
        np.testing.assert_array_equal(mask_state[0], want_v)
        np.testing.assert_array_equal(mask, want_s)
    elif model == "lif_float":
        want = lif_float_ref(*ref, kernels.LifFloatParams())
        assert_float_step((*mask_state[:3], mask), want[:4], want[4], -55.0)
    else:
        p = kernels.IzhikevichParams()
        abcd = {k: np.float32(getattr(p, k)) for k in "abcd"}
        wv, wu, ws, v_pre = izhikevich_ref(*ref[:2], np.float32(10.0), **abcd)
        differ = mask != ws  # only float ties at the cut-off may differ
        assert np.all(np.abs(v_pre[differ] - p.v_peak) < 1e-3)
        np.testing.assert_allclose(mask_state[0][~differ], wv[~differ], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(mask_state[1][~differ], wu[~differ], rtol=1e-6, atol=1e-4)


def test_mask_form_fills_and_returns_the_given_array():
    v = np.array([1200, 0, 1200], np.int16)  # 1200 * 230 // 256 = 1078 >= 1024
    out = np.ones(3, np.bool_)
    got = kernels.lif_step(v, np.zeros(3, np.int16), spikes="mask", out=out)
    assert got is out
    np.testing.assert_array_equal(out, [True, False, True])


def test_lif_step_indices_is_the_index_form_of_lif_step():
    rng = np.random.default_rng(9)
    v0 = rng.integers(0, 1100, 3000).astype(np.int16)
    i_syn = rng.integers(0, 300, 3000).astype(np.int16)
    v1, v2 = v0.copy(), v0.copy()
    got = kernels.lif_step_indices(v1, i_syn, leak=200, threshold=900, reset=-3)
    want = kernels.lif_step(v2, i_syn, leak=200, threshold=900, reset=-3, spikes="indices")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(v1, v2)
    with pytest.raises(TypeError):
        kernels.lif_step_indices(v1, i_syn, spikes="mask")  # the form is its name


@pytest.mark.parametrize("model", ["lif_int", "lif_float", "izhikevich"])
@pytest.mark.parametrize("bad", ["Mask", "index", "", "indices "])
def test_an_unknown_spike_form_is_a_value_error_before_any_write(model, bad):
    (step, state) = {m: (f, s) for m, f, s in _populations(64, 4)}[model]
    st, untouched = state(), state()
    with pytest.raises(ValueError, match=r"^spikes: expected \"mask\" or \"indices\", got "):
        step(*st, spikes=bad)
    for a, b in zip(st, untouched, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="spikes"):
        step(*st, spikes=1)


def test_lif_int_thread_counts_agree_above_parallel_threshold():
    n = kernels.PARALLEL_MIN_LEN + 12345
    rng = np.random.default_rng(2)
    v0 = rng.integers(-2000, 2000, n).astype(np.int16)
    i_syn = rng.integers(-100, 400, n).astype(np.int32)
    results = []
    for threads in (None, 1, 2, 5):
        v = v0.copy()
        idx = kernels.lif_step(v, i_syn, spikes="indices", threads=threads)
        results.append((v, idx))
    for v, idx in results[1:]:
        np.testing.assert_array_equal(v, results[0][0])
        np.testing.assert_array_equal(idx, results[0][1])
    assert kernels.default_threads(n) >= 1
    assert kernels.default_threads(100) == 1


# --- argument checking (shared by all step kernels) ---------------------------------------


def test_wrong_dtype_or_kind_is_a_type_error_naming_the_argument():
    v = np.zeros(4, np.int16)
    i = np.zeros(4, np.int16)
    with pytest.raises(TypeError, match=r"^v: expected a 1-D numpy array of dtype int16, got a"):
        kernels.lif_step(v.astype(np.int32), i)
    with pytest.raises(TypeError, match=r"^i_syn: .*int16 or int32.*float64"):
        kernels.lif_step(v, i.astype(np.float64))
    with pytest.raises(TypeError, match=r"^v: .*2-D"):
        kernels.lif_step(np.zeros((2, 2), np.int16), i)
    with pytest.raises(TypeError, match=r"^v: .*type list"):
        kernels.lif_step([0, 0, 0, 0], i)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^v: "):
        kernels.lif_step(v.astype(">i2"), i)  # byte-swapped: not native int16
    with pytest.raises(TypeError, match=r"^out: .*bool"):
        kernels.lif_step(v, i, out=np.zeros(4, np.int8))


def test_value_errors_name_the_argument_and_leave_state_untouched():
    v = np.full(4, 1000, np.int16)
    i = np.full(4, 100, np.int16)
    with pytest.raises(ValueError, match=r"^i_syn: expected length 4, got 3"):
        kernels.lif_step(v, i[:3])
    with pytest.raises(ValueError, match=r"^out: expected length 4, got 5"):
        kernels.lif_step(v, i, out=np.zeros(5, np.bool_))
    with pytest.raises(ValueError, match=r"^leak: expected an integer in \[-32768, 32767\]"):
        kernels.lif_step(v, i, leak=40000)
    with pytest.raises(ValueError, match=r"^threshold: "):
        kernels.lif_step(v, i, threshold=-40000)
    with pytest.raises(ValueError, match=r"^threads: expected a positive integer"):
        kernels.lif_step(v, i, threads=0)
    np.testing.assert_array_equal(v, 1000)


def test_layout_writability_and_aliasing_are_refused_not_copied():
    big = np.zeros(8, np.int16)
    i = np.zeros(4, np.int16)
    with pytest.raises(ValueError, match=r"^v: expected a contiguous array"):
        kernels.lif_step(big[::2], i)
    ro = np.zeros(4, np.int16)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"^v: array is read-only"):
        kernels.lif_step(ro, i)
    # Read-only inputs are fine.
    kernels.lif_step(np.zeros(4, np.int16), ro)
    misaligned = np.frombuffer(bytearray(9), dtype=np.int16, offset=1)
    with pytest.raises(ValueError, match=r"^i_syn: array data is not aligned"):
        kernels.lif_step(np.zeros(4, np.int16), misaligned)
    v = np.zeros(4, np.int16)
    with pytest.raises(ValueError, match=r"^i_syn: array shares memory"):
        kernels.lif_step(v, v)
    with pytest.raises(ValueError, match=r"^out: array shares memory"):
        kernels.lif_step(v, i, out=v.view(np.bool_)[:4])


def test_gil_is_released_while_a_kernel_runs():
    n = 10_000_000
    v = np.zeros(n, np.int16)
    i = np.ones(n, np.int16)
    out = np.empty(n, np.bool_)
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    old = sys.getswitchinterval()
    # A long switch interval: with the GIL held through the call, the spinning thread
    # could not run at all while the kernel computes.
    sys.setswitchinterval(0.2)
    t = threading.Thread(target=spin)
    t.start()
    try:
        progressed = []
        for _ in range(5):
            before = counter[0]
            kernels.lif_step(v, i, out=out, threads=1)
            progressed.append(counter[0] - before)
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert max(progressed) > 100, progressed


# --- float LIF -----------------------------------------------------------------------------


def assert_float_step(got, want, v_pre, v_th, rtol=1e-6, atol=1e-4):
    """Compare one step's states; a spike may differ only right at the threshold."""
    (gv, gi, gr, gs), (wv, wi, wr, ws) = got, want
    differ = gs != ws
    assert np.all(np.abs(v_pre[differ] - v_th) < 1e-3), "spike mismatch away from threshold"
    same = ~differ
    np.testing.assert_allclose(gv[same], wv[same], rtol=rtol, atol=atol)
    np.testing.assert_array_equal(gr[same], wr[same])
    np.testing.assert_allclose(gi, wi, rtol=rtol, atol=atol)


@SETTINGS
@given(
    n=st.integers(1, 2500),
    seed=st.integers(0, 2**32 - 1),
    tau_syn=st.sampled_from([0.5, 2.0, 10.0]),
    t_ref=st.sampled_from([0.0, 0.1, 2.0]),
    i_e=st.sampled_from([0.0, 300.0, 450.0]),
    threads=st.sampled_from([1, 2]),
    indices=st.booleans(),
)
def test_lif_float_matches_nest_order_reference(n, seed, tau_syn, t_ref, i_e, threads, indices):
    rng = np.random.default_rng(seed)
    p = kernels.LifFloatParams(tau_syn=tau_syn, t_ref=t_ref, i_e=i_e)
    v = rng.uniform(-75, -54, n).astype(np.float32)
    i_syn = rng.uniform(-500, 1500, n).astype(np.float32)
    refr = rng.integers(-1, 5, n).astype(np.int32)
    for _ in range(15):
        i_in = rng.normal(0, 300, n).astype(np.float32)
        want = lif_float_ref(v, i_syn, refr, i_in, p)
        if indices:
            idx = kernels.lif_float_step(v, i_syn, refr, i_in, p, spikes="indices", threads=threads)
            s = np.zeros(n, np.bool_)
            s[idx] = True
            assert np.all(np.diff(idx.astype(np.int64)) > 0)
        else:
            s = kernels.lif_float_step(v, i_syn, refr, i_in, p, threads=threads)
        assert_float_step((v, i_syn, refr, s), want[:4], want[4], p.v_th)
        # Continue from the kernel's state, so one near-threshold tie cannot cascade.


def test_lif_float_constant_current_fires_at_the_analytic_period():
    # Rheobase is c_m * (v_th - e_l) / tau_m = 375 pA. With 500 pA the potential reaches
    # threshold after tau_m * ln(500 / 125) = 13.86 ms: step 139 at dt = 0.1, then
    # 20 refractory steps and 139 integration steps per period.
    p = kernels.LifFloatParams(i_e=500.0)
    v = np.full(3, -70.0, np.float32)
    i_syn = np.zeros(3, np.float32)
    refr = np.zeros(3, np.int32)
    steps = [t for t in range(1, 700) if kernels.lif_float_step(v, i_syn, refr, None, p)[0]]
    assert steps[:4] == [139, 298, 457, 616]


def test_lif_float_scalar_input_and_default_params():
    v = np.full(2, -70.0, np.float32)
    i_syn = np.zeros(2, np.float32)
    refr = np.zeros(2, np.int32)
    kernels.lif_float_step(v, i_syn, refr, 100.0)
    np.testing.assert_array_equal(i_syn, [100.0, 100.0])
    np.testing.assert_array_equal(v, [-70.0, -70.0])
    kernels.lif_float_step(v, i_syn, refr)
    p11, p21, _, _ = nest_propagators(kernels.LifFloatParams())
    np.testing.assert_allclose(v, -70.0 + 100.0 * p21, rtol=1e-6)
    np.testing.assert_allclose(i_syn, 100.0 * p11, rtol=1e-6)


def test_lif_float_equal_time_constants_use_the_limit():
    p = kernels.LifFloatParams(tau_syn=10.0)
    v = np.array([-70.0], np.float32)
    i_syn = np.array([1000.0], np.float32)
    kernels.lif_float_step(v, i_syn, np.zeros(1, np.int32), None, p)
    np.testing.assert_allclose(v + 70.0, 1000.0 * 0.1 / 250.0 * np.exp(-0.01), rtol=1e-5)


def test_lif_float_errors():
    v, i, r = np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)
    with pytest.raises(TypeError, match=r"^refractory: .*int32"):
        kernels.lif_float_step(v, i, r.astype(np.int64))
    with pytest.raises(TypeError, match=r"^v: .*float32.*float64"):
        kernels.lif_float_step(v.astype(np.float64), i, r)
    with pytest.raises(ValueError, match=r"^i_in: expected length 3, got 2"):
        kernels.lif_float_step(v, i, r, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=r"^i_in: expected a float or a 1-D numpy array"):
        kernels.lif_float_step(v, i, r, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tau_m: expected a finite number > 0"):
        kernels.lif_float_step(v, i, r, None, kernels.LifFloatParams(tau_m=0.0))
    with pytest.raises(TypeError, match=r"^c_m: expected a float, got an object of type str"):
        kernels.lif_float_step(v, i, r, None, kernels.LifFloatParams(c_m="250"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^v_reset: expected a value below v_th"):
        kernels.lif_float_step(v, i, r, None, kernels.LifFloatParams(v_reset=-50.0))
    with pytest.raises(ValueError, match=r"^i_syn: array shares memory"):
        kernels.lif_float_step(v, v, r)


# --- Izhikevich ------------------------------------------------------------------------------


@SETTINGS
@given(
    n=st.integers(1, 2500),
    seed=st.integers(0, 2**32 - 1),
    per_neuron=st.tuples(*[st.booleans()] * 5),
    dt=st.sampled_from([0.25, 0.5, 1.0]),
    threads=st.sampled_from([1, 3]),
    indices=st.booleans(),
)
def test_izhikevich_matches_reference(n, seed, per_neuron, dt, threads, indices):
    rng = np.random.default_rng(seed)
    # Izhikevich (2003)'s network: excitatory and inhibitory cells with random r.
    r = rng.random(n).astype(np.float32)
    exc = rng.random(n) < 0.8
    arrays = {
        "a": np.where(exc, 0.02, 0.02 + 0.08 * r).astype(np.float32),
        "b": np.where(exc, 0.2, 0.25 - 0.05 * r).astype(np.float32),
        "c": np.where(exc, -65 + 15 * r**2, -65.0).astype(np.float32),
        "d": np.where(exc, 8 - 6 * r**2, 2.0).astype(np.float32),
    }
    scalars = {"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0}
    chosen = {k: arrays[k] if per_neuron[j] else scalars[k] for j, k in enumerate("abcd")}
    p = kernels.IzhikevichParams(dt=dt, **chosen)
    ref_params = {k: np.float32(x) if np.isscalar(x) else x for k, x in chosen.items()}
    v = rng.uniform(-80, 25, n).astype(np.float32)
    u = (ref_params["b"] * v).astype(np.float32)
    for _ in range(10):
        i_in = (rng.normal(0, 5, n) * 2).astype(np.float32) if per_neuron[4] else 7.5
        wv, wu, ws, v_pre = izhikevich_ref(
            v, u, np.float32(i_in) if np.isscalar(i_in) else i_in, dt=dt, **ref_params
        )
        if indices:
            idx = kernels.izhikevich_step(v, u, i_in, p, spikes="indices", threads=threads)
            s = np.zeros(n, np.bool_)
            s[idx] = True
        else:
            s = kernels.izhikevich_step(v, u, i_in, p, threads=threads)
        differ = s != ws
        assert np.all(np.abs(v_pre[differ] - 30.0) < 1e-3)
        np.testing.assert_allclose(v[~differ], wv[~differ], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(u[~differ], wu[~differ], rtol=1e-6, atol=1e-4)


def test_izhikevich_regular_spiking_adapts():
    v = np.array([-65.0], np.float32)
    u = np.array([-13.0], np.float32)
    p = kernels.IzhikevichParams(dt=0.5)
    spikes = [t for t in range(2000) if kernels.izhikevich_step(v, u, 10.0, p)[0]]
    assert len(spikes) > 5
    isi = np.diff(spikes)
    assert isi[0] < isi[-1]


def test_izhikevich_errors():
    v, u = np.zeros(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(TypeError, match=r"^a: expected a float or a 1-D numpy array.*float64"):
        kernels.izhikevich_step(v, u, 0.0, kernels.IzhikevichParams(a=np.zeros(3)))
    with pytest.raises(ValueError, match=r"^d: expected length 3, got 4"):
        kernels.izhikevich_step(v, u, 0.0, kernels.IzhikevichParams(d=np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"^dt: expected a finite number > 0"):
        kernels.izhikevich_step(v, u, 0.0, kernels.IzhikevichParams(dt=-1.0))
    with pytest.raises(TypeError, match=r"^v_peak: expected a float, got an object of type"):
        kernels.izhikevich_step(v, u, 0.0, kernels.IzhikevichParams(v_peak=None))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^u: expected length 3, got 2"):
        kernels.izhikevich_step(v, u[:2], 0.0)


# --- spikes ------------------------------------------------------------------------------------


@SETTINGS
@given(mask=hnp.arrays(np.bool_, st.integers(0, 5000)))
def test_spike_forms_round_trip(mask):
    idx = kernels.spikes_to_indices(mask)
    assert idx.dtype == np.uint32
    np.testing.assert_array_equal(idx, np.flatnonzero(mask))
    back = kernels.indices_to_spikes(idx, mask.size)
    np.testing.assert_array_equal(back, mask)


def test_indices_to_spikes_checks_range_before_writing():
    out = np.ones(4, np.bool_)
    kernels.indices_to_spikes(np.array([3, 0, 3], np.uint32), 4, out=out)
    np.testing.assert_array_equal(out, [True, False, False, True])
    with pytest.raises(ValueError, match=r"^indices: index 4 at position 1 is out of range"):
        kernels.indices_to_spikes(np.array([0, 4], np.uint32), 4, out=out)
    np.testing.assert_array_equal(out, [True, False, False, True])
    with pytest.raises(TypeError, match=r"^indices: .*uint32.*int64"):
        kernels.indices_to_spikes(np.array([0, 1]), 4)
