//! The neuron models' native step functions, one per model: `kernel_<model>_step`
//! advances the population and returns its spikes in the form `spikes` names, a bool
//! mask (`"mask"`) or sorted uint32 indices (`"indices"`), into `out` when given.

use numpy::prelude::*;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PySlice;

use super::args::{
    borrow_ro, float_attr, int16_arg, rw, slice, slice_mut, threads_arg, type_err, ParamArg,
};
use crate::kernels::izhikevich::{Abcd, IzhikevichParams, IzhikevichPopulation};
use crate::kernels::lif_float::{LifFloatParams, LifFloatPopulation};
use crate::kernels::lif_int::{Current, LifIntParams, LifIntPopulation};
use crate::kernels::{step_indices, step_indices_into, step_mask, Population};
use crate::py::detach;
use crate::py::errors::invalid_value;

/// The form of a step's spikes: the `spikes` argument of every step function, `"mask"`
/// or `"indices"`; anything else is a `ValueError` naming the argument and the allowed
/// values.
#[derive(Clone, Copy)]
enum SpikeForm {
    /// A bool mask, one entry per neuron.
    Mask,
    /// The sorted uint32 indices of the neurons that spiked.
    Indices,
}

impl SpikeForm {
    fn parse(spikes: &str) -> PyResult<Self> {
        match spikes {
            "mask" => Ok(Self::Mask),
            "indices" => Ok(Self::Indices),
            other => Err(invalid_value(format!(
                "spikes: expected \"mask\" or \"indices\", got {other:?}"
            ))),
        }
    }
}

/// Steps `pop` with the GIL released and returns its spikes in the form `spikes` names
/// (checked before the step, so a bad name leaves the state untouched): a mask
/// (into `out` when given, and then `out` itself), or indices (into `out[:k]` when a
/// buffer `out` of at least one entry per neuron is given, otherwise a new array handed to
/// numpy without a copy).
fn drive<'py, P: Population>(
    py: Python<'py>,
    pop: P,
    (spikes, out): (&str, Option<&Bound<'py, PyAny>>),
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let spikes = SpikeForm::parse(spikes)?;
    let threads = threads_arg(threads, pop.len())?;
    match (spikes, out) {
        (SpikeForm::Mask, out) => {
            let out = match out {
                Some(out) => out.clone(),
                None => PyArray1::<bool>::zeros(py, pop.len(), false).into_any(),
            };
            let mut mask = rw::<bool>(&out, "out", "bool")?;
            let mask = slice_mut(&mut mask, "out")?;
            detach(py, move || step_mask(pop, mask, threads))?;
            Ok(out)
        }
        (SpikeForm::Indices, None) => {
            let idx = detach(py, move || step_indices(pop, threads))?;
            Ok(idx.into_pyarray(py).into_any())
        }
        (SpikeForm::Indices, Some(buffer)) => {
            let mut out = rw::<u32>(buffer, "out", "uint32")?;
            let slots = slice_mut(&mut out, "out")?;
            let k = detach(py, move || step_indices_into(pop, slots, threads))?;
            drop(out);
            let k = isize::try_from(k).expect("a slice length fits in isize");
            buffer.get_item(PySlice::new(py, 0, k, 1))
        }
    }
}

/// Integer LIF step (EvoSpikeNet's `LIFNeuronLayer`) in place on `v` (int16), with
/// `i_syn` int16 or int32. `leak`, `threshold` and `reset` must fit in int16.
///
/// Returns the spikes as `spikes` names them: `"mask"`, a bool mask (`out` itself when a
/// bool array of `len(v)` is given); `"indices"`, the sorted uint32 indices (`out[:k]`
/// when a uint32 buffer `out` of at least `len(v)` entries is given). Any other `spikes`
/// raises ValueError. The same holds for every step function.
#[pyfunction]
#[pyo3(signature = (
    v, i_syn, leak, threshold, reset, *, spikes = "mask", out = None, threads = None
))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_int_step<'py>(
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    leak: i64,
    threshold: i64,
    reset: i64,
    spikes: &str,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let p = LifIntParams {
        leak: int16_arg("leak", leak)?,
        threshold: int16_arg("threshold", threshold)?,
        reset: int16_arg("reset", reset)?,
    };
    let py = v.py();
    let mut v = rw::<i16>(v, "v", "int16")?;
    let v = slice_mut(&mut v, "v")?;

    fn with_current<'py, I: Current + Element>(
        py: Python<'py>,
        p: LifIntParams,
        v: &mut [i16],
        i_syn: &Bound<'py, PyArray1<I>>,
        spikes: (&str, Option<&Bound<'py, PyAny>>),
        threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let i_syn = borrow_ro(i_syn, "i_syn")?;
        let pop = LifIntPopulation::new(p, v, slice(&i_syn, "i_syn")?)?;
        drive(py, pop, spikes, threads)
    }

    if let Ok(i) = i_syn.cast::<PyArray1<i16>>() {
        with_current(py, p, v, i, (spikes, out), threads)
    } else if let Ok(i) = i_syn.cast::<PyArray1<i32>>() {
        with_current(py, p, v, i, (spikes, out), threads)
    } else {
        Err(type_err("i_syn", "int16 or int32", i_syn))
    }
}

