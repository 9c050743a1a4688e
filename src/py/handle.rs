//! The handles that `subscribe`, `serve` and `subscribe_queue` return. One base class,
//! `Handle`, owns the declaration (any `comm::Handle`) and gives all three the same
//! `topic`, `active`, `undeclare()` and `close()`; the subclasses add only what differs.
//! The context-manager protocol comes from `_ClosedByWith`, the base class of `Handle`
//! and of `ZenohCommunicator`: `with` calls the object's own `close()`.
//!
//! The `///` comments on what Python sees are its docstrings (`help()`), kept equal to
//! the stub's (`_native.pyi`) by `tests/test_docstrings.py`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pyclass::PyClass;
use pyo3::types::PyTuple;

use crate::comm::{Handle, Message};
use crate::py::{codec, errors, shutting_down};

/// Blocking waits are cut in slices this long, so Ctrl-C is seen between them.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What a ``with`` block closes: the base class of the communicator and of the handles.
/// ``__exit__`` calls the object's own ``close()`` and never suppresses the exception.
#[pyclass(
    name = "_ClosedByWith",
    module = "evospikenet.zenoh_comm",
    subclass,
    frozen
)]
pub struct PyClosedByWith;

#[pymethods]
impl PyClosedByWith {
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        slf.call_method0(intern!(slf.py(), "close"))?;
        Ok(false)
    }
}

/// A declaration on the Zenoh session: the base class of :class:`Subscription`,
/// :class:`Service` and :class:`MessageQueue`.
///
/// Active until :meth:`undeclare` (or :meth:`close`, or the end of a ``with`` block) or
/// until its communicator closes; both are idempotent, and a closed handle never
/// raises. Dropping a :class:`Subscription` or :class:`Service` keeps it running (the
/// communicator holds it); dropping a :class:`MessageQueue` stops it.
#[pyclass(
    name = "Handle",
    module = "evospikenet.zenoh_comm",
    extends = PyClosedByWith,
    subclass,
    frozen
)]
pub struct PyHandle {
    topic: String,
    declared: Arc<dyn Handle>,
    /// Cleared by `undeclare()`: the callback thread skips deliveries already queued.
    delivering: Option<Arc<AtomicBool>>,
    /// Undeclare when collected: nobody could read what arrives after (a queue).
    undeclare_on_drop: bool,
}

impl PyHandle {
    /// A `Handle` subclass instance wrapping `declared`.
    pub fn create<S>(
        py: Python<'_>,
        subclass: S,
        topic: &str,
        declared: Arc<dyn Handle>,
        delivering: Option<Arc<AtomicBool>>,
        undeclare_on_drop: bool,
    ) -> PyResult<Py<S>>
    where
        S: PyClass<BaseType = PyHandle>,
    {
        let base = PyHandle {
            topic: topic.to_owned(),
            declared,
            delivering,
            undeclare_on_drop,
        };
        let init = PyClassInitializer::from(PyClosedByWith)
            .add_subclass(base)
            .add_subclass(subclass);
        Py::new(py, init)
    }
}

#[pymethods]
impl PyHandle {
    /// The topic (or key expression) it was declared on, without the namespace.
    #[getter]
    fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether it is still declared.
    #[getter]
    fn active(&self) -> bool {
        self.declared.is_active()
    }

    /// Withdraw the declaration.
    fn undeclare(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(d) = &self.delivering {
            d.store(false, Ordering::Release);
        }
        let declared = self.declared.clone();
        Ok(crate::py::detach(py, move || declared.undeclare())?)
    }

    /// Same as :meth:`undeclare`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.undeclare(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        Ok(format!(
            "{}(topic={:?}, active={})",
            slf.get_type().name()?,
            this.topic,
            if this.declared.is_active() {
                "True"
            } else {
                "False"
            }
        ))
    }
}

