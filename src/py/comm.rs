//! `ZenohCommunicator` and its handles: the Python face of `comm::Communicator`.
//!
//! The `///` comments on what Python sees are its docstrings (`help()`), kept equal to
//! the stub's (`_native.pyi`) by `tests/test_docstrings.py`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, TrySendError};
use parking_lot::{Mutex, RwLock};
use pyo3::prelude::*;
use pyo3::pyclass::PyClass;
use pyo3::types::{PyDict, PyList};

use crate::codec::Format;
use crate::comm::{Communicator, Declaration, Declared, Message};
use crate::config::Config;
use crate::crypto::random_bytes;
use crate::error::Result;
use crate::monitor::{escape_for_log, RateLimitedWarning, Stats};
use crate::py::args::{check_callable, compression_arg, public_key_arg, timeout_arg};
use crate::py::codec::{self, Encoded};
use crate::py::config::parse_psk;
use crate::py::config::PyZenohConfig;
use crate::py::dispatch::{CallbackTarget, Dispatcher, Job, JobQueue, ServeTarget};
use crate::py::errors::{self, invalid_type, invalid_value};
use crate::py::handle::{PyClosedByWith, PyHandle, PyMessageQueue, PyService, PySubscription};
use crate::py::metrics;
use crate::py::shutting_down;

/// The encrypted communicator of one node.
///
/// ``ZenohCommunicator(node_id, config)`` or ``ZenohCommunicator(config)``. Without a
/// node id, ``NODE_ID`` is used, else a random ``node-xxxxxxxx``. Without a config,
/// :meth:`ZenohConfig.from_env` is used.
///
/// With a PSK, every payload is sealed with AES-256-GCM under a key derived for this
/// sender and this run (HKDF-SHA256), and every received message must authenticate and
/// must not be a replay; failures are dropped, counted in :meth:`stats` and logged as
/// ``WARNING Decryption failed for topic: <topic>`` on the ``evospikenet.zenoh_comm``
/// logger (rate-limited). A node with a PSK never accepts plaintext; one without a PSK
/// cannot read encrypted traffic.
///
/// Callbacks and serve handlers run one at a time on a dedicated thread of this
/// communicator, never on Zenoh's network threads. Publishing is safe from any number of
/// threads. Close with :meth:`close` or a ``with`` block.
///
/// Raises:
///     evospikenet.errors.ConfigError: (a ``ValueError``) a malformed node id (1-64
///         characters of letters, digits, ``-_.``).
///     evospikenet.errors.TransportError: (a ``ConnectionError``) the Zenoh session could
///         not be opened (e.g. a listen port in use).
///     ImportError: ``metrics_port`` without ``prometheus_client`` installed.
///     OSError: ``metrics_port`` cannot be bound.
///
/// Once closed, every method but :meth:`close`, :meth:`stats` and the properties
/// ``node_id``, ``namespace`` and ``closed`` raises
/// :class:`~evospikenet.errors.CommunicatorClosedError` (a ``RuntimeError``).
#[pyclass(
    name = "ZenohCommunicator",
    module = "evospikenet.zenoh_comm",
    extends = PyClosedByWith,
    subclass
)]
pub struct PyZenohCommunicator {
    node_id: String,
    namespace: String,
    comm: RwLock<Option<Arc<Communicator>>>,
    dispatcher: Mutex<Option<Dispatcher>>,
    /// The counters at close(), so stats() still answers afterwards.
    last_stats: Mutex<Option<Vec<(&'static str, u64)>>>,
    /// The Prometheus server of `ZenohConfig(metrics_port=...)`, shut down at close.
    metrics_server: Mutex<Option<Py<PyAny>>>,
}

fn generated_node_id() -> String {
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    format!("node-{}", hex::encode(b))
}

impl PyZenohCommunicator {
    pub(crate) fn comm(&self) -> PyResult<Arc<Communicator>> {
        self.comm.read().clone().ok_or_else(errors::closed)
    }

    fn job_queue(&self) -> PyResult<JobQueue> {
        self.dispatcher
            .lock()
            .as_ref()
            .map(|d| d.queue())
            .ok_or_else(errors::closed)
    }

