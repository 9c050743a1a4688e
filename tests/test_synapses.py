"""Synaptic propagation (CSR projections) against an independent sequential reference
and scipy's matrix product, and its argument checking."""

from __future__ import annotations

import numpy as np
import pytest
from evospikenet import kernels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def propagate_ref(spikes, indptr, indices, data, target):
    """Sequential scatter in spike order, then row order; saturating for integers."""
    out = target.astype(np.float64 if target.dtype.kind == "f" else np.int64)
    info = np.iinfo(target.dtype) if target.dtype.kind == "i" else None
    for s in spikes:
        for k in range(indptr[s], indptr[s + 1]):
            j = indices[k]
            if info is None:
                out[j] = np.float32(out[j]) + np.float32(data[k])
            else:
                out[j] = min(max(out[j] + int(data[k]), info.min), info.max)
    return out.astype(target.dtype)


# --- synapses -----------------------------------------------------------------------------------

COMBOS = [
    (np.int16, np.int16),
    (np.int16, np.int32),
    (np.int32, np.int32),
    (np.float32, np.float32),
]


@st.composite
def csr_and_spikes(draw):
    n_pre = draw(st.integers(1, 60))
    n_post = draw(st.integers(1, 60))
    wdt, tdt = draw(st.sampled_from(COMBOS))
    ix = draw(st.sampled_from([np.int32, np.int64]))
    lens = draw(hnp.arrays(np.int64, n_pre, elements=st.integers(0, 12)))
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(ix)
    nnz = int(indptr[-1])
    indices = draw(hnp.arrays(ix, nnz, elements=st.integers(0, n_post - 1)))
    if np.dtype(wdt).kind == "f":
        elems = st.floats(-100, 100, width=32)
    else:
        info = np.iinfo(wdt)
        elems = st.integers(max(info.min, -32768), min(info.max, 32767))
    data = draw(hnp.arrays(wdt, nnz, elements=elems))
    spikes = draw(hnp.arrays(np.uint32, st.integers(0, 40), elements=st.integers(0, n_pre - 1)))
    if np.dtype(tdt).kind == "f":
        telems = st.floats(-1000, 1000, width=32)
    else:
        info = np.iinfo(tdt)
        telems = st.integers(info.min, info.max)
    target = draw(hnp.arrays(tdt, n_post, elements=telems))
    return kernels.CsrMatrix(indptr, indices, data, (n_pre, n_post)), spikes, target


@SETTINGS
@given(case=csr_and_spikes())
def test_propagate_matches_sequential_reference(case):
    w, spikes, target = case
    want = propagate_ref(spikes, w.indptr, w.indices, w.data, target)
    got = target.copy()
    events = kernels.propagate(spikes, w, got)
    assert events == int(np.sum(np.diff(w.indptr.astype(np.int64))[spikes.astype(np.int64)]))
    if target.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-3)
    else:
        np.testing.assert_array_equal(got, want)


def test_propagate_matches_scipy_matrix_product():
    sparse = pytest.importorskip("scipy.sparse")
    w = kernels.random_csr(2000, 3000, 50, weight=(-20, 40), dtype=np.int16, seed=3)
    rng = np.random.default_rng(4)
    spikes = np.sort(rng.choice(2000, 150, replace=False)).astype(np.uint32)
    target = np.zeros(3000, np.int32)
    kernels.propagate(spikes, w, target)
    counts = np.bincount(spikes, minlength=2000).astype(np.int64)
    m = sparse.csr_array((w.data.astype(np.int64), w.indices, w.indptr), shape=w.shape)
    np.testing.assert_array_equal(target, m.T @ counts)

    # A scipy matrix is accepted as is, and float weights match too.
    wf = sparse.random_array((500, 400), density=0.05, format="csr", dtype=np.float32, rng=5)
    tf = np.zeros(400, np.float32)
    kernels.propagate(spikes[spikes < 500], wf, tf)
    counts = np.bincount(spikes[spikes < 500], minlength=500).astype(np.float32)
    np.testing.assert_allclose(tf, wf.T @ counts, rtol=1e-5, atol=1e-5)


def test_incoming_spikes_from_another_node_through_a_projection():
    # Node A steps its population and sends the indices as little-endian bytes; node B
    # decodes them without a copy and applies A->B's projection to its own inputs.
    rng = np.random.default_rng(6)
    v_a = rng.integers(0, 1100, 5000).astype(np.int16)
    sent = kernels.lif_step(v_a, rng.integers(0, 300, 5000).astype(np.int16), spikes="indices")
    assert 0 < sent.size < 5000
    wire = sent.astype("<u4").tobytes()
    received = np.frombuffer(wire, dtype=np.uint32)  # read-only view of the message
    projection = kernels.random_csr(5000, 800, 20, weight=(1, 9), dtype=np.int16, seed=7)
    i_b = np.zeros(800, np.int32)
    events = kernels.propagate(received, projection, i_b)
    assert events == 20 * sent.size
    np.testing.assert_array_equal(
        i_b,
        propagate_ref(
            sent, projection.indptr, projection.indices, projection.data, np.zeros(800, np.int32)
        ),
    )
    # Unsorted, repeated indices are applied once per occurrence.
    again = np.zeros(800, np.int32)
    kernels.propagate(np.concatenate([received[::-1], received]), projection, again)
    np.testing.assert_array_equal(again, 2 * i_b)