impl Drop for PyHandle {
    fn drop(&mut self) {
        if self.undeclare_on_drop && self.declared.is_active() && !shutting_down() {
            // Off the thread that holds the GIL: undeclaring waits for Zenoh.
            let declared = self.declared.clone();
            std::thread::spawn(move || declared.undeclare());
        }
    }
}

/// A callback subscription returned by :meth:`ZenohCommunicator.subscribe`.
///
/// Undeclaring it also discards the messages still queued for the callback.
#[pyclass(name = "Subscription", module = "evospikenet.zenoh_comm", extends = PyHandle, frozen)]
pub struct PySubscription;

/// A served topic returned by :meth:`ZenohCommunicator.serve`; undeclared, it stops
/// answering requests.
#[pyclass(name = "Service", module = "evospikenet.zenoh_comm", extends = PyHandle, frozen)]
pub struct PyService;

/// A bounded queue of received messages, returned by
/// :meth:`ZenohCommunicator.subscribe_queue`.
///
/// Messages arriving while the queue is full are dropped and counted in
/// ``stats()["dropped_queue_full"]`` (and a rate-limited warning is logged). Closing
/// it stops the subscription; messages already queued can still be read.
#[pyclass(name = "MessageQueue", module = "evospikenet.zenoh_comm", extends = PyHandle, frozen)]
pub struct PyMessageQueue {
    rx: Receiver<Message>,
    with_info: bool,
}

impl PyMessageQueue {
    pub fn new(rx: Receiver<Message>, with_info: bool) -> Self {
        PyMessageQueue { rx, with_info }
    }

    /// Wait for the next message: `Ok(None)` on timeout or when closed and drained.
    fn next_message(slf: &Bound<'_, Self>, timeout: Option<Duration>) -> PyResult<Option<Message>> {
        let py = slf.py();
        let rx = &slf.get().rx;
        if let Ok(m) = rx.try_recv() {
            return Ok(Some(m));
        }
        let declared = &slf.as_super().get().declared;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            match crate::py::detach(py, || rx.recv_timeout(slice)) {
                Ok(m) => return Ok(Some(m)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    py.check_signals()?;
                    if !declared.is_active() && rx.is_empty() {
                        return Ok(None);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn to_python(&self, py: Python<'_>, msg: Message) -> PyResult<Py<PyAny>> {
        let data = codec::decode(py, msg.format, msg.payload)?;
        if self.with_info {
            Ok((data, msg.sender, msg.topic)
                .into_pyobject(py)?
                .into_any()
                .unbind())
        } else {
            Ok(data)
        }
    }
}

#[pymethods]
impl PyMessageQueue {
    /// Return the next message's data (or ``(data, sender, topic)`` with ``with_info``).
    ///
    /// Blocks up to ``timeout`` seconds (forever if ``None``; Ctrl-C interrupts).
    ///
    /// Raises:
    ///     queue.Empty: nothing arrived in time, or the queue was closed and is drained.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = if block {
            crate::py::args::timeout_arg("timeout", timeout)?
        } else {
            Some(Duration::ZERO)
        };
        match Self::next_message(slf, timeout)? {
            Some(m) => slf.get().to_python(slf.py(), m),
            None => Err(errors::queue_empty(slf.py())),
        }
    }

    /// ``get(block=False)``.
    fn get_nowait(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::get(slf, false, None)
    }

    /// How many messages are waiting.
    fn qsize(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message is waiting.
    fn empty(&self) -> bool {
        self.rx.is_empty()
    }

    fn __len__(&self) -> usize {
        self.rx.len()
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Iteration blocks for the next message and ends when the queue is closed.
    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Option<Py<PyAny>>> {
        match Self::next_message(slf, None)? {
            Some(m) => Ok(Some(slf.get().to_python(slf.py(), m)?)),
            None => Ok(None),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        format!(
            "MessageQueue(topic={:?}, waiting={})",
            slf.as_super().get().topic,
            slf.get().rx.len()
        )
    }
}
