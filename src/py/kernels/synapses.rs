//! The synapse and spike-format bindings: CSR propagation and validation, and the
//! conversions between spike masks and index lists.

use numpy::prelude::*;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;

use super::args::{borrow_ro, borrow_rw, cast, ro, rw, slice, slice_mut, type_err, CsrIndexArgs};
use crate::kernels::spikes::{indices_to_mask, mask_to_indices};
use crate::kernels::synapses::{propagate, Accumulate, Csr, CsrIndex};
use crate::py::detach;

/// What runs on a borrowed [`Csr`] of either index type.
trait OnCsr<W> {
    type Out;
    fn run<Ix: CsrIndex>(self, csr: Csr<'_, Ix, W>) -> PyResult<Self::Out>;
}

/// Borrows `indptr` and `indices` (one index dtype for both) with `data` as a [`Csr`] of
/// `shape`, and runs `f` on it.
fn with_csr<'py, W: Element + Copy + Sync, F: OnCsr<W>>(
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyArray1<W>>,
    (n_pre, n_post): (usize, usize),
    f: F,
) -> PyResult<F::Out> {
    let data = borrow_ro(data, "data")?;
    let data = slice(&data, "data")?;
    match CsrIndexArgs::extract(indptr, indices)? {
        CsrIndexArgs::I32(p, i) => {
            let (p, i) = (slice(&p, "indptr")?, slice(&i, "indices")?);
            f.run(Csr::new(p, i, data, n_pre, n_post)?)
        }
        CsrIndexArgs::I64(p, i) => {
            let (p, i) = (slice(&p, "indptr")?, slice(&i, "indices")?);
            f.run(Csr::new(p, i, data, n_pre, n_post)?)
        }
    }
}

/// Propagation of `spikes` into `target`, with the GIL released.
struct Propagate<'a, 'py, T> {
    py: Python<'py>,
    spikes: &'a [u32],
    target: &'a mut [T],
}

impl<W: Copy + Sync, T: Accumulate<W>> OnCsr<W> for Propagate<'_, '_, T> {
    type Out = u64;
    fn run<Ix: CsrIndex>(self, csr: Csr<'_, Ix, W>) -> PyResult<u64> {
        let Propagate { py, spikes, target } = self;
        Ok(detach(py, move || propagate(spikes, &csr, target))?)
    }
}

/// A full structural check, with the GIL released.
struct Validate<'py>(Python<'py>);

impl<W: Copy + Sync> OnCsr<W> for Validate<'_> {
    type Out = ();
    fn run<Ix: CsrIndex>(self, csr: Csr<'_, Ix, W>) -> PyResult<()> {
        Ok(detach(self.0, move || csr.validate())?)
    }
}

/// Adds the CSR rows of the neurons in `spikes` into `target`; returns the number of
/// synaptic events.
#[pyfunction]
fn kernel_propagate<'py>(
    py: Python<'py>,
    spikes: &Bound<'py, PyAny>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    shape: (usize, usize),
    target: &Bound<'py, PyAny>,
) -> PyResult<u64> {
    let spikes = ro::<u32>(spikes, "spikes", "uint32")?;
    let spikes = slice(&spikes, "spikes")?;
    if let Ok(t) = target.cast::<PyArray1<i16>>() {
        let mut t = borrow_rw(t, "target")?;
        let target = slice_mut(&mut t, "target")?;
        let d = cast::<i16>(data, "data", "int16 (for an int16 target)")?;
        with_csr(indptr, indices, d, shape, Propagate { py, spikes, target })
    } else if let Ok(t) = target.cast::<PyArray1<i32>>() {
        let mut t = borrow_rw(t, "target")?;
        let target = slice_mut(&mut t, "target")?;
        let op = Propagate { py, spikes, target };
        if let Ok(d) = data.cast::<PyArray1<i16>>() {
            with_csr(indptr, indices, d, shape, op)
        } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
            with_csr(indptr, indices, d, shape, op)
        } else {
            let expected = "int16 or int32 (for an int32 target)";
            Err(type_err("data", expected, data))
        }
    } else if let Ok(t) = target.cast::<PyArray1<f32>>() {
        let mut t = borrow_rw(t, "target")?;
        let target = slice_mut(&mut t, "target")?;
        let d = cast::<f32>(data, "data", "float32 (for a float32 target)")?;
        with_csr(indptr, indices, d, shape, Propagate { py, spikes, target })
    } else {
        Err(type_err("target", "int16, int32 or float32", target))
    }
}

/// Checks a whole CSR matrix: lengths, `indptr` monotone from 0, column indices in range.
#[pyfunction]
fn kernel_validate_csr<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    shape: (usize, usize),
) -> PyResult<()> {
    if let Ok(d) = data.cast::<PyArray1<i16>>() {
        with_csr(indptr, indices, d, shape, Validate(py))
    } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
        with_csr(indptr, indices, d, shape, Validate(py))
    } else if let Ok(d) = data.cast::<PyArray1<f32>>() {
        with_csr(indptr, indices, d, shape, Validate(py))
    } else {
        Err(type_err("data", "int16, int32 or float32", data))
    }
}

/// Sorted uint32 indices of the set entries of a bool mask.
#[pyfunction]
fn kernel_spikes_to_indices<'py>(
    py: Python<'py>,
    mask: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let mask = ro::<bool>(mask, "mask", "bool")?;
    let mask = slice(&mask, "mask")?;
    let idx = detach(py, move || mask_to_indices(mask))?;
    Ok(idx.into_pyarray(py))
}

/// Writes the bool mask of uint32 `indices` into `out` (cleared first).
#[pyfunction]
fn kernel_indices_to_spikes<'py>(
    py: Python<'py>,
    indices: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let indices = ro::<u32>(indices, "indices", "uint32")?;
    let indices = slice(&indices, "indices")?;
    let mut out = rw::<bool>(out, "out", "bool")?;
    let out = slice_mut(&mut out, "out")?;
    Ok(detach(py, move || indices_to_mask(indices, out))?)
}

/// Adds the synapse and spike-format functions to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_propagate, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_validate_csr, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_spikes_to_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_indices_to_spikes, m)?)
}
