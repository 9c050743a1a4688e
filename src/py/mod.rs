//! The PyO3 binding layer: argument checking, GIL release, conversion. No logic of its own.

mod args;
mod build_info;
mod codec;
mod comm;
mod config;
mod dispatch;
mod engine;
mod errors;
mod handle;
pub mod kernels;
mod metrics;
pub(crate) mod runtime;

use pyo3::prelude::*;

pub(crate) use runtime::{detach, shutting_down};

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    runtime::install_logger(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(runtime::_interpreter_exiting, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch::testing::_panic_on_payload, m)?)?;
    build_info::register(m)?;
    config::register(m)?;
    comm::register(m)?;
    kernels::register(m)?;
    engine::register(m)?;
    Ok(())
}
