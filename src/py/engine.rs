//! The binding of the simulation engine ([`crate::engine`]): `Engine`.
//!
//! A run is one call: the engine steps with the GIL released in slices of at most
//! [`SLICE`], and between slices takes the GIL to check for signals (Ctrl-C raises
//! `KeyboardInterrupt` within a slice) and to call the progress callback.

use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyList};

use crate::engine::exchange::{Exchange, ExchangePlan, ExchangeStats};
use crate::engine::{Engine, EngineError, NetworkSpec, RunStats};
use crate::py::comm::PyZenohCommunicator;
use crate::py::detach;
use crate::py::errors::invalid_value;

/// The longest stretch a run computes without looking at signals and progress.
const SLICE: Duration = Duration::from_millis(100);

/// Some or all regions of a network, stepped in Rust.
#[pyclass(name = "Engine", module = "evospikenet._native", frozen)]
pub struct PyEngine {
    engine: Mutex<Engine>,
    exchange: Mutex<Option<Exchange>>,
    /// The counters after the last step or slice, readable during a run (from the
    /// progress callback) while `engine` and `exchange` are held by it.
    counters: Mutex<(RunStats, ExchangeStats)>,
}

fn busy() -> PyErr {
    PyRuntimeError::new_err("this engine is in use by another thread (one call at a time)")
}

impl PyEngine {
    fn lock(&self) -> PyResult<MutexGuard<'_, Engine>> {
        self.engine.try_lock().ok_or_else(busy)
    }

    fn note(&self, engine: &Engine, exchange: Option<&Exchange>) {
        let ex = exchange.map(Exchange::stats).unwrap_or_default();
        *self.counters.lock() = (engine.stats(), ex);
    }
}

fn region_index(engine: &Engine, name: &str) -> PyResult<usize> {
    engine
        .spec()
        .region_index(name)
        .ok_or_else(|| invalid_value(format!("no region {name:?} in this network")))
}

#[pymethods]
impl PyEngine {
    /// Builds the engine from a network description (JSON, see `evospikenet.brain`);
    /// `local` names the regions this engine runs (default: all).
    #[new]
    #[pyo3(signature = (description, local=None))]
    fn new(py: Python<'_>, description: &str, local: Option<Vec<String>>) -> PyResult<Self> {
        let spec = parse(description)?;
        let engine = detach(py, move || Engine::new(spec, local.as_deref()))?;
        Ok(Self {
            engine: Mutex::new(engine),
            exchange: Mutex::new(None),
            counters: Mutex::new(Default::default()),
        })
    }

    /// Runs `steps` steps with the GIL released; calls `progress(steps_done)` at most
    /// every `progress_every` seconds (at least 0.1). Returns the steps computed.
    #[pyo3(signature = (steps, progress=None, progress_every=1.0))]
    fn run(
        &self,
        py: Python<'_>,
        steps: u64,
        progress: Option<Bound<'_, PyAny>>,
        progress_every: f64,
    ) -> PyResult<u64> {
        if !(progress_every.is_finite() && progress_every >= 0.0) {
            return Err(invalid_value(format!(
                "progress_every: expected a number of seconds >= 0, got {progress_every}"
            )));
        }
        let every = Duration::from_secs_f64(progress_every.max(SLICE.as_secs_f64()));
        let mut engine = self.lock()?;
        let mut exchange = self.exchange.try_lock().ok_or_else(busy)?;
        let mut done = 0;
        let mut since = Duration::ZERO;
        while done < steps {
            let started = std::time::Instant::now();
            let left = steps - done;
            let eng = &mut *engine;
            let slice = match exchange.as_mut() {
                Some(ex) => detach(py, move || ex.run_for(eng, left, SLICE)),
                None => detach(py, move || eng.run_for(left, SLICE)),
            };
            let mut slice = slice;
            if let (Ok(n), Some(ex)) = (&slice, exchange.as_mut()) {
                if done + n == steps {
                    // The last window may be short: send it now.
                    if let Err(e) = detach(py, || ex.flush()) {
                        slice = Err(e);
                    }
                }
            }
            self.note(&engine, exchange.as_ref());
            done += slice?;
            py.check_signals()?;
            since += started.elapsed();
            if let Some(cb) = &progress {
                if since >= every || done == steps {
                    since = Duration::ZERO;
                    cb.call1((done,))?;
                }
            }
        }
        Ok(done)
    }

