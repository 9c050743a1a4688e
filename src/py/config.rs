//! `ZenohConfig`: the Python face of `config::Config`.
//!
//! The `///` comments on what Python sees are its docstrings (`help()`), kept equal to
//! the stub's (`_native.pyi`) by `tests/test_docstrings.py`.

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
use crate::secret_file::{identity_key_from_file, psk_from_file};

/// Configuration of a :class:`ZenohCommunicator`.
///
/// Args:
///     mode: Zenoh role: ``"peer"`` (default), ``"client"`` (talks through a router given in
///         ``connect``) or ``"router"``.
///     connect: Endpoints to connect to, e.g. ``["tcp/10.0.0.5:7447"]``.
///     listen: Endpoints to listen on, e.g. ``["tcp/0.0.0.0:7447"]``; port 0 picks a free port
///         (see :attr:`ZenohCommunicator.locators`).
///     namespace: Prefix of every topic on the wire (default ``"evospikenet"``).
///     psk: The pre-shared key: 64 hexadecimal characters (32 random bytes; surrounding
///         whitespace tolerated) or 32 raw bytes. ``None`` sends plaintext (with a warning).
///     multicast_scouting: Announce and discover nodes by UDP multicast. Off by default: it
///         broadcasts on the real network.
///     freshness_window: Seconds after which a message is too old to be accepted; also the
///         bound on clock disagreement between nodes.
///     session_grace: Seconds a restarted sender's previous session stays accepted; also
///         how long a sender's previous DH-mode key stays usable after a rekey.
///     key_exchange: DH mode. ``"manual"`` (default): exchanges happen only through
///         :meth:`ZenohCommunicator.initiate_key_exchange` and
///         :meth:`~ZenohCommunicator.complete_key_exchange`. ``"auto"``: the node enters
///         DH mode at once and runs an authenticated X25519 exchange with every peer that
///         appears (over ``{namespace}/security/key_exchange/``), authenticated by the PSK
///         (mixed into the key derivation, as WireGuard's psk) and/or by ``trusted_peers``.
///     identity_key: This node's long-term secret X25519 key, 64 hex digits (see
///         :func:`generate_identity_key`); needed with ``trusted_peers``. Peers pin its
///         :attr:`identity_fingerprint`.
///     trusted_peers: ``{node_id: fingerprint}``: in ``"auto"`` mode only these peers, and
///         only with the identity key of that fingerprint, complete an exchange.
///     psk_file: A file holding the PSK as hex (a Docker or Kubernetes secret such as
///         ``/run/secrets/evospikenet_psk``), instead of ``psk``. Refused, naming the file
///         and its mode, when group or others may access it (``chmod 600``), as ssh does.
///     identity_key_file: A file holding ``identity_key``, with the same rules.
///     metrics_port: Serve the communicator's counters in the Prometheus text format on
///         ``http://127.0.0.1:<port>/metrics`` from its opening to its close (needs the
///         ``metrics`` extra, ``prometheus_client``; see :mod:`evospikenet.metrics`).
///     compression: Compress every publication with this algorithm (``"zstd"`` or
///         ``"lz4"``) unless ``publish(compress=...)`` says otherwise.
///     rekey_after_messages: In DH mode, draw a new sender key and run a new exchange with
///         every peer after this many messages ...
///     rekey_after_seconds: ... or this many seconds (WireGuard's REKEY_AFTER_TIME by
///         default).
///
/// The defaults shown as ``...`` are the core's (``src/config.rs``); read them back from
/// a default ``ZenohConfig()``.
///
/// With neither ``connect`` nor ``listen`` (peer mode), nodes on one machine meet on the
/// loopback rendezvous ``tcp/127.0.0.1:7447``: the first one started listens there, the
/// others connect to it, in any start order.
///
/// Raises:
///     evospikenet.errors.ConfigError: (a ``ValueError``) a malformed PSK (the message says
///         what is expected and never shows the value), an unknown mode, a malformed
///         endpoint or namespace, ``"auto"`` without a PSK or ``trusted_peers``,
///         ``trusted_peers`` without ``identity_key``, a malformed fingerprint, a key file
///         that cannot be read or that group or others may access, both ``psk`` and
///         ``psk_file`` (or ``identity_key`` and ``identity_key_file``).
///     ValueError: a negative or non-finite number of seconds.
#[pyclass(name = "ZenohConfig", module = "evospikenet.zenoh_comm")]
#[derive(Clone)]
pub struct PyZenohConfig {
    pub inner: Config,
    /// Serve the communicator's counters to Prometheus on this port (`evospikenet.metrics`).
    pub metrics_port: Option<u16>,
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

/// `#[pymethods] impl $class` of the methods written out, plus one read-only property per
/// line of `getters(binding)`: `name -> Type = expression;`, the expression reading the
/// object as `binding`; the doc comment above a line is the property's docstring.
macro_rules! pymethods_with_getters {
    (
        impl $class:ident {
            $($method:tt)*
        }
        getters($this:ident) {
            $( $(#[$doc:meta])* $getter:ident -> $ty:ty = $value:expr; )*
        }
    ) => {
        #[pymethods]
        impl $class {
            // Getters before setters: PyO3 takes a property's docstring from the first.
            $(
                $(#[$doc])*
                #[getter]
                fn $getter(&self) -> $ty {
                    let $this = self;
                    $value
                }
            )*
            $($method)*
        }
    };
}

pymethods_with_getters! {
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
            psk_file = None, identity_key_file = None, metrics_port = None, compression = None,
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
            psk_file: Option<std::path::PathBuf>,
            identity_key_file: Option<std::path::PathBuf>,
            metrics_port: Option<u16>,
            compression: Option<&str>,
            rekey_after_messages: u64,
            rekey_after_seconds: f64,
        ) -> PyResult<Self> {
            let mut inner = Config {
                mode: mode.parse::<SessionMode>()?,
                connect: endpoints("connect", connect)?,
                listen: endpoints("listen", listen)?,
                namespace: namespace.to_owned(),
                psk: match (parse_psk(psk)?, psk_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid_value("give psk or psk_file, not both"));
                    }
                    (Some(p), None) => Some(p),
                    (None, Some(path)) => Some(psk_from_file(&path)?),
                    (None, None) => None,
                },
                multicast_scouting,
                ..Config::default()
            };
            inner.policy.freshness_ms = seconds_to_ms("freshness_window", freshness_window)?;
            inner.policy.session_grace_ms = seconds_to_ms("session_grace", session_grace)?;
            inner.dh.key_exchange = key_exchange.parse::<KeyExchange>()?;
            inner.dh.identity = match (identity_key, identity_key_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid_value(
                        "give identity_key or identity_key_file, not both",
                    ));
                }
                (Some(k), None) => Some(IdentityKey::from_hex(k)?),
                (None, Some(path)) => Some(identity_key_from_file(&path)?),
                (None, None) => None,
            };
            for (peer, fp) in trusted_peers.unwrap_or_default() {
                inner.dh.trust(&peer, &fp)?;
            }
            inner.compression = compression.map(str::parse).transpose()?;
            inner.dh.rekey_after_messages = rekey_after_messages;
            inner.dh.rekey_after_ms = seconds_to_ms("rekey_after_seconds", rekey_after_seconds)?;
            inner.validate()?;
            Ok(PyZenohConfig {
                inner,
                metrics_port,
            })
        }

        /// Build from ``EVOSPIKENET_PSK`` (or ``EVOSPIKENET_PSK_FILE``, a file holding it,
        /// checked as ``psk_file``), ``EVOSPIKENET_IDENTITY_KEY_FILE``, ``NODE_ID``,
        /// ``EVOSPIKENET_CONNECT`` and ``EVOSPIKENET_LISTEN`` (comma-separated endpoints),
        /// ``EVOSPIKENET_MODE``, ``EVOSPIKENET_NAMESPACE``, ``EVOSPIKENET_KEY_EXCHANGE`` and
        /// ``EVOSPIKENET_COMPRESSION``. Unset variables keep the defaults.
        #[classmethod]
        fn from_env(_cls: &Bound<'_, PyType>) -> PyResult<Self> {
            Ok(PyZenohConfig {
                inner: Config::from_env()?,
                metrics_port: None,
            })
        }

        #[setter]
        fn set_connect(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
            self.set_endpoints("connect", v, |c| &mut c.connect)
        }

        #[setter]
        fn set_listen(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
            self.set_endpoints("listen", v, |c| &mut c.listen)
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
    getters(config) {
        /// The Zenoh role: ``"peer"``, ``"client"`` or ``"router"``.
        mode -> &'static str = config.inner.mode.as_str();
        /// The endpoints to connect to (settable: a list or one endpoint string).
        connect -> Vec<String> = config.inner.connect.clone();
        /// The endpoints to listen on (settable: a list or one endpoint string).
        listen -> Vec<String> = config.inner.listen.clone();
        /// The prefix of every topic on the wire (a Zenoh key expression chunk, not a
        /// network namespace).
        namespace -> &str = &config.inner.namespace;
        /// Whether a PSK is configured (the key itself cannot be read back).
        encrypted -> bool = config.inner.psk.is_some();
        /// Public 4-byte identifier of the PSK (hex), the same on every node with the same key.
        key_id -> Option<String> =
            config.inner.psk.as_ref().map(|p| hex::encode(p.key_id().0));
        /// The node id read from ``NODE_ID`` by :meth:`from_env`.
        node_id -> Option<String> = config.inner.node_id.clone();
        /// The default compression of publications, if any.
        compression -> Option<&'static str> = config.inner.compression.map(|c| c.as_str());
        /// The Prometheus port of ``metrics_port``, if any.
        metrics_port -> Option<u16> = config.metrics_port;
        /// Whether nodes are announced and discovered by UDP multicast (off by default).
        multicast_scouting -> bool = config.inner.multicast_scouting;
        /// Seconds after which a received message is too old to be accepted.
        freshness_window -> f64 = seconds(config.inner.policy.freshness_ms);
        /// ``"manual"`` or ``"auto"`` (see the class documentation).
        key_exchange -> &'static str = config.inner.dh.key_exchange.as_str();
        /// The fingerprint peers pin in ``trusted_peers`` (``None`` without identity_key).
        identity_fingerprint -> Option<String> =
            config.inner.dh.identity.as_ref().map(|i| i.fingerprint());
        /// The pinned peers, fingerprints in canonical ``XXXX XXXX ...`` form.
        trusted_peers -> std::collections::BTreeMap<String, String> =
            config.inner.dh.trusted_peers.iter().cloned().collect();
        /// In DH mode, messages after which the node rekeys.
        rekey_after_messages -> u64 = config.inner.dh.rekey_after_messages;
        /// In DH mode, seconds after which the node rekeys.
        rekey_after_seconds -> f64 = seconds(config.inner.dh.rekey_after_ms);
    }
}

