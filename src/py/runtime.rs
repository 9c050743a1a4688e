//! The interpreter's lifetime as seen from our threads.
//!
//! At interpreter exit CPython ends any thread that tries to take the GIL, by unwinding it
//! with `pthread_exit`; through Rust frames that aborts the process. So every place where
//! a thread of ours (callback thread, Zenoh's threads logging) or a Python thread returning
//! from a GIL-free wait takes the GIL first takes a ticket: once the exit hook has run, no
//! ticket is given and the thread stays parked (the process is ending anyway), and the hook
//! waits for tickets already given to be returned before finalization goes on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use pyo3::prelude::*;

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static TICKETS: AtomicUsize = AtomicUsize::new(0);

pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(SeqCst)
}

/// Permission to take the GIL, held until the GIL-holding work is done.
pub struct Ticket(());

impl Drop for Ticket {
    fn drop(&mut self) {
        TICKETS.fetch_sub(1, SeqCst);
    }
}

/// A ticket, or `None` once the interpreter is exiting.
pub fn ticket() -> Option<Ticket> {
    TICKETS.fetch_add(1, SeqCst);
    if SHUTTING_DOWN.load(SeqCst) {
        TICKETS.fetch_sub(1, SeqCst);
        None
    } else {
        Some(Ticket(()))
    }
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Run `f` with the GIL released: the one helper every blocking or long call goes through.
/// If the interpreter started exiting meanwhile, the calling thread never comes back.
pub fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    let (value, ticket) = py.detach(|| {
        let value = f();
        match ticket() {
            Some(t) => (value, t),
            None => park_forever(),
        }
    });
    drop(ticket);
    value
}

/// Called by the package's `atexit` hook (`evospikenet/_runtime.py`).
#[pyfunction]
pub fn _interpreter_exiting(py: Python<'_>) {
    SHUTTING_DOWN.store(true, SeqCst);
    log::set_max_level(log::LevelFilter::Off);
    py.detach(|| {
        while TICKETS.load(SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// pyo3-log's bridge, taking a ticket before it takes the GIL.
pub struct GatedLogger(pub pyo3_log::Logger);

impl log::Log for GatedLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match ticket() {
            Some(_t) => self.0.enabled(metadata),
            None => false,
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Some(_t) = ticket() {
            self.0.log(record);
        }
    }

    fn flush(&self) {}
}

/// Route the core's `log` records to Python's `logging`.
///
/// Only this crate's records are forwarded (dependencies' would cost a GIL acquisition on
/// network threads). Levels are not cached, so `logging` configuration applies at any time.
pub fn install_logger(py: Python<'_>) -> PyResult<()> {
    let inner = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?
        .filter(log::LevelFilter::Off)
        .filter_target("evospikenet".to_owned(), log::LevelFilter::Debug);
    if log::set_boxed_logger(Box::new(GatedLogger(inner))).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    Ok(())
}
