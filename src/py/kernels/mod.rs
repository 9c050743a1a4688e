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
use pyo3::types::PyDict;

use crate::kernels::izhikevich::{Abcd, IzhikevichParams};
use crate::kernels::lif_float::LifFloatParams;
use crate::kernels::lif_int::LifIntParams;
use crate::kernels::{default_threads, Param, PARALLEL_MIN_LEN};

/// Adds the kernel functions and constants to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("KERNEL_PARALLEL_MIN_LEN", PARALLEL_MIN_LEN)?;
    m.add_function(wrap_pyfunction!(kernel_default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_defaults, m)?)?;
    neurons::register(m)?;
    synapses::register(m)
}

/// Number of threads `threads=None` uses for `n` neurons: 1 below
/// `KERNEL_PARALLEL_MIN_LEN`, otherwise the size of the kernel thread pool.
#[pyfunction]
fn kernel_default_threads(n: usize) -> usize {
    default_threads(n)
}

/// The models' default parameters, from the core's `Default` impls: the one place they
/// are written. `{"lif_int": {...}, "lif_float": {...}, "izhikevich": {...}}`.
#[pyfunction]
fn kernel_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let LifIntParams {
        leak,
        threshold,
        reset,
    } = LifIntParams::default();
    let lif_int = PyDict::new(py);
    for (name, value) in [("leak", leak), ("threshold", threshold), ("reset", reset)] {
        lif_int.set_item(name, value)?;
    }

    let p = LifFloatParams::default();
    let lif_float = PyDict::new(py);
    for (name, value) in [
        ("tau_m", p.tau_m),
        ("tau_syn", p.tau_syn),
        ("c_m", p.c_m),
        ("dt", p.dt),
        ("e_l", p.e_l),
        ("v_th", p.v_th),
        ("v_reset", p.v_reset),
        ("t_ref", p.t_ref),
        ("i_e", p.i_e),
    ] {
        lif_float.set_item(name, value)?;
    }

    let IzhikevichParams { dt, v_peak } = IzhikevichParams::default();
    let Abcd { a, b, c, d } = Abcd::default();
    let izhikevich = PyDict::new(py);
    for (name, value) in [("a", a), ("b", b), ("c", c), ("d", d)] {
        let Param::Scalar(x) = value else {
            unreachable!("the default a, b, c, d are scalars")
        };
        izhikevich.set_item(name, decimal(x))?;
    }
    izhikevich.set_item("dt", decimal(dt))?;
    izhikevich.set_item("v_peak", decimal(v_peak))?;

    let all = PyDict::new(py);
    all.set_item("lif_int", lif_int)?;
    all.set_item("lif_float", lif_float)?;
    all.set_item("izhikevich", izhikevich)?;
    Ok(all)
}

/// An `f32` as the shortest decimal that reads back as it (`0.02`, not
/// `0.019999999552965164`): what a user would write, and the same `f32` once passed in.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().expect("an f32's decimal form parses")
}