impl PyZenohConfig {
    /// Sets the endpoint list `field` (`connect` or `listen`, at `slot`) to `v`, a list or
    /// one endpoint string; the configuration is unchanged when the result is invalid.
    fn set_endpoints(
        &mut self,
        field: &str,
        v: &Bound<'_, PyAny>,
        slot: fn(&mut Config) -> &mut Vec<String>,
    ) -> PyResult<()> {
        let mut next = self.inner.clone();
        *slot(&mut next) = endpoints(field, Some(v))?;
        next.validate()?;
        self.inner = next;
        Ok(())
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

/// A new random identity key (64 hex digits). Keep it secret, like a PSK.
#[pyfunction]
fn generate_identity_key(py: Python<'_>) -> Bound<'_, PyString> {
    // Straight from the zeroizing hex into the Python string: no unwiped Rust copy.
    PyString::new(py, &IdentityKey::generate().secret_hex())
}

/// The fingerprint of ``identity_key``, for peers' ``trusted_peers``.
#[pyfunction]
fn identity_fingerprint(identity_key: &str) -> PyResult<String> {
    Ok(IdentityKey::from_hex(identity_key)?.fingerprint())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyZenohConfig>()?;
    m.add_function(wrap_pyfunction!(generate_identity_key, m)?)?;
    m.add_function(wrap_pyfunction!(identity_fingerprint, m)?)
}
