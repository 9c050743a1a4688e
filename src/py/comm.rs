//! `ZenohCommunicator` and its handles: the Python face of `comm::Communicator`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, TrySendError};
use parking_lot::{Mutex, RwLock};
use pyo3::prelude::*;
use pyo3::pyclass::PyClass;
use pyo3::types::{PyDict, PyTuple};

use crate::codec::Format;
use crate::comm::{Communicator, Declaration, Declared, Message};
use crate::config::Config;
use crate::crypto::handshake::{parse_public_key, parse_public_key_hex};
use crate::crypto::random_bytes;
use crate::error::Result;
use crate::monitor::{escape_for_log, RateLimitedWarning, Stats};
use crate::py::codec;
use crate::py::config::parse_psk;
use crate::py::config::PyZenohConfig;
use crate::py::dispatch::{CallbackTarget, Dispatcher, Job, JobQueue, ServeTarget};
use crate::py::errors::{self, invalid_type, invalid_value};
use crate::py::handle::{PyHandle, PyMessageQueue, PyService, PySubscription};
use crate::py::shutting_down;

/// The encrypted communicator of one node. See `_native.pyi` for the documentation.
#[pyclass(
    name = "ZenohCommunicator",
    module = "evospikenet.zenoh_comm",
    subclass
)]
pub struct PyZenohCommunicator {
    node_id: String,
    namespace: String,
    comm: RwLock<Option<Arc<Communicator>>>,
    dispatcher: Mutex<Option<Dispatcher>>,
    /// The counters at close(), so stats() still answers afterwards.
    last_stats: Mutex<Option<Vec<(&'static str, u64)>>>,
}

fn generated_node_id() -> String {
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    format!("node-{}", hex::encode(b))
}

fn check_callable(py: Python<'_>, f: &Py<PyAny>, name: &str) -> PyResult<()> {
    if f.bind(py).is_callable() {
        Ok(())
    } else {
        Err(invalid_type(format!("{name} must be callable")))
    }
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

    fn close_inner(&self, py: Python<'_>) -> PyResult<()> {
        let comm = self.comm.write().take();
        let dispatcher = self.dispatcher.lock().take();
        crate::py::detach(py, move || {
            let result = comm.map(|c| c.close()).unwrap_or(Ok(()));
            if let Some(mut d) = dispatcher {
                d.stop();
            }
            result
        })
        .map_err(Into::into)
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
    ) -> PyResult<Self> {
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
        let config: Config = match config {
            Some(c) if !c.is_none() => c
                .extract::<PyRef<'_, PyZenohConfig>>()
                .map_err(|_| invalid_type("config must be a ZenohConfig"))?
                .inner
                .clone(),
            _ => Config::from_env()?,
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
        let dispatcher = Dispatcher::start(&node_id, comm.monitor().clone());
        Ok(PyZenohCommunicator {
            node_id,
            namespace: config.namespace.clone(),
            comm: RwLock::new(Some(Arc::new(comm))),
            dispatcher: Mutex::new(Some(dispatcher)),
            last_stats: Mutex::new(None),
        })
    }

    #[getter]
    fn node_id(&self) -> &str {
        &self.node_id
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.namespace
    }

    #[getter]
    fn encrypted(&self) -> PyResult<bool> {
        Ok(self.comm()?.is_encrypted())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.comm.read().is_none()
    }

    /// The endpoints this node listens on, with real port numbers.
    #[getter]
    fn locators(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let comm = self.comm()?;
        Ok(crate::py::detach(py, || comm.locators()))
    }

    /// Number of Zenoh peers and routers this node is connected to.
    fn connected_peers(&self, py: Python<'_>) -> PyResult<usize> {
        let comm = self.comm()?;
        Ok(crate::py::detach(py, || {
            comm.transport().connected_zids().len()
        }))
    }

    #[pyo3(signature = (topic, data, serialize = "json"))]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &str,
        data: &Bound<'_, PyAny>,
        serialize: &str,
    ) -> PyResult<()> {
        let format = Format::from_name(serialize)?;
        let comm = self.comm()?;
        let encoded = codec::encode(data, format)?;
        crate::py::detach(py, || {
            comm.publish_with(topic, format, encoded.len(), |buf| {
                encoded.write_to(buf);
                Ok(())
            })
        })
        .map_err(Into::into)
    }

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

    #[pyo3(signature = (topic, data, serialize = "json", timeout = 5.0))]
    fn request(
        &self,
        py: Python<'_>,
        topic: &str,
        data: &Bound<'_, PyAny>,
        serialize: &str,
        timeout: f64,
    ) -> PyResult<Py<PyAny>> {
        let format = Format::from_name(serialize)?;
        let timeout = timeout_arg("timeout", Some(timeout))?.expect("given");
        let comm = self.comm()?;
        let encoded = codec::encode(data, format)?;
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

    /// Start an X25519 exchange with `peer_id`; returns our 32-byte public key.
    fn initiate_key_exchange<'py>(
        &self,
        py: Python<'py>,
        peer_id: &str,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let comm = self.comm()?;
        let public = comm.key_manager().initiate(peer_id)?;
        Ok(pyo3::types::PyBytes::new(py, &public))
    }

    /// Complete the pending exchange with the peer's public key (bytes or hex text).
    #[pyo3(signature = (peer_public_key, peer_id = None))]
    fn complete_key_exchange(
        &self,
        py: Python<'_>,
        peer_public_key: &Bound<'_, PyAny>,
        peer_id: Option<&str>,
    ) -> PyResult<()> {
        let comm = self.comm()?;
        let km = comm.key_manager();
        let parsed = if let Ok(text) = peer_public_key.extract::<String>() {
            parse_public_key_hex(&text)
        } else if let Ok(raw) = peer_public_key.extract::<Vec<u8>>() {
            parse_public_key(&raw)
        } else {
            return Err(invalid_type(
                "peer_public_key must be bytes (32) or a hex string (64 digits)",
            ));
        };
        let key = parsed.map_err(|e| km.fail(e.to_string()))?;
        crate::py::detach(py, || km.complete(&key, peer_id))?;
        Ok(())
    }

    /// Fingerprint of our public key (for `peer_id`'s exchange, or the latest / identity).
    #[pyo3(signature = (peer_id = None))]
    fn fingerprint(&self, peer_id: Option<&str>) -> PyResult<String> {
        self.comm()?
            .key_manager()
            .fingerprint(peer_id)
            .map_err(Into::into)
    }

    /// Fingerprint of the public key `peer_id` used in our exchange.
    fn peer_fingerprint(&self, peer_id: &str) -> PyResult<String> {
        self.comm()?
            .key_manager()
            .peer_fingerprint(peer_id)
            .map_err(Into::into)
    }

    /// Whether encrypted traffic flows both ways with `peer_id`.
    fn session_established(&self, peer_id: &str) -> PyResult<bool> {
        Ok(self.comm()?.key_manager().session_established(peer_id))
    }

    /// Block until `session_established(peer_id)`; `TimeoutError` naming it otherwise.
    #[pyo3(signature = (peer_id, timeout = 10.0))]
    fn wait_for_session(&self, py: Python<'_>, peer_id: &str, timeout: f64) -> PyResult<()> {
        let t = timeout_arg("timeout", Some(timeout))?.unwrap_or(Duration::ZERO);
        let comm = self.comm()?;
        crate::py::detach(py, || comm.key_manager().wait_established(peer_id, t))
            .map_err(Into::into)
    }

    /// Peers with an established DH session.
    fn session_peers(&self) -> PyResult<Vec<String>> {
        Ok(self.comm()?.key_manager().established_peers())
    }

    /// New sender key and new exchanges with every peer; returns the peers rekeyed.
    fn rekey(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let comm = self.comm()?;
        crate::py::detach(py, || comm.key_manager().rekey()).map_err(Into::into)
    }

    /// Switch to a new PSK; the old one stays valid for `grace_seconds` after the switch.
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

    /// Counters since the communicator was opened.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let comm = self.comm.read().clone();
        match comm {
            Some(c) => {
                for (k, v) in c.stats().snapshot() {
                    d.set_item(k, v)?;
                }
            }
            None => {
                for (k, _) in Stats::default().snapshot() {
                    d.set_item(k, 0)?;
                }
                if let Some(last) = self.last_stats.lock().as_ref() {
                    for (k, v) in last {
                        d.set_item(*k, *v)?;
                    }
                }
            }
        }
        Ok(d)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(c) = self.comm.read().as_ref() {
            *self.last_stats.lock() = Some(c.stats().snapshot());
        }
        self.close_inner(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
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