/// Current-based LIF step with exact integration (NEST's `iaf_psc_exp`), in place on
/// `v`, `i_syn` (float32) and `refractory` (int32); `i_in` is a float32 array, a float
/// or None. The parameters are the float attributes of `params` (a `LifFloatParams`).
/// `spikes` and `out` as in `kernel_lif_int_step`.
#[pyfunction]
#[pyo3(signature = (
    v, i_syn, refractory, i_in, params, *, spikes = "mask", out = None, threads = None
))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_float_step<'py>(
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    refractory: &Bound<'py, PyAny>,
    i_in: Option<&Bound<'py, PyAny>>,
    params: &Bound<'py, PyAny>,
    spikes: &str,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = |name: &str| float_attr(params, name);
    let params = LifFloatParams {
        tau_m: f("tau_m")?,
        tau_syn: f("tau_syn")?,
        c_m: f("c_m")?,
        dt: f("dt")?,
        e_l: f("e_l")?,
        v_th: f("v_th")?,
        v_reset: f("v_reset")?,
        t_ref: f("t_ref")?,
        i_e: f("i_e")?,
    };
    let props = params.propagators()?;
    let py = v.py();
    let mut v = rw::<f32>(v, "v", "float32")?;
    let mut i_syn = rw::<f32>(i_syn, "i_syn", "float32")?;
    let mut refractory = rw::<i32>(refractory, "refractory", "int32")?;
    let i_in = match i_in {
        Some(x) => ParamArg::extract(x, "i_in")?,
        None => ParamArg::Scalar(0.0),
    };
    let pop = LifFloatPopulation::new(
        props,
        slice_mut(&mut v, "v")?,
        slice_mut(&mut i_syn, "i_syn")?,
        slice_mut(&mut refractory, "refractory")?,
        i_in.param("i_in")?,
    )?;
    drive(py, pop, (spikes, out), threads)
}

/// Izhikevich step in place on `v` and `u` (float32); `i_in` is a float or a float32
/// array. The parameters are the attributes of `params` (an `IzhikevichParams`): `a`,
/// `b`, `c`, `d` each a float or a float32 array, `dt` and `v_peak` floats. `spikes` and
/// `out` as in `kernel_lif_int_step`.
#[pyfunction]
#[pyo3(signature = (v, u, i_in, params, *, spikes = "mask", out = None, threads = None))]
fn kernel_izhikevich_step<'py>(
    v: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    i_in: &Bound<'py, PyAny>,
    params: &Bound<'py, PyAny>,
    spikes: &str,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let p = IzhikevichParams {
        dt: float_attr(params, "dt")? as f32,
        v_peak: float_attr(params, "v_peak")? as f32,
    };
    p.validate()?;
    let py = v.py();
    let mut v = rw::<f32>(v, "v", "float32")?;
    let mut u = rw::<f32>(u, "u", "float32")?;
    let i_in = ParamArg::extract(i_in, "i_in")?;
    let attr = |name: &str| ParamArg::extract(&params.getattr(name)?, name);
    let [a, b, c, d] = [attr("a")?, attr("b")?, attr("c")?, attr("d")?];
    let abcd = Abcd {
        a: a.param("a")?,
        b: b.param("b")?,
        c: c.param("c")?,
        d: d.param("d")?,
    };
    let pop = IzhikevichPopulation::new(
        p,
        slice_mut(&mut v, "v")?,
        slice_mut(&mut u, "u")?,
        i_in.param("i_in")?,
        abcd,
    )?;
    drive(py, pop, (spikes, out), threads)
}

/// Adds the step functions to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_lif_int_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_float_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_izhikevich_step, m)?)
}
