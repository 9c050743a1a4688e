//! `ZenohConfig`: the Python face of `config::Config`.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};
use zeroize::Zeroizing;

use crate::config::{
    Config, KeyExchange, SessionMode, DEFAULT_NAMESPACE, DEFAULT_REKEY_AFTER_MESSAGES,
    DEFAULT_REKEY_AFTER_MS,
};
use crate::crypto::handshake::IdentityKey;
use crate::crypto::keys::Psk;
use crate::crypto::session::ReceiverPolicy;
use crate::py::errors::{invalid_type, invalid_value};

/// Configuration of a `ZenohCommunicator`. See the stub (`_native.pyi`) for the docs.
#[pyclass(name = "ZenohConfig", module = "evospikenet.zenoh_comm")]
#[derive(Clone)]
pub struct PyZenohConfig {
    pub inner: Config,
}

pub fn parse_psk(psk: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Psk>> {
    let Some(obj) = psk else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    // The Rust copies of the key are wiped once parsed (Python's own objects are the
    // caller's to manage).
    if let Ok(text) = obj.extract::<String>().map(Zeroizing::new) {
        return Ok(Some(Psk::from_hex(&text)?));
    }
    if let Ok(raw) = obj.extract::<Vec<u8>>().map(Zeroizing::new) {
        if !obj.is_instance_of::<pyo3::types::PyString>() {
            return Ok(Some(Psk::from_bytes(&raw)?));
        }
    }
    Err(invalid_type(
        "psk must be None, a 64-character hex string or 32 bytes",
    ))
}

fn endpoints(field: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if v.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(vec![s]);
    }
    v.extract::<Vec<String>>().map_err(|_| {
        invalid_type(format!(
            "{field} must be a list of endpoint strings such as [\"tcp/127.0.0.1:7447\"]"
        ))
    })
}