    /// Declare, with `declare`, a subscription or service whose messages go to the
    /// callback thread through the job queue; `declare` gets the flag that undeclaring
    /// the returned handle clears.
    fn declare_on_callback_thread<S, D>(
        &self,
        py: Python<'_>,
        topic: &str,
        class: S,
        declare: impl FnOnce(&Communicator, JobQueue, Arc<AtomicBool>) -> Result<Arc<Declared<D>>>
            + Send,
    ) -> PyResult<Py<S>>
    where
        S: PyClass<BaseType = PyHandle>,
        D: Declaration,
    {
        let comm = self.comm()?;
        let queue = self.job_queue()?;
        let active = Arc::new(AtomicBool::new(true));
        let flag = active.clone();
        let declared = crate::py::detach(py, || declare(&comm, queue, flag))?;
        PyHandle::create(py, class, topic, declared, Some(active), false)
    }

    /// The open communicator, and `data` encoded as `serialize` names.
    fn outgoing(
        &self,
        data: &Bound<'_, PyAny>,
        serialize: &str,
    ) -> PyResult<(Arc<Communicator>, Format, Encoded)> {
        let format = Format::from_name(serialize)?;
        let comm = self.comm()?;
        Ok((comm, format, codec::encode(data, format)?))
    }

    fn close_inner(&self, py: Python<'_>) -> PyResult<()> {
        // The metrics server first, so no scrape reads a half-closed communicator; its
        // failure to stop is reported after the session is closed all the same.
        let server = self.metrics_server.lock().take();
        let stopped = server.map_or(Ok(()), |s| s.call_method0(py, "shutdown").map(drop));
        let comm = self.comm.write().take();
        let dispatcher = self.dispatcher.lock().take();
        crate::py::detach(py, move || {
            let result = comm.map(|c| c.close()).unwrap_or(Ok(()));
            if let Some(mut d) = dispatcher {
                d.stop();
            }
            result
        })?;
        stopped
    }
}

#[pymethods]
impl PyZenohCommunicator {
    #[new]
    #[pyo3(signature = (node_id = None, config = None))]
    fn new(
        py: Python<'_>,
        node_id: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Self, PyClosedByWith)> {
        // Both documented forms: (node_id, config) and (config).
        let (node_id, config) = match node_id {
            Some(obj) if obj.is_instance_of::<PyZenohConfig>() => {
                if config.is_some_and(|c| !c.is_none()) {
                    return Err(invalid_type(
                        "ZenohCommunicator(node_id, config): node_id must be a string",
                    ));
                }
                (None, Some(obj))
            }
            Some(obj) if obj.is_none() => (None, config),
            Some(obj) => (
                Some(
                    obj.extract::<String>()
                        .map_err(|_| invalid_type("node_id must be a string such as \"node-1\""))?,
                ),
                config,
            ),
            None => (None, config),
        };
        let (config, metrics_port): (Config, Option<u16>) = match config {
            Some(c) if !c.is_none() => {
                let c = c
                    .extract::<PyRef<'_, PyZenohConfig>>()
                    .map_err(|_| invalid_type("config must be a ZenohConfig"))?;
                (c.inner.clone(), c.metrics_port)
            }
            _ => (Config::from_env()?, None),
        };
        let node_id = node_id
            .or_else(|| config.node_id.clone())
            .or_else(|| {
                std::env::var("NODE_ID")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
            })
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(generated_node_id);
        let comm = crate::py::detach(py, || Communicator::open(&node_id, &config))?;
        let comm = Arc::new(comm);
        let metrics_server = match metrics_port {
            Some(port) => match metrics::start_server(py, &node_id, &comm, port) {
                Ok(server) => Some(server),
                Err(e) => {
                    let _ = crate::py::detach(py, || comm.close());
                    return Err(e);
                }
            },
            None => None,
        };
        let dispatcher = Dispatcher::start(&node_id, comm.monitor().clone());
        let this = PyZenohCommunicator {
            node_id,
            namespace: config.namespace.clone(),
            comm: RwLock::new(Some(comm)),
            dispatcher: Mutex::new(Some(dispatcher)),
            last_stats: Mutex::new(None),
            metrics_server: Mutex::new(metrics_server),
        };
        Ok((this, PyClosedByWith))
    }

    /// This node's id, the sender id its messages carry.
    #[getter]
    fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The prefix of every topic on the wire (from the config).
    #[getter]
    fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether payloads are sealed: a PSK is configured or DH keys are in use.
    #[getter]
    fn encrypted(&self) -> PyResult<bool> {
        Ok(self.comm()?.is_encrypted())
    }

    /// Whether :meth:`close` was called (or the ``with`` block ended).
    #[getter]
    fn closed(&self) -> bool {
        self.comm.read().is_none()
    }

