//! What this build links: the versions `evospikenet audit` checks against its table.

use pyo3::prelude::*;

/// `{crate: version}` of the crypto and transport crates compiled in (from Cargo.lock,
/// recorded by build.rs).
#[pyfunction]
fn crypto_backends() -> std::collections::BTreeMap<&'static str, &'static str> {
    [
        ("ring", env!("EVOSPIKENET_VERSION_RING")),
        ("x25519-dalek", env!("EVOSPIKENET_VERSION_X25519_DALEK")),
        (
            "curve25519-dalek",
            env!("EVOSPIKENET_VERSION_CURVE25519_DALEK"),
        ),
        ("zenoh", env!("EVOSPIKENET_VERSION_ZENOH")),
    ]
    .into_iter()
    .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crypto_backends, m)?)
}