#[pymethods]
impl PyZenohConfig {
    #[new]
    // The numeric defaults are the core's (`Config::default()`), written nowhere else:
    // the stub shows them as `...`.
    #[pyo3(signature = (
        mode = "peer", connect = None, listen = None, namespace = DEFAULT_NAMESPACE,
        psk = None, *, multicast_scouting = false,
        freshness_window = seconds(ReceiverPolicy::default().freshness_ms),
        session_grace = seconds(ReceiverPolicy::default().session_grace_ms),
        key_exchange = "manual", identity_key = None, trusted_peers = None,
        rekey_after_messages = DEFAULT_REKEY_AFTER_MESSAGES,
        rekey_after_seconds = seconds(DEFAULT_REKEY_AFTER_MS)
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        mode: &str,
        connect: Option<&Bound<'_, PyAny>>,
        listen: Option<&Bound<'_, PyAny>>,
        namespace: &str,
        psk: Option<&Bound<'_, PyAny>>,
        multicast_scouting: bool,
        freshness_window: f64,
        session_grace: f64,
        key_exchange: &str,
        identity_key: Option<&str>,
        trusted_peers: Option<std::collections::BTreeMap<String, String>>,
        rekey_after_messages: u64,
        rekey_after_seconds: f64,
    ) -> PyResult<Self> {
        let mut inner = Config {
            mode: mode.parse::<SessionMode>()?,
            connect: endpoints("connect", connect)?,
            listen: endpoints("listen", listen)?,
            namespace: namespace.to_owned(),
            psk: parse_psk(psk)?,
            multicast_scouting,
            ..Config::default()
        };
        inner.policy.freshness_ms = seconds_to_ms("freshness_window", freshness_window)?;
        inner.policy.session_grace_ms = seconds_to_ms("session_grace", session_grace)?;
        inner.dh.key_exchange = key_exchange.parse::<KeyExchange>()?;
        if let Some(k) = identity_key {
            inner.dh.identity = Some(IdentityKey::from_hex(k)?);
        }
        for (peer, fp) in trusted_peers.unwrap_or_default() {
            inner.dh.trust(&peer, &fp)?;
        }
        inner.dh.rekey_after_messages = rekey_after_messages;
        inner.dh.rekey_after_ms = seconds_to_ms("rekey_after_seconds", rekey_after_seconds)?;
        inner.validate()?;
        Ok(PyZenohConfig { inner })
    }

    /// Read `EVOSPIKENET_PSK`, `NODE_ID`, `EVOSPIKENET_CONNECT`, `EVOSPIKENET_LISTEN`.
    #[classmethod]
    fn from_env(_cls: &Bound<'_, PyType>) -> PyResult<Self> {
        Ok(PyZenohConfig {
            inner: Config::from_env()?,
        })
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.as_str()
    }

    #[getter]
    fn connect(&self) -> Vec<String> {
        self.inner.connect.clone()
    }

    #[setter]
    fn set_connect(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut next = self.inner.clone();
        next.connect = endpoints("connect", Some(v))?;
        next.validate()?;
        self.inner = next;
        Ok(())
    }

    #[getter]
    fn listen(&self) -> Vec<String> {
        self.inner.listen.clone()
    }

    #[setter]
    fn set_listen(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut next = self.inner.clone();
        next.listen = endpoints("listen", Some(v))?;
        next.validate()?;
        self.inner = next;
        Ok(())
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Whether a PSK is set. The key itself cannot be read back.
    #[getter]
    fn encrypted(&self) -> bool {
        self.inner.psk.is_some()
    }

    #[getter]
    fn key_id(&self) -> Option<String> {
        self.inner.psk.as_ref().map(|p| hex::encode(p.key_id().0))
    }

    #[getter]
    fn node_id(&self) -> Option<String> {
        self.inner.node_id.clone()
    }

    #[getter]
    fn multicast_scouting(&self) -> bool {
        self.inner.multicast_scouting
    }

    #[getter]
    fn freshness_window(&self) -> f64 {
        seconds(self.inner.policy.freshness_ms)
    }

    #[getter]
    fn key_exchange(&self) -> &'static str {
        self.inner.dh.key_exchange.as_str()
    }

    /// The fingerprint peers pin for this node (`None` without an identity_key).
    #[getter]
    fn identity_fingerprint(&self) -> Option<String> {
        self.inner.dh.identity.as_ref().map(|i| i.fingerprint())
    }

    #[getter]
    fn trusted_peers(&self) -> std::collections::BTreeMap<String, String> {
        self.inner.dh.trusted_peers.iter().cloned().collect()
    }

    #[getter]
    fn rekey_after_messages(&self) -> u64 {
        self.inner.dh.rekey_after_messages
    }

    #[getter]
    fn rekey_after_seconds(&self) -> f64 {
        seconds(self.inner.dh.rekey_after_ms)
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "ZenohConfig(mode={:?}, connect={:?}, listen={:?}, namespace={:?}, psk={}, \
             multicast_scouting={}, key_exchange={:?})",
            c.mode.as_str(),
            c.connect,
            c.listen,
            c.namespace,
            if c.psk.is_some() {
                "<redacted>"
            } else {
                "None"
            },
            if c.multicast_scouting {
                "True"
            } else {
                "False"
            },
            c.dh.key_exchange.as_str(),
        )
    }
}

/// Milliseconds as the seconds Python takes and shows.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn seconds_to_ms(name: &str, s: f64) -> PyResult<u64> {
    if !(s.is_finite() && s >= 0.0) {
        return Err(invalid_value(format!(
            "{name} must be a non-negative number of seconds"
        )));
    }
    Ok((s * 1000.0).round() as u64)
}

/// A new random identity key as 64 hex digits: keep it secret, give peers its
/// fingerprint (`identity_fingerprint`).
#[pyfunction]
fn generate_identity_key(py: Python<'_>) -> Bound<'_, PyString> {
    // Straight from the zeroizing hex into the Python string: no unwiped Rust copy.
    PyString::new(py, &IdentityKey::generate().secret_hex())
}

/// The fingerprint of the identity key `identity_key` (hex), to pin in trusted_peers.
#[pyfunction]
fn identity_fingerprint(identity_key: &str) -> PyResult<String> {
    Ok(IdentityKey::from_hex(identity_key)?.fingerprint())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyZenohConfig>()?;
    m.add_function(wrap_pyfunction!(generate_identity_key, m)?)?;
    m.add_function(wrap_pyfunction!(identity_fingerprint, m)?)
}