    /// The endpoints this node listens on, with the real port when 0 was requested.
    #[getter]
    fn locators(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let comm = self.comm()?;
        Ok(crate::py::detach(py, || comm.locators()))
    }

    /// How many Zenoh peers and routers this node currently has a link to.
    fn connected_peers(&self, py: Python<'_>) -> PyResult<usize> {
        let comm = self.comm()?;
        Ok(crate::py::detach(py, || {
            comm.transport().connected_zids().len()
        }))
    }

    /// The node ids whose presence tokens (Zenoh liveliness, declared by nodes in
    /// ``key_exchange="auto"`` mode) answer within ``timeout`` seconds, sorted. Tokens
    /// are unauthenticated: this lists who claims to be present.
    ///
    /// Raises:
    ///     ValueError: a negative or non-finite timeout.
    ///     evospikenet.errors.CommunicatorClosedError: after close.
    #[pyo3(signature = (timeout = 1.0))]
    fn present_nodes(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<String>> {
        let comm = self.comm()?;
        let timeout = timeout_arg("timeout", Some(timeout))?.unwrap_or(Duration::ZERO);
        crate::py::detach(py, || comm.present_nodes(timeout)).map_err(Into::into)
    }

    /// Encrypt and publish ``data`` on ``topic`` (under the namespace).
    ///
    /// Serializers: ``"json"`` (dict, list, str, int, float, bool, None, and numpy
    /// scalars), ``"raw"`` (bytes-like; bytes are sent without an extra copy) and
    /// ``"numpy"`` (an ndarray of any numeric or bool dtype and any shape; received as an
    /// ndarray of the same dtype and shape). Blocks (never drops) while the network is
    /// congested.
    ///
    /// ``compress``: ``None`` follows the configuration (``ZenohConfig(compression=...)``),
    /// ``True`` compresses with it or zstd, ``False`` never, or the algorithm by name. The
    /// payload is compressed before sealing (sent as it is under 1 KiB, or when that does
    /// not make it shorter) and the algorithm is flagged inside the authenticated
    /// plaintext: receivers need no setting. Compression shows in the message length how
    /// well the data compresses: never compress secrets together with data an attacker
    /// chooses (SECURITY.md, "Compression").
    ///
    /// After :meth:`complete_key_exchange`, publications are held until the peer confirms
    /// the session, then sent in order (see there).
    ///
    /// Raises:
    ///     ValueError: unknown serializer or compression, invalid topic (wildcards are for
    ///         subscribing), non-finite floats in json.
    ///     TypeError: data the serializer cannot encode.
    ///     evospikenet.errors.KeyExchangeError: (a ``ValueError``) publications held for
    ///         an unconfirmed key exchange passed their limit.
    ///     evospikenet.errors.CommunicatorClosedError: (a ``RuntimeError``) the
    ///         communicator is closed.
    #[pyo3(signature = (topic, data, serialize = "json", compress = None))]
    fn publish(
        &self,
        topic: &str,
        data: &Bound<'_, PyAny>,
        serialize: &str,
        compress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (comm, format, encoded) = self.outgoing(data, serialize)?;
        let compression = compression_arg(compress, comm.default_compression())?;
        crate::py::detach(data.py(), || {
            comm.publish_compressed_with(topic, format, compression, encoded.len(), |buf| {
                encoded.write_to(buf);
                Ok(())
            })
        })
        .map_err(Into::into)
    }

    /// Call ``callback(data)`` for each authentic message on ``topic``.
    ///
    /// ``topic`` may use Zenoh wildcards: ``*`` (one chunk) and ``**`` (any chunks). With
    /// ``with_info=True`` the callback is called as ``callback(data, sender_node_id,
    /// topic)``. An exception in the callback is logged with its traceback and counted in
    /// ``stats()["dropped_by_callback_error"]``; the subscription keeps running.
    #[pyo3(signature = (topic, callback, *, with_info = false))]
    fn subscribe(
        &self,
        py: Python<'_>,
        topic: &str,
        callback: Py<PyAny>,
        with_info: bool,
    ) -> PyResult<Py<PySubscription>> {
        check_callable(py, &callback, "callback")?;
        self.declare_on_callback_thread(py, topic, PySubscription, |comm, queue, active| {
            let target = Arc::new(CallbackTarget {
                callback,
                with_info,
                active,
            });
            comm.subscribe(topic, move |msg| {
                queue.push(Job::Deliver(target.clone(), msg))
            })
        })
    }

    /// Subscribe into a bounded :class:`MessageQueue` instead of a callback.
    ///
    /// Read it with ``get(timeout=...)`` or by iterating; with ``with_info=True`` each
    /// item is ``(data, sender_node_id, topic)``. At most ``maxsize`` messages wait:
    /// others are dropped and counted in ``stats()["dropped_queue_full"]``.
    #[pyo3(signature = (topic, maxsize = 10_000, *, with_info = false))]
    fn subscribe_queue(
        &self,
        py: Python<'_>,
        topic: &str,
        maxsize: usize,
        with_info: bool,
    ) -> PyResult<Py<PyMessageQueue>> {
        if maxsize == 0 {
            return Err(invalid_value(
                "maxsize must be at least 1 (the queue is bounded; messages that do not fit \
                 are dropped and counted in stats()['dropped_queue_full'])",
            ));
        }
        let comm = self.comm()?;
        let monitor = comm.monitor().clone();
        let (tx, rx) = bounded::<Message>(maxsize);
        let full = Arc::new(RateLimitedWarning::new());
        let sub = crate::py::detach(py, || {
            comm.subscribe(topic, move |msg| {
                if let Err(TrySendError::Full(m)) = tx.try_send(msg) {
                    Stats::add(&monitor.stats.dropped_queue_full, 1);
                    full.warn(|| {
                        format!(
                            "Queue full, message dropped for topic: {}",
                            escape_for_log(&m.topic)
                        )
                    });
                }
            })
        })?;
        let queue = PyMessageQueue::new(rx, with_info);
        PyHandle::create(py, queue, topic, sub, None, true)
    }

    /// Send an encrypted request and return the first authentic reply's data.
    ///
    /// The request goes to every service on ``topic`` (its responder set); each takes it
    /// once, and a copy replayed to any of them is refused.
    ///
    /// Raises:
    ///     evospikenet.errors.DeadlineExceededError: (a ``TimeoutError``) no authentic
    ///         reply within ``timeout`` seconds.
    ///     evospikenet.errors.RemoteHandlerError: (a ``RuntimeError``) the service's
    ///         handler raised (see :meth:`serve`).
    #[pyo3(signature = (topic, data, serialize = "json", timeout = 5.0))]
    fn request(
        &self,
        topic: &str,
        data: &Bound<'_, PyAny>,
        serialize: &str,
        timeout: f64,
    ) -> PyResult<Py<PyAny>> {
        let timeout = timeout_arg("timeout", Some(timeout))?.expect("given");
        let (comm, format, encoded) = self.outgoing(data, serialize)?;
        let py = data.py();
        let reply = crate::py::detach(py, || {
            comm.request_with(
                topic,
                format,
                encoded.len(),
                |buf| {
                    encoded.write_to(buf);
                    Ok(())
                },
                timeout,
            )
        })?;
        codec::decode(py, reply.format, reply.payload)
    }

    /// Answer requests on ``topic`` with ``handler(data)``, encoded with ``serialize``.
    ///
    /// The reply is encrypted and bound to the request it answers. If the handler raises,
    /// the error is logged with its traceback and the requester's :meth:`request` raises
    /// :class:`~evospikenet.errors.RemoteHandlerError` naming the exception's type.
    #[pyo3(signature = (topic, handler, serialize = "json"))]
    fn serve(
        &self,
        py: Python<'_>,
        topic: &str,
        handler: Py<PyAny>,
        serialize: &str,
    ) -> PyResult<Py<PyService>> {
        check_callable(py, &handler, "handler")?;
        let reply_format = Format::from_name(serialize)?;
        self.declare_on_callback_thread(py, topic, PyService, |comm, queue, active| {
            let target = Arc::new(ServeTarget {
                handler,
                reply_format,
                active,
            });
            comm.serve(topic, move |msg, responder| {
                queue.push(Job::Serve(target.clone(), msg, responder))
            })
        })
    }

    /// Start an X25519 exchange with ``peer_id``: returns our fresh 32-byte public key
    /// to give to the peer (e.g. ``print(key.hex())``). Initiating again with the same
    /// peer replaces the pending exchange.
    ///
    /// Raises:
    ///     evospikenet.errors.KeyExchangeError: (a ``ValueError``) a malformed peer id, or
    ///         this node's own id. Logged as ``ERROR Key exchange failed: <reason>``.
    fn initiate_key_exchange<'py>(
        &self,
        py: Python<'py>,
        peer_id: &str,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let comm = self.comm()?;
        let public = comm.key_manager().initiate(peer_id)?;
        Ok(pyo3::types::PyBytes::new(py, &public))
    }