    /// Hands in the remote spikes this step needs (`(region, step, uint32 indices)`
    /// for each pair of :meth:`needed`), then computes one step.
    #[pyo3(signature = (remote=None))]
    fn step(&self, py: Python<'_>, remote: Option<Bound<'_, PyList>>) -> PyResult<()> {
        let mut engine = self.lock()?;
        for item in remote.iter().flat_map(|l| l.iter()) {
            let (name, step, spikes): (String, u64, Bound<'_, PyAny>) = item.extract()?;
            let index = region_index(&engine, &name)?;
            let arr = spikes.cast::<PyArray1<u32>>().map_err(|_| {
                crate::py::errors::invalid_type(format!(
                    "remote spikes of region {name:?}: expected a 1-D numpy array of dtype uint32"
                ))
            })?;
            let ro = arr.readonly();
            let slice = ro.as_slice().map_err(|_| {
                invalid_value(format!("remote spikes of region {name:?}: not contiguous"))
            })?;
            engine.set_remote(index, step, slice)?;
        }
        let eng = &mut *engine;
        let r = detach(py, move || eng.step());
        self.note(&engine, None);
        Ok(r?)
    }

    /// Exchanges spikes with the nodes that run the other regions through ``comm``, from
    /// now on in :meth:`run`: ``owners`` is the node id of every region in network
    /// order; a peer that delivers nothing for ``timeout`` seconds raises
    /// ``TimeoutError`` naming it and its regions.
    fn exchange_with(
        &self,
        py: Python<'_>,
        comm: &Bound<'_, PyZenohCommunicator>,
        owners: Vec<String>,
        timeout: f64,
    ) -> PyResult<()> {
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(invalid_value(format!(
                "timeout: expected a number of seconds > 0, got {timeout}"
            )));
        }
        let comm = comm.borrow().comm()?;
        let engine = self.lock()?;
        let mut slot = self.exchange.try_lock().ok_or_else(busy)?;
        let plan = ExchangePlan {
            owners,
            timeout: Duration::from_secs_f64(timeout),
        };
        let eng = &*engine;
        let ex = detach(py, move || Exchange::new(comm, eng, plan))?;
        *slot = Some(ex);
        Ok(())
    }

