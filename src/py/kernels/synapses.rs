//! The synapse and spike-format bindings: CSR propagation and validation, and the
//! conversions between spike masks and index lists.

use numpy::prelude::*;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;

use super::args::{borrow_ro, borrow_rw, cast, ro, rw, slice, slice_mut, type_err, CsrIndexArgs};
use crate::kernels::spikes::{indices_to_mask, mask_to_indices};
use crate::kernels::synapses::{propagate, Accumulate, Csr, CsrIndex};
use crate::py::detach;

fn propagate_with<Ix, W, T>(
    py: Python<'_>,
    spikes: &[u32],
    indptr: &[Ix],
    indices: &[Ix],
    data: &[W],
    shape: (usize, usize),
    target: &mut [T],
) -> PyResult<u64>
where
    Ix: CsrIndex,
    W: Copy + Sync,
    T: Accumulate<W>,
{
    let csr = Csr::new(indptr, indices, data, shape.0, shape.1)?;
    Ok(detach(py, move || propagate(spikes, &csr, target))?)
}

fn propagate_typed<'py, W, T>(
    py: Python<'py>,
    spikes: &[u32],
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyArray1<W>>,
    shape: (usize, usize),
    target: &mut [T],
) -> PyResult<u64>
where
    W: Element + Copy + Sync,
    T: Accumulate<W>,
{
    let data = borrow_ro(data, "data")?;
    let data = slice(&data, "data")?;
    match CsrIndexArgs::extract(indptr, indices)? {
        CsrIndexArgs::I32(p, i) => propagate_with(
            py,
            spikes,
            slice(&p, "indptr")?,
            slice(&i, "indices")?,
            data,
            shape,
            target,
        ),
        CsrIndexArgs::I64(p, i) => propagate_with(
            py,
            spikes,
            slice(&p, "indptr")?,
            slice(&i, "indices")?,
            data,
            shape,
            target,
        ),
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
        let t = slice_mut(&mut t, "target")?;
        let d = cast::<i16>(data, "data", "int16 (for an int16 target)")?;
        propagate_typed(py, spikes, indptr, indices, d, shape, t)
    } else if let Ok(t) = target.cast::<PyArray1<i32>>() {
        let mut t = borrow_rw(t, "target")?;
        let t = slice_mut(&mut t, "target")?;
        if let Ok(d) = data.cast::<PyArray1<i16>>() {
            propagate_typed(py, spikes, indptr, indices, d, shape, t)
        } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
            propagate_typed(py, spikes, indptr, indices, d, shape, t)
        } else {
            Err(type_err(
                "data",
                "int16 or int32 (for an int32 target)",
                data,
            ))
        }
    } else if let Ok(t) = target.cast::<PyArray1<f32>>() {
        let mut t = borrow_rw(t, "target")?;
        let t = slice_mut(&mut t, "target")?;
        let d = cast::<f32>(data, "data", "float32 (for a float32 target)")?;
        propagate_typed(py, spikes, indptr, indices, d, shape, t)
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
    fn run<Ix: CsrIndex, W: Copy + Sync>(
        py: Python<'_>,
        indptr: &[Ix],
        indices: &[Ix],
        data: &[W],
        shape: (usize, usize),
    ) -> PyResult<()> {
        let csr = Csr::new(indptr, indices, data, shape.0, shape.1)?;
        Ok(detach(py, move || csr.validate())?)
    }
    fn with_data<'py, W: Element + Copy + Sync>(
        py: Python<'py>,
        indptr: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        data: &Bound<'py, PyArray1<W>>,
        shape: (usize, usize),
    ) -> PyResult<()> {
        let data = borrow_ro(data, "data")?;
        let data = slice(&data, "data")?;
        match CsrIndexArgs::extract(indptr, indices)? {
            CsrIndexArgs::I32(p, i) => {
                run(py, slice(&p, "indptr")?, slice(&i, "indices")?, data, shape)
            }
            CsrIndexArgs::I64(p, i) => {
                run(py, slice(&p, "indptr")?, slice(&i, "indices")?, data, shape)
            }
        }
    }
    if let Ok(d) = data.cast::<PyArray1<i16>>() {
        with_data(py, indptr, indices, d, shape)
    } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
        with_data(py, indptr, indices, d, shape)
    } else if let Ok(d) = data.cast::<PyArray1<f32>>() {
        with_data(py, indptr, indices, d, shape)
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
