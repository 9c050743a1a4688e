//! The one place where core errors become Python exceptions.

use pyo3::exceptions::{
    PyConnectionError, PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::PyErr;

use crate::error::Error;

pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Config(_) | Error::InvalidArgument(_) | Error::Decode(_) => {
            PyValueError::new_err(msg)
        }
        Error::Encode(_) => PyTypeError::new_err(msg),
        Error::Timeout(_) => PyTimeoutError::new_err(msg),
        Error::Transport(_) => PyConnectionError::new_err(msg),
        Error::Closed(_) | Error::Remote(_) => PyRuntimeError::new_err(msg),
        Error::Authentication | Error::Replay | Error::NoKey => PyValueError::new_err(msg),
    }
}

/// `.map_err(to_py)` shorthand.
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
