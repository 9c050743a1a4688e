//! The one place where errors become Python exceptions.
//!
//! Core errors ([`Error`], [`KernelError`]) convert with `?` through the `From` impls
//! below; the binding layer's own argument checks build an [`Error`] too
//! ([`invalid_type`], [`invalid_value`]), so every exception raised from Rust is chosen
//! by [`to_py`]. Run-time conditions raise the classes of `evospikenet.errors` (defined
//! in Python, where each can also derive from the built-in exception callers caught
//! before it existed); a wrong argument raises the built-in `TypeError` or `ValueError`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::error::Error;
use crate::kernels::KernelError;

pyo3::import_exception!(evospikenet.errors, ConfigError);
pyo3::import_exception!(evospikenet.errors, KeyExchangeError);
pyo3::import_exception!(evospikenet.errors, CommunicatorClosedError);
pyo3::import_exception!(evospikenet.errors, RemoteHandlerError);
pyo3::import_exception!(evospikenet.errors, DeadlineExceededError);
pyo3::import_exception!(evospikenet.errors, TransportError);

/// The Python exception for `err`. The message is the error's `Display`, which never
/// holds key material (see [`Error`]).
pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Config(_) => ConfigError::new_err(msg),
        Error::KeyExchange(_) => KeyExchangeError::new_err(msg),
        Error::Closed(_) => CommunicatorClosedError::new_err(msg),
        Error::Remote(_) => RemoteHandlerError::new_err(msg),
        Error::Timeout(_) => DeadlineExceededError::new_err(msg),
        Error::Transport(_) => TransportError::new_err(msg),
        Error::InvalidType(_) | Error::Encode(_) => PyTypeError::new_err(msg),
        Error::InvalidArgument(_) | Error::Decode(_) => PyValueError::new_err(msg),
        // Receive-side failures are dropped and counted, never raised to a caller; should
        // one surface, it stays as detail-free as its message.
        Error::Authentication | Error::Replay | Error::NoKey | Error::NoSession(_) => {
            PyValueError::new_err(msg)
        }
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        to_py(err)
    }
}

/// Every [`KernelError`] is about a value (a length, an index, a parameter).
impl From<KernelError> for PyErr {
    fn from(err: KernelError) -> PyErr {
        to_py(Error::InvalidArgument(err.to_string()))
    }
}

/// `TypeError`: an argument of a kind or type the call cannot take.
pub fn invalid_type(msg: impl Into<String>) -> PyErr {
    to_py(Error::InvalidType(msg.into()))
}

/// `ValueError`: an argument of the right type with a value the call cannot take.
pub fn invalid_value(msg: impl Into<String>) -> PyErr {
    to_py(Error::InvalidArgument(msg.into()))
}

/// `CommunicatorClosedError`.
pub fn closed() -> PyErr {
    to_py(Error::Closed("communicator"))
}

/// `queue.Empty`, as `queue.Queue.get` raises it (the class is imported once).
pub fn queue_empty(py: Python<'_>) -> PyErr {
    static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match EMPTY.import(py, "queue", "Empty") {
        Ok(cls) => PyErr::from_type(cls.clone(), ()),
        Err(e) => e,
    }
}

/// Engine errors: a bad network or argument is a `ValueError`; spikes that never came
/// from a peer are a `RuntimeError` naming the region and the step.
pub fn engine_error(err: crate::engine::EngineError) -> PyErr {
    use crate::engine::EngineError;
    match err {
        EngineError::Network(_) | EngineError::Argument(_) => invalid_value(err.to_string()),
        EngineError::MissingSpikes { .. } => {
            pyo3::exceptions::PyRuntimeError::new_err(err.to_string())
        }
        EngineError::Timeout(_) => pyo3::exceptions::PyTimeoutError::new_err(err.to_string()),
    }
}
