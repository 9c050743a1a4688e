//! Python bindings of the spike-update kernels.
//!
//! Thin by design: each function checks its arguments, borrows the caller's numpy
//! arrays in place, releases the GIL (through the crate's one `detach` helper) and calls
//! the pure kernel in [`crate::kernels`]. Nothing is converted or copied: an array of the
//! wrong dtype, layout or length is refused with an error that names the argument, rather
//! than silently copied (a copy of a state array would also mean the update is lost).
//!
//! Exceptions (chosen in `py::errors`): `TypeError` for an argument of the wrong kind or
//! dtype, `ValueError` for a right-typed argument whose length, layout, writability or
//! values are wrong. Every check happens before any state is written.
//!
//! `args` extracts arguments, `neurons` holds the models' step functions, `synapses` the
//! propagation and the spike-format conversions.

mod args;
mod neurons;
mod synapses;

use pyo3::prelude::*;

use crate::kernels::{default_threads, PARALLEL_MIN_LEN};

/// Adds the kernel functions and constants to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("KERNEL_PARALLEL_MIN_LEN", PARALLEL_MIN_LEN)?;
    m.add_function(wrap_pyfunction!(kernel_default_threads, m)?)?;
    neurons::register(m)?;
    synapses::register(m)
}

/// Number of threads `threads=None` uses for `n` neurons: 1 below
/// `KERNEL_PARALLEL_MIN_LEN`, otherwise the size of the kernel thread pool.
#[pyfunction]
fn kernel_default_threads(n: usize) -> usize {
    default_threads(n)
}