def test_propagate_refuses_bad_spikes_and_rows_before_writing():
    sparse = pytest.importorskip("scipy.sparse")
    w = kernels.random_csr(10, 8, 3, weight=1.0, seed=0)
    target = np.zeros(8, np.float32)
    with pytest.raises(
        ValueError, match=r"^spikes: index 10 at position 1 is out of range \[0, 10\)"
    ):
        kernels.propagate(np.array([0, 10], np.uint32), w, target)
    with pytest.raises(TypeError, match=r"^spikes: .*uint32.*int64"):
        kernels.propagate(np.array([0, 1]), w, target)
    with pytest.raises(TypeError, match=r"^target: .*int16, int32 or float32.*float64"):
        kernels.propagate(np.array([0], np.uint32), w, np.zeros(8, np.float64))
    with pytest.raises(TypeError, match=r"^data: .*int16 or int32 \(for an int32 target\)"):
        kernels.propagate(np.array([0], np.uint32), w, np.zeros(8, np.int32))
    with pytest.raises(TypeError, match=r"^data: .*int16 \(for an int16 target\)"):
        kernels.propagate(np.array([0], np.uint32), w, np.zeros(8, np.int16))
    with pytest.raises(ValueError, match=r"^target: expected length 8, got 7"):
        kernels.propagate(np.array([0], np.uint32), w, np.zeros(7, np.float32))
    with pytest.raises(TypeError, match=r"CSR"):
        kernels.propagate(np.array([0], np.uint32), w.to_scipy().tocsc(), target)

    # A scipy matrix corrupted after construction: the rows used are checked.
    m = w.to_scipy()
    m.indices[4] = 8
    with pytest.raises(ValueError, match=r"^indices: index 8 at position 4 is out of range"):
        kernels.propagate(np.array([0, 1], np.uint32), m, target)
    m.indices[4] = -1
    with pytest.raises(ValueError, match=r"^indices: index -1"):
        kernels.propagate(np.array([1], np.uint32), m, target)
    m.indptr[3] = 100
    with pytest.raises(ValueError, match=r"^indptr: invalid CSR structure: row 2"):
        kernels.propagate(np.array([2], np.uint32), m, target)
    np.testing.assert_array_equal(target, 0)
    # Rows not used are not looked at.
    assert kernels.propagate(np.array([5], np.uint32), m, target) == 3
    assert sparse is not None


def test_csr_matrix_validates_its_structure():
    ip = np.array([0, 2, 3], np.int32)
    ix = np.array([0, 1, 1], np.int32)
    d = np.ones(3, np.float32)
    kernels.CsrMatrix(ip, ix, d, (2, 2))
    with pytest.raises(ValueError, match=r"^indptr: invalid CSR structure: indptr decreases"):
        kernels.CsrMatrix(np.array([0, 3, 2], np.int32), ix, d, (2, 2))
    with pytest.raises(ValueError, match=r"^indptr: invalid CSR structure: indptr\[0\] is 1"):
        kernels.CsrMatrix(np.array([1, 2, 3], np.int32), ix, d, (2, 2))
    with pytest.raises(ValueError, match=r"^indptr: invalid CSR structure: indptr ends at 4"):
        kernels.CsrMatrix(np.array([0, 2, 4], np.int32), ix, d, (2, 2))
    with pytest.raises(
        ValueError, match=r"^indices: index 1 at position 1 is out of range \[0, 1\)"
    ):
        kernels.CsrMatrix(ip, ix, d, (2, 1))
    with pytest.raises(ValueError, match=r"^indptr: expected length 4, got 3"):
        kernels.CsrMatrix(ip, ix, d, (3, 2))
    with pytest.raises(ValueError, match=r"^data: expected length 3, got 2"):
        kernels.CsrMatrix(ip, ix, d[:2], (2, 2))
    with pytest.raises(TypeError, match=r"^indices: .*int32 \(the dtype of indptr\)"):
        kernels.CsrMatrix(ip, ix.astype(np.int64), d, (2, 2))
    with pytest.raises(TypeError, match=r"^data: .*int16, int32 or float32.*float64"):
        kernels.CsrMatrix(ip, ix, d.astype(np.float64), (2, 2))


def test_random_csr_is_reproducible_and_shares_memory_with_scipy():
    a = kernels.random_csr(300, 200, 7, weight=(-5, 5), dtype=np.int16, seed=11)
    b = kernels.random_csr(300, 200, 7, weight=(-5, 5), dtype=np.int16, seed=11)
    c = kernels.random_csr(300, 200, 7, weight=(-5, 5), dtype=np.int16, seed=12)
    assert a.shape == (300, 200) and a.nnz == 2100
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.indices, c.indices)
    assert a.data.min() >= -5 and a.data.max() <= 5
    np.testing.assert_array_equal(np.diff(a.indptr), 7)
    for r in range(300):
        row = a.indices[a.indptr[r] : a.indptr[r + 1]]
        assert np.all(np.diff(row) >= 0)
    pytest.importorskip("scipy.sparse")
    m = a.to_scipy()
    assert np.shares_memory(m.indices, a.indices)
    back = kernels.CsrMatrix.from_scipy(m)
    assert np.shares_memory(back.data, a.data)
    wide = kernels.random_csr(10, 5, 0, index_dtype=np.int64)
    assert wide.nnz == 0 and wide.indptr.dtype == np.int64
    with pytest.raises(TypeError, match=r"^dtype: "):
        kernels.random_csr(2, 2, 1, dtype=np.float64)