    /// Complete the pending exchange with the peer's public key: 32 bytes, or 64 hex
    /// digits (spaces, ``:`` and line breaks are ignored). ``peer_id`` may be left out when
    /// a single exchange is pending.
    ///
    /// Session keys come from HKDF-SHA256 over the X25519 secret and both node ids and
    /// public keys (and the PSK, if configured). From now on this node is in DH mode: it
    /// seals with its own sender key, hands it to the peer over the new channel (sent
    /// again until acknowledged), and accepts no plaintext. Compare
    /// :meth:`fingerprint` and :meth:`peer_fingerprint` with the peer's screen to rule
    /// out a man in the middle.
    ///
    /// It returns at once, while the peer may not have completed its side yet. From
    /// here until the peer confirms the session (it holds our key, we hold its),
    /// :meth:`publish` holds publications, in order, and sends them once it does: the
    /// next ``publish`` reaches the peer. At most 4096 messages or 64 MiB are held;
    /// past that ``publish`` raises :class:`~evospikenet.errors.KeyExchangeError`.
    /// Requests are not held: call :meth:`wait_for_session` before :meth:`request`.
    ///
    /// Raises:
    ///     evospikenet.errors.KeyExchangeError: (a ``ValueError``) a malformed or unusable
    ///         key (wrong length, not hex, a low-order point, our own key), nothing
    ///         pending (never initiated, or completed already), several pending and no
    ///         ``peer_id``. Logged as ``ERROR Key exchange failed: <reason>``, never with
    ///         key material.
    #[pyo3(signature = (peer_public_key, peer_id = None))]
    fn complete_key_exchange(
        &self,
        py: Python<'_>,
        peer_public_key: &Bound<'_, PyAny>,
        peer_id: Option<&str>,
    ) -> PyResult<()> {
        let comm = self.comm()?;
        let km = comm.key_manager();
        let key = public_key_arg(peer_public_key)?.map_err(|e| km.fail(e.to_string()))?;
        crate::py::detach(py, || km.complete(&key, peer_id))?;
        Ok(())
    }

