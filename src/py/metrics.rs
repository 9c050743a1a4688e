//! Counters as Python values (`stats()`, `sender_stats()`), and the Prometheus server a
//! communicator starts for `ZenohConfig(metrics_port=...)` (`evospikenet.metrics`).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyTuple};

use crate::comm::Communicator;

/// `stats()` of an open communicator.
pub fn stats_dict<'py>(py: Python<'py>, comm: &Communicator) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in comm.stats().snapshot() {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// `sender_stats()`: one dict per (sender, topic) row of the core's table.
pub fn sender_rows<'py>(py: Python<'py>, comm: &Communicator) -> PyResult<Bound<'py, PyList>> {
    let rows = comm.monitor().senders.snapshot();
    let list = PyList::empty(py);
    for r in rows {
        let d = PyDict::new(py);
        d.set_item("sender", r.sender)?;
        d.set_item("topic", r.topic)?;
        d.set_item("received", r.counts.received)?;
        d.set_item("plaintext", r.counts.plaintext)?;
        d.set_item("undecryptable", r.counts.undecryptable)?;
        d.set_item("replayed", r.counts.replayed)?;
        d.set_item("last_seen", r.counts.last_seen_ms as f64 / 1000.0)?;
        list.append(d)?;
    }
    Ok(list)
}

/// Start `evospikenet.metrics.serve_node(node_id, stats, sender_stats, port)` over
/// `comm`; returns the server, whose `shutdown()` the communicator calls at close.
pub fn start_server(
    py: Python<'_>,
    node_id: &str,
    comm: &Arc<Communicator>,
    port: u16,
) -> PyResult<Py<PyAny>> {
    let stats = reader(py, comm, stats_dict)?;
    let senders = reader(py, comm, sender_rows)?;
    let server = py
        .import("evospikenet.metrics")?
        .getattr("serve_node")?
        .call1((node_id, stats, senders, port))?;
    Ok(server.unbind())
}

/// A Python callable taking no arguments that returns `read(comm)` when called.
fn reader<'py, T: 'static>(
    py: Python<'py>,
    comm: &Arc<Communicator>,
    read: for<'a> fn(Python<'a>, &Communicator) -> PyResult<Bound<'a, T>>,
) -> PyResult<Bound<'py, PyCFunction>> {
    let comm = comm.clone();
    PyCFunction::new_closure(
        py,
        None,
        None,
        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<Py<PyAny>> {
            Ok(read(args.py(), &comm)?.into_any().unbind())
        },
    )
}
