//! Python arguments to Rust values: the checks shared by the binding classes. Errors
//! name the argument and what it expects, never echo a secret.

use std::time::Duration;

use pyo3::prelude::*;

use crate::compress::Compression;
use crate::crypto::handshake::{parse_public_key, parse_public_key_hex, PUBLIC_KEY_LEN};
use crate::error::Result;
use crate::py::errors::{invalid_type, invalid_value};

pub(crate) fn check_callable(py: Python<'_>, f: &Py<PyAny>, name: &str) -> PyResult<()> {
    if f.bind(py).is_callable() {
        Ok(())
    } else {
        Err(invalid_type(format!("{name} must be callable")))
    }
}

/// `publish(compress=...)`: `None` the configuration's default, `True` that default or
/// zstd, `False` none, or an algorithm's name.
pub(crate) fn compression_arg(
    arg: Option<&Bound<'_, PyAny>>,
    default: Option<Compression>,
) -> PyResult<Option<Compression>> {
    let Some(arg) = arg.filter(|a| !a.is_none()) else {
        return Ok(default);
    };
    if let Ok(on) = arg.extract::<bool>() {
        return Ok(on.then(|| default.unwrap_or(Compression::DEFAULT)));
    }
    if let Ok(name) = arg.extract::<String>() {
        return name
            .parse::<Compression>()
            .map(Some)
            .map_err(|e| invalid_value(format!("compress: {e}")));
    }
    Err(invalid_type(
        "compress must be None, True, False, \"zstd\" or \"lz4\"",
    ))
}

pub(crate) fn timeout_arg(name: &str, t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(invalid_value(format!(
            "{name} must be a non-negative number of seconds or None"
        ))),
    }
}

/// `complete_key_exchange(peer_public_key)`: 32 bytes or 64 hex digits. The outer error
/// is the argument's type; the inner one, a malformed or unusable key (which the caller
/// reports as a failed key exchange).
pub(crate) fn public_key_arg(key: &Bound<'_, PyAny>) -> PyResult<Result<[u8; PUBLIC_KEY_LEN]>> {
    if let Ok(text) = key.extract::<String>() {
        Ok(parse_public_key_hex(&text))
    } else if let Ok(raw) = key.extract::<Vec<u8>>() {
        Ok(parse_public_key(&raw))
    } else {
        Err(invalid_type(
            "peer_public_key must be bytes (32) or a hex string (64 digits)",
        ))
    }
}
