//! The callback thread: user callbacks run here, one at a time, with the GIL held, so
//! Zenoh's receive threads never wait for the GIL. Fed by a bounded channel: when Python
//! falls behind, the receive threads wait (back-pressure), nothing is dropped.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::comm::{Message, Responder};
use crate::monitor::{escape_for_log, Monitor, Stats, PYTHON_LOGGER};
use crate::py::codec;
use crate::py::runtime;

/// Messages waiting for the callback thread before the receive threads block.
const QUEUE_CAPACITY: usize = 16_384;
/// Jobs run per GIL acquisition (amortizes the acquisition over bursts).
const BATCH: usize = 256;

/// A subscriber callback and how to call it.
pub struct CallbackTarget {
    pub callback: Py<PyAny>,
    pub with_info: bool,
    /// Cleared when the subscription is undeclared.
    pub active: Arc<AtomicBool>,
}

/// A `serve` handler and the serializer of its replies.
pub struct ServeTarget {
    pub handler: Py<PyAny>,
    pub reply_format: crate::codec::Format,
    /// Cleared when the service is undeclared.
    pub active: Arc<AtomicBool>,
}

pub enum Job {
    Deliver(Arc<CallbackTarget>, Message),
    Serve(Arc<ServeTarget>, Message, Responder),
}

/// The thread and the channel into it.
pub struct Dispatcher {
    tx: Sender<Job>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

/// How long the callback thread waits before looking at its stop flag again.
const POLL: Duration = Duration::from_millis(100);

impl Dispatcher {
    pub fn start(node_id: &str, monitor: Arc<Monitor>) -> Dispatcher {
        let (tx, rx) = bounded::<Job>(QUEUE_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("evospikenet-callbacks-{node_id}"))
            .spawn(move || run(rx, thread_stop, monitor))
            .expect("spawning the callback thread");
        Dispatcher {
            tx,
            stop,
            thread_id: thread.thread().id(),
            thread: Some(thread),
        }
    }

    /// A handle that Zenoh's receive threads use to queue jobs.
    pub fn queue(&self) -> JobQueue {
        JobQueue {
            tx: self.tx.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Stop once the jobs already queued ran. Call without the GIL. From the callback
    /// thread itself (close() inside a callback) it only asks the loop to end.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if std::thread::current().id() == self.thread_id {
            return; // close() called from a callback: the loop ends when it returns.
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sending side of the job channel, for Zenoh's receive threads.
#[derive(Clone)]
pub struct JobQueue {
    tx: Sender<Job>,
    stop: Arc<AtomicBool>,
}

impl JobQueue {
    /// Queue a job, waiting while the queue is full (back-pressure), unless the
    /// communicator is closing, in which case the job is dropped.
    pub fn push(&self, mut job: Job) {
        loop {
            match self.tx.send_timeout(job, POLL) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(j)) if !self.stop.load(Ordering::Acquire) => job = j,
                Err(_) => return,
            }
        }
    }
}

fn run(rx: Receiver<Job>, stop: Arc<AtomicBool>, monitor: Arc<Monitor>) {
    // Waits without the GIL; after stop, runs what is queued, then ends.
    loop {
        let first = match rx.recv_timeout(POLL) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        let Some(_ticket) = runtime::ticket() else {
            return; // the interpreter is exiting
        };
        Python::attach(|py| {
            execute(py, first, &monitor);
            for _ in 1..BATCH {
                match rx.try_recv() {
                    Ok(job) => execute(py, job, &monitor),
                    Err(_) => break,
                }
            }
        });
    }
}

/// Run one job. An exception from user code is counted and logged with its traceback;
/// a panic (a bug of ours, in decoding or dispatch) is caught here, counted and logged,
/// and the thread goes on with the next job: one bad message never stops delivery.
fn execute(py: Python<'_>, job: Job, monitor: &Monitor) {
    let (topic, outcome, what) = match job {
        Job::Deliver(target, msg) => {
            if !target.active.load(Ordering::Acquire) {
                return; // undeclared since it was queued
            }
            let topic = msg.topic.clone();
            let outcome = contain(|| deliver(py, &target, msg, monitor));
            (topic, outcome, ("Subscriber callback", "raised"))
        }
        Job::Serve(target, msg, responder) => {
            if !target.active.load(Ordering::Acquire) {
                return;
            }
            let topic = msg.topic.clone();
            let mut responder = Some(responder);
            let outcome = contain(|| serve(py, &target, msg, &mut responder));
            if let Some(r) = responder {
                // A panic left the request unanswered: tell the requester at once (it
                // would otherwise send it again until its timeout).
                let _ = crate::py::detach(py, || r.reply_error("internal error"));
            }
            (topic, outcome, ("Request handler", "failed"))
        }
    };
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            Stats::add(&monitor.stats.dropped_by_callback_error, 1);
            let (who, failed) = what;
            let what = format!("{who} for topic {} {failed}", escape_for_log(&topic));
            report(py, monitor, &err, &what);
        }
        Err(panic) => monitor.internal_error(&topic, panic_message(&*panic)),
    }
}

