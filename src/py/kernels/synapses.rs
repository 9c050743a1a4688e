//! The synapse and spike-format bindings: CSR propagation and validation, and the
//! conversions between spike masks and index lists.

use numpy::prelude::*;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;

use super::args::{borrow_ro, borrow_rw, ro, rw, slice, slice_mut, type_err, CsrIndexArgs};
use crate::kernels::spikes::{indices_to_mask, mask_to_indices};
use crate::kernels::synapses::{propagate, Accumulate, Csr, CsrIndex};
use crate::py::detach;

/// What runs on a borrowed [`Csr`] of either index type.
trait OnCsr<W> {
    type Out;
    fn run<Ix: CsrIndex>(self, csr: Csr<'_, Ix, W>) -> PyResult<Self::Out>;
}

/// A CSR matrix argument, read from the attributes of the object passed (a
/// `CsrMatrix` or a scipy.sparse CSR matrix), before the dtype of the weights is known.
#[derive(FromPyObject)]
struct CsrArgs<'py> {
    #[pyo3(attribute)]
    indptr: Bound<'py, PyAny>,
    #[pyo3(attribute)]
    indices: Bound<'py, PyAny>,
    #[pyo3(attribute)]
    data: Bound<'py, PyAny>,
    #[pyo3(attribute)]
    shape: (usize, usize),
}

impl CsrArgs<'_> {
    /// If `data` holds weights of `W`: borrows `indptr` and `indices` (one index dtype for
    /// both) with `data` as a [`Csr`] and runs `f` on it. Otherwise hands `f` back, to be
    /// tried with another weight type.
    fn run_as<W: Element + Copy + Sync, F: OnCsr<W>>(&self, f: F) -> Result<PyResult<F::Out>, F> {
        let Ok(data) = self.data.cast::<PyArray1<W>>() else {
            return Err(f);
        };
        Ok(self.borrowed(data, f))
    }

    fn borrowed<W: Element + Copy + Sync, F: OnCsr<W>>(
        &self,
        data: &Bound<'_, PyArray1<W>>,
        f: F,
    ) -> PyResult<F::Out> {
        let (n_pre, n_post) = self.shape;
        let data = borrow_ro(data, "data")?;
        let data = slice(&data, "data")?;
        match CsrIndexArgs::extract(&self.indptr, &self.indices)? {
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

/// A propagation tried with the weights as one dtype: the result, or the propagation
/// handed back when the weights are of another dtype.
type Tried<'a, 'py, T> = Result<PyResult<u64>, Propagate<'a, 'py, T>>;

/// Borrows `target` and runs `propagate` into it, which tries the weight dtypes this
/// target accumulates; `weights` names them for the error when none fits.
fn propagate_into<'py, T: Element>(
    py: Python<'py>,
    spikes: &[u32],
    target: &Bound<'py, PyArray1<T>>,
    (data, weights): (&Bound<'py, PyAny>, &str),
    propagate: impl for<'a> FnOnce(Propagate<'a, 'py, T>) -> Tried<'a, 'py, T>,
) -> PyResult<u64> {
    let mut t = borrow_rw(target, "target")?;
    let target = slice_mut(&mut t, "target")?;
    propagate(Propagate { py, spikes, target })
        .unwrap_or_else(|_| Err(type_err("data", weights, data)))
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
    weights: CsrArgs<'py>,
    target: &Bound<'py, PyAny>,
) -> PyResult<u64> {
    let spikes = ro::<u32>(spikes, "spikes", "uint32")?;
    let spikes = slice(&spikes, "spikes")?;
    let csr = &weights;
    let data = &weights.data;
    if let Ok(t) = target.cast::<PyArray1<i16>>() {
        let weights = (data, "int16 (for an int16 target)");
        propagate_into(py, spikes, t, weights, |op| csr.run_as::<i16, _>(op))
    } else if let Ok(t) = target.cast::<PyArray1<i32>>() {
        let weights = (data, "int16 or int32 (for an int32 target)");
        propagate_into(py, spikes, t, weights, |op| {
            csr.run_as::<i16, _>(op)
                .or_else(|op| csr.run_as::<i32, _>(op))
        })
    } else if let Ok(t) = target.cast::<PyArray1<f32>>() {
        let weights = (data, "float32 (for a float32 target)");
        propagate_into(py, spikes, t, weights, |op| csr.run_as::<f32, _>(op))
    } else {
        Err(type_err("target", "int16, int32 or float32", target))
    }
}

/// Checks a whole CSR matrix: lengths, `indptr` monotone from 0, column indices in range.
#[pyfunction]
fn kernel_validate_csr<'py>(py: Python<'py>, weights: CsrArgs<'py>) -> PyResult<()> {
    weights
        .run_as::<i16, _>(Validate(py))
        .or_else(|v| weights.run_as::<i32, _>(v))
        .or_else(|v| weights.run_as::<f32, _>(v))
        .unwrap_or_else(|_| Err(type_err("data", "int16, int32 or float32", &weights.data)))
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