    /// The fingerprint of our public key in the exchange with ``peer_id`` (default:
    /// our identity key if configured, else the latest exchange's key):
    /// ``XXXX XXXX XXXX XXXX XXXX XXXX XXXX XXXX``, the first 128 bits of SHA-256 over a
    /// label and the key. Both nodes print the same text for the same key.
    #[pyo3(signature = (peer_id = None))]
    fn fingerprint(&self, peer_id: Option<&str>) -> PyResult<String> {
        self.comm()?
            .key_manager()
            .fingerprint(peer_id)
            .map_err(Into::into)
    }

    /// The fingerprint of the key ``peer_id`` used in our latest exchange (its identity
    /// key when identity keys authenticated the exchange).
    fn peer_fingerprint(&self, peer_id: &str) -> PyResult<String> {
        self.comm()?
            .key_manager()
            .peer_fingerprint(peer_id)
            .map_err(Into::into)
    }

    /// Whether traffic flows encrypted both ways with ``peer_id``: the exchange is
    /// complete on our side, the peer acknowledged our sender key and we hold its.
    fn session_established(&self, peer_id: &str) -> PyResult<bool> {
        Ok(self.comm()?.key_manager().session_established(peer_id))
    }

    /// Block until :meth:`session_established`; otherwise raise
    /// :class:`~evospikenet.errors.DeadlineExceededError` (a ``TimeoutError``) naming the
    /// peer.
    #[pyo3(signature = (peer_id, timeout = 10.0))]
    fn wait_for_session(&self, py: Python<'_>, peer_id: &str, timeout: f64) -> PyResult<()> {
        let t = timeout_arg("timeout", Some(timeout))?.unwrap_or(Duration::ZERO);
        let comm = self.comm()?;
        crate::py::detach(py, || comm.key_manager().wait_established(peer_id, t))
            .map_err(Into::into)
    }

    /// Peers with an established session, sorted.
    fn session_peers(&self) -> PyResult<Vec<String>> {
        Ok(self.comm()?.key_manager().established_peers())
    }