/// `f`'s result, or the payload of its panic.
fn contain<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    // Unwind safety: what a panic interrupts is one message's handling; the state it
    // shares with the next ones (the monitor's counters, the targets) is atomic.
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// Decode a message and call the subscriber's callback with it. A payload that does not
/// decode (authentic, or plaintext on a keyless node, but malformed) never reaches the
/// callback: it is counted and logged like other drops.
fn deliver(
    py: Python<'_>,
    target: &CallbackTarget,
    msg: Message,
    monitor: &Monitor,
) -> PyResult<()> {
    testing::check(&msg.payload);
    let data = match codec::decode(py, msg.format, msg.payload) {
        Ok(data) => data,
        Err(err) => {
            monitor.undecodable(&msg.topic, &err.to_string());
            return Ok(());
        }
    };
    if target.with_info {
        target.callback.call1(py, (data, msg.sender, msg.topic))?;
    } else {
        target.callback.call1(py, PyTuple::new(py, [data])?)?;
    }
    Ok(())
}

/// What a caught panic said (`panic!` and `expect` messages are `&str` or `String`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

/// Decode a request, call the handler and send its encoded reply with `responder`
/// (taken out of the option once used). If the handler raises, the requester is told
/// the exception's type.
fn serve(
    py: Python<'_>,
    target: &ServeTarget,
    msg: Message,
    responder: &mut Option<Responder>,
) -> PyResult<()> {
    let handled = (|| {
        testing::check(&msg.payload);
        let data = codec::decode(py, msg.format, msg.payload)?;
        let result = target.handler.call1(py, PyTuple::new(py, [data])?)?;
        codec::encode(result.bind(py), target.reply_format)
    })();
    let encoded = match handled {
        Ok(encoded) => encoded,
        Err(err) => {
            // Only the exception's type goes back: its message may hold local details.
            let kind = err
                .get_type(py)
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "Exception".into());
            let why = format!("handler raised {kind}");
            if let Some(r) = responder.take() {
                let _ = crate::py::detach(py, || r.reply_error(&why));
            }
            return Err(err);
        }
    };
    let format = target.reply_format;
    let Some(responder) = responder.take() else {
        return Ok(());
    };
    crate::py::detach(py, || {
        responder.reply_with(format, encoded.len(), |buf| {
            encoded.write_to(buf);
            Ok(())
        })
    })
    .map_err(Into::into)
}

/// Log an exception from user code with its traceback on `evospikenet.zenoh_comm`, at
/// most a few per period (the input that made it raise may come from the network).
fn report(py: Python<'_>, monitor: &Monitor, err: &PyErr, what: &str) {
    let Some(suppressed) = monitor.callback_failed.admit() else {
        return;
    };
    let what = if suppressed > 0 {
        format!("{what} ({suppressed} similar errors suppressed)")
    } else {
        what.to_owned()
    };
    let what = what.as_str();
    let logged = (|| -> PyResult<()> {
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "exc_info"), err.clone_ref(py).into_value(py))?;
        logger(py)?.call_method(intern!(py, "error"), ("%s", what), Some(&kwargs))?;
        Ok(())
    })();
    if logged.is_err() {
        err.clone_ref(py).print(py);
    }
}

/// The `evospikenet.zenoh_comm` logger (`logging.getLogger` returns the same object for a
/// name every time, so it is looked up once).
fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || {
            let get_logger = py.import("logging")?.getattr("getLogger")?;
            Ok::<_, PyErr>(get_logger.call1((PYTHON_LOGGER,))?.unbind())
        })
        .map(|l| l.bind(py))
}

/// A test hook: makes the callback thread panic on one chosen payload, standing for a
/// bug in decoding, so that tests can check that a panic is contained. Off unless a test
/// turns it on (`_native._panic_on_payload`); off, it costs one relaxed load a message.
pub mod testing {
    use std::sync::atomic::{AtomicBool, Ordering};

    use parking_lot::Mutex;
    use pyo3::prelude::*;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static PAYLOAD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    pub(super) fn check(payload: &[u8]) {
        if ARMED.load(Ordering::Relaxed) && *PAYLOAD.lock() == payload {
            panic!("test hook: panicking on the payload chosen by _panic_on_payload");
        }
    }

    /// Testing only: from now on the callback thread panics while decoding a message
    /// whose payload bytes are `payload` (`None` turns it off).
    #[pyfunction]
    #[pyo3(signature = (payload))]
    pub fn _panic_on_payload(payload: Option<Vec<u8>>) {
        let mut chosen = PAYLOAD.lock();
        ARMED.store(payload.is_some(), Ordering::Relaxed);
        *chosen = payload.unwrap_or_default();
    }
}