    /// ``{"sent", "received", "duplicates", "malformed", "resend_requests",
    /// "wait_seconds"}`` of the exchange (zeros without one; readable during a run, as
    /// of the last slice).
    fn exchange_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.counters.lock().1;
        let d = [
            ("sent", s.sent),
            ("received", s.received),
            ("duplicates", s.duplicates),
            ("malformed", s.malformed),
            ("resend_requests", s.resend_requests),
        ]
        .into_py_dict(py)?;
        d.set_item("wait_seconds", s.wait.as_secs_f64())?;
        Ok(d)
    }

    /// Ends the exchange: its subscriptions and resend service are withdrawn.
    fn close_exchange(&self, py: Python<'_>) -> PyResult<()> {
        let ex = self.exchange.try_lock().ok_or_else(busy)?.take();
        if let Some(mut ex) = ex {
            detach(py, move || ex.close());
        }
        Ok(())
    }

    /// The remote spikes step `step` needs: `[(region, source_step), ...]`.
    fn needed(&self, step: u64) -> PyResult<Vec<(String, u64)>> {
        let engine = self.lock()?;
        Ok(engine
            .needed(step)
            .into_iter()
            .map(|(r, s)| (engine.spec().regions[r].name.clone(), s))
            .collect())
    }

    /// The spikes of every local region at the last step computed, in
    /// :attr:`local_regions` order.
    fn last_spikes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArray1<u32>>>> {
        let engine = self.lock()?;
        Ok((0..engine.local_regions().len())
            .map(|k| PyArray1::from_slice(py, engine.last_spikes(k)))
            .collect())
    }

    /// Starts recording spikes from the next step on.
    fn start_recording(&self) -> PyResult<()> {
        self.lock()?.start_recording();
        Ok(())
    }

    /// Records the potentials of `neurons` of local region `region` after every step.
    fn add_probe(&self, region: &str, neurons: Vec<u32>) -> PyResult<()> {
        Ok(self.lock()?.add_probe(region, neurons)?)
    }

    /// What was recorded since recording started or was last taken:
    /// ``{"first_step", "spikes": {region: (indices, offsets)}, "probes": [(region,
    /// neurons, values[steps, len(neurons)])]}``, or None if nothing is recorded.
    fn take_recording<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(rec) = self.lock()?.take_recording() else {
            return Ok(None);
        };
        let out = PyDict::new(py);
        out.set_item("first_step", rec.first_step)?;
        let spikes = PyDict::new(py);
        for (name, r) in rec.spikes {
            let indices = PyArray1::from_vec(py, r.indices);
            let offsets = PyArray1::from_vec(py, r.offsets);
            spikes.set_item(name, (indices, offsets))?;
        }
        out.set_item("spikes", spikes)?;
        let probes = PyList::empty(py);
        for p in rec.probes {
            let k = p.neurons.len();
            let rows = p.values.len().checked_div(k).unwrap_or(0);
            let values = PyArray1::from_vec(py, p.values).reshape([rows, k])?;
            let values: Bound<'py, PyArray2<f32>> = values;
            probes.append((p.region, PyArray1::from_vec(py, p.neurons), values))?;
        }
        out.set_item("probes", probes)?;
        Ok(Some(out))
    }

    /// The regions this engine runs, in network order.
    #[getter]
    fn local_regions(&self) -> PyResult<Vec<String>> {
        Ok(self
            .lock()?
            .local_regions()
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// The next step to compute (readable during a run).
    #[getter]
    fn current_step(&self) -> u64 {
        self.counters.lock().0.steps
    }

    /// Synapses built (the projections into local regions).
    #[getter]
    fn synapses(&self) -> PyResult<usize> {
        Ok(self.lock()?.synapses())
    }

    /// ``{"synapse_bytes", "state_bytes"}``: memory held by the synapses and the neurons.
    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (syn, state) = self.lock()?.bytes();
        let d = PyDict::new(py);
        d.set_item("synapse_bytes", syn)?;
        d.set_item("state_bytes", state)?;
        Ok(d)
    }

    /// ``{"steps", "spikes", "events", "updates"}`` since the engine was built (readable
    /// during a run, as of the last slice).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.counters.lock().0;
        [
            ("steps", s.steps),
            ("spikes", s.spikes),
            ("events", s.events),
            ("updates", s.updates),
        ]
        .into_py_dict(py)
    }
}

/// The default parameters of each model as the engine uses them:
/// ``{"lif_int": {...}, "lif_float": {...}, "izhikevich": {...}}``.
#[pyfunction]
fn engine_model_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let text = serde_json::to_string(&json_defaults()).expect("plain data");
    py.import("json")?.call_method1("loads", (text,))
}

/// Checks a network description (JSON) as the engine would, without building it;
/// raises `ValueError` naming what is wrong.
#[pyfunction]
fn engine_validate(description: &str) -> PyResult<()> {
    parse(description)?.validate()?;
    Ok(())
}

fn parse(description: &str) -> PyResult<NetworkSpec> {
    serde_json::from_str(description)
        .map_err(|e| invalid_value(format!("network description: {e}")))
}

fn json_defaults() -> serde_json::Value {
    use crate::engine::spec::{IzhikevichSpec, LifFloatSpec, LifIntSpec};
    serde_json::json!({
        "lif_int": LifIntSpec::default(),
        "lif_float": LifFloatSpec::default(),
        "izhikevich": IzhikevichSpec::default(),
    })
}

impl From<EngineError> for PyErr {
    fn from(err: EngineError) -> PyErr {
        crate::py::errors::engine_error(err)
    }
}

/// Adds `Engine` and `engine_model_defaults` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_function(wrap_pyfunction!(engine_model_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(engine_validate, m)?)
}