    /// Draw a new sender key and run a new X25519 exchange with every peer (each
    /// authenticated by the previous channel). The node seals with the new key once every
    /// peer acknowledged it, or after 3 s for those that did not (they keep being sent it);
    /// returns then, with the peers that acknowledged it. Receivers erase the old key
    /// ``session_grace`` seconds after a message under the new one authenticated. Runs
    /// automatically after ``rekey_after_seconds`` or ``rekey_after_messages``.
    fn rekey(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let comm = self.comm()?;
        crate::py::detach(py, || comm.key_manager().rekey()).map_err(Into::into)
    }

    /// Rotate the pre-shared key. ``new_psk`` is accepted at once and sealed with after
    /// ``seal_after`` seconds; the previous key stays accepted ``grace_seconds`` after that,
    /// then is erased. Messages carry the 4-byte key id, so receivers pick the right key.
    /// Nodes that all call ``rotate_psk`` within ``seal_after`` seconds of each other lose
    /// no message. In DH mode the PSK authenticates new exchanges; sessions already
    /// established carry on.
    ///
    /// Raises:
    ///     evospikenet.errors.ConfigError: (a ``ValueError``) a malformed PSK.
    ///     ValueError: a communicator without a PSK.
    #[pyo3(signature = (new_psk, grace_seconds = 30.0, *, seal_after = 0.0))]
    fn rotate_psk(
        &self,
        new_psk: &Bound<'_, PyAny>,
        grace_seconds: f64,
        seal_after: f64,
    ) -> PyResult<()> {
        let psk =
            parse_psk(Some(new_psk))?.ok_or_else(|| invalid_value("new_psk must not be None"))?;
        let grace = timeout_arg("grace_seconds", Some(grace_seconds))?.unwrap_or(Duration::ZERO);
        let after = timeout_arg("seal_after", Some(seal_after))?.unwrap_or(Duration::ZERO);
        self.comm()?
            .rotate_psk(psk, after, grace)
            .map_err(Into::into)
    }

    /// The counters since the communicator was opened (see :class:`Stats`); still
    /// readable after close.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let comm = self.comm.read().clone();
        if let Some(c) = comm {
            return metrics::stats_dict(py, &c);
        }
        let d = PyDict::new(py);
        for (k, _) in Stats::default().snapshot() {
            d.set_item(k, 0)?;
        }
        if let Some(last) = self.last_stats.lock().as_ref() {
            for (k, v) in last {
                d.set_item(*k, *v)?;
            }
        }
        Ok(d)
    }

    /// What each sender published on each topic this node subscribes to, accepted or
    /// refused (see :class:`SenderStats`), sorted by sender and topic. Bounded: past
    /// 4096 pairs, new ones are counted in one row with ``sender`` ``None``.
    ///
    /// Raises:
    ///     evospikenet.errors.CommunicatorClosedError: after close.
    fn sender_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let comm = self.comm()?;
        metrics::sender_rows(py, &comm)
    }

    /// Close the Zenoh session and stop the callback thread. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(c) = self.comm.read().as_ref() {
            *self.last_stats.lock() = Some(c.stats().snapshot());
        }
        self.close_inner(py)
    }

    fn __repr__(&self) -> String {
        let state = match self.comm.read().as_ref() {
            None => "closed",
            Some(c) if c.is_encrypted() => "encrypted",
            Some(_) => "plaintext",
        };
        format!(
            "ZenohCommunicator(node_id={:?}, namespace={:?}, {state})",
            self.node_id, self.namespace
        )
    }
}

impl Drop for PyZenohCommunicator {
    fn drop(&mut self) {
        let comm = self.comm.get_mut().take();
        let dispatcher = self.dispatcher.get_mut().take();
        if comm.is_none() && dispatcher.is_none() {
            return;
        }
        if shutting_down() {
            // Never touch Zenoh from a finalizer at interpreter exit: the process is ending.
            std::mem::forget(comm);
            std::mem::forget(dispatcher);
            return;
        }
        // Garbage-collected without close(): close off the GIL-holding thread.
        std::thread::spawn(move || {
            if let Some(c) = comm {
                let _ = c.close();
            }
            if let Some(mut d) = dispatcher {
                d.stop();
            }
        });
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyZenohCommunicator>()?;
    m.add_class::<PyHandle>()?;
    m.add_class::<PySubscription>()?;
    m.add_class::<PyService>()?;
    m.add_class::<PyMessageQueue>()?;
    Ok(())
}
