//! The neuron models' native step functions. Each model has one step function over
//! its arguments and a [`Spikes`] destination; [`step_functions!`] declares its two
//! Python entry points, `kernel_<model>_step` (a bool mask into `out`) and
//! `kernel_<model>_step_indices` (sorted uint32 indices), from one argument list.

use numpy::prelude::*;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PySlice;

use super::args::{borrow_ro, int16_arg, rw, slice, slice_mut, threads_arg, type_err, ParamArg};
use crate::kernels::izhikevich::{Abcd, IzhikevichParams, IzhikevichPopulation};
use crate::kernels::lif_float::{LifFloatParams, LifFloatPopulation};
use crate::kernels::lif_int::{Current, LifIntParams, LifIntPopulation};
use crate::kernels::{step_indices, step_indices_into, step_mask, Population};
use crate::py::detach;

/// Where a step's spikes go.
#[derive(Clone, Copy)]
enum Spikes<'a, 'py> {
    /// Into the caller's bool mask.
    Mask(&'a Bound<'py, PyAny>),
    /// As sorted uint32 indices: into the caller's buffer (at least one entry per neuron)
    /// if given, otherwise into a new array.
    Indices(Option<&'a Bound<'py, PyAny>>),
}

/// Steps `pop` with the GIL released and delivers its spikes as `spikes` asks. Returns
/// nothing for a mask; for indices, the new array (handed to numpy without a copy) or
/// the view of the caller's buffer that holds them.
fn drive<'py, P: Population>(
    py: Python<'py>,
    pop: P,
    spikes: Spikes<'_, 'py>,
    threads: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let threads = threads_arg(threads, pop.len())?;
    match spikes {
        Spikes::Mask(out) => {
            let mut out = rw::<bool>(out, "out", "bool")?;
            let mask = slice_mut(&mut out, "out")?;
            detach(py, move || step_mask(pop, mask, threads))?;
            Ok(None)
        }
        Spikes::Indices(None) => {
            let idx = detach(py, move || step_indices(pop, threads))?;
            Ok(Some(idx.into_pyarray(py).into_any()))
        }
        Spikes::Indices(Some(buffer)) => {
            let mut out = rw::<u32>(buffer, "out", "uint32")?;
            let slots = slice_mut(&mut out, "out")?;
            let k = detach(py, move || step_indices_into(pop, slots, threads))?;
            drop(out);
            let k = isize::try_from(k).expect("a slice length fits in isize");
            Ok(Some(buffer.get_item(PySlice::new(py, 0, k, 1))?))
        }
    }
}

/// Declares a model's two Python entry points over the step function `$step`, which
/// takes the state arrays, a [`Spikes`] destination, the parameters grouped in arrays
/// (one array per Rust type) and `threads`. `[$($sep)*]` goes between the state and the
/// parameters in the Python signature (`*,` for keyword-only parameters).
macro_rules! step_functions {
    (
        $(#[doc = $doc:literal])*
        fn $mask:ident / $indices:ident = $step:ident(
            $($state:ident: $state_ty:ty),*;
            [$($sep:tt)*]
            $([$($param:ident),*]: $param_ty:ty),*
        )
    ) => {
        $(#[doc = $doc])*
        ///
        /// Writes the bool spike mask into `out`.
        #[pyfunction]
        #[pyo3(signature = ($($state,)* out, $($sep)* $($($param,)*)* threads = None))]
        #[allow(clippy::too_many_arguments)]
        fn $mask<'py>(
            py: Python<'py>,
            $($state: $state_ty,)*
            out: &Bound<'py, PyAny>,
            $($($param: $param_ty,)*)*
            threads: Option<i64>,
        ) -> PyResult<()> {
            let spikes = Spikes::Mask(out);
            $step(py, $($state,)* spikes, $([$($param),*],)* threads).map(|_| ())
        }

        $(#[doc = $doc])*
        ///
        /// Returns the sorted uint32 indices of the neurons that spiked (in `out[:k]`
        /// when a uint32 buffer `out` of at least `len(v)` entries is given).
        #[pyfunction]
        #[pyo3(signature = ($($state,)* $($sep)* $($($param,)*)* out = None, threads = None))]
        #[allow(clippy::too_many_arguments)]
        fn $indices<'py>(
            py: Python<'py>,
            $($state: $state_ty,)*
            $($($param: $param_ty,)*)*
            out: Option<&Bound<'py, PyAny>>,
            threads: Option<i64>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let spikes = Spikes::Indices(out);
            let indices = $step(py, $($state,)* spikes, $([$($param),*],)* threads)?;
            Ok(indices.expect("the index form always returns an array"))
        }
    };
}

step_functions! {
    /// Integer LIF step (EvoSpikeNet's `LIFNeuronLayer`) in place on `v` (int16), with
    /// `i_syn` int16 or int32. `leak`, `threshold` and `reset` must fit in int16.
    fn kernel_lif_int_step / kernel_lif_int_step_indices = lif_int(
        v: &Bound<'py, PyAny>, i_syn: &Bound<'py, PyAny>;
        []
        [leak, threshold, reset]: i64
    )
}

step_functions! {
    /// Current-based LIF step with exact integration (NEST's `iaf_psc_exp`), in place on
    /// `v`, `i_syn` (float32) and `refractory` (int32); `i_in` is a float32 array, a float
    /// or None.
    fn kernel_lif_float_step / kernel_lif_float_step_indices = lif_float(
        v: &Bound<'py, PyAny>,
        i_syn: &Bound<'py, PyAny>,
        refractory: &Bound<'py, PyAny>,
        i_in: Option<&Bound<'py, PyAny>>;
        [*,]
        [tau_m, tau_syn, c_m, dt, e_l, v_th, v_reset, t_ref, i_e]: f64
    )
}

step_functions! {
    /// Izhikevich step in place on `v` and `u` (float32); `i_in`, `a`, `b`, `c`, `d` are
    /// each a float or a float32 array.
    fn kernel_izhikevich_step / kernel_izhikevich_step_indices = izhikevich(
        v: &Bound<'py, PyAny>, u: &Bound<'py, PyAny>, i_in: &Bound<'py, PyAny>;
        [*,]
        [a, b, c, d]: &Bound<'py, PyAny>,
        [dt, v_peak]: f64
    )
}

#[allow(clippy::too_many_arguments)]
fn lif_int<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    spikes: Spikes<'_, 'py>,
    [leak, threshold, reset]: [i64; 3],
    threads: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let p = LifIntParams {
        leak: int16_arg("leak", leak)?,
        threshold: int16_arg("threshold", threshold)?,
        reset: int16_arg("reset", reset)?,
    };
    let mut v = rw::<i16>(v, "v", "int16")?;
    let v = slice_mut(&mut v, "v")?;

    fn with_current<'py, I: Current + Element>(
        py: Python<'py>,
        p: LifIntParams,
        v: &mut [i16],
        i_syn: &Bound<'py, PyArray1<I>>,
        spikes: Spikes<'_, 'py>,
        threads: Option<i64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let i_syn = borrow_ro(i_syn, "i_syn")?;
        let pop = LifIntPopulation::new(p, v, slice(&i_syn, "i_syn")?)?;
        drive(py, pop, spikes, threads)
    }

    if let Ok(i) = i_syn.cast::<PyArray1<i16>>() {
        with_current(py, p, v, i, spikes, threads)
    } else if let Ok(i) = i_syn.cast::<PyArray1<i32>>() {
        with_current(py, p, v, i, spikes, threads)
    } else {
        Err(type_err("i_syn", "int16 or int32", i_syn))
    }
}

#[allow(clippy::too_many_arguments)]
fn lif_float<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    refractory: &Bound<'py, PyAny>,
    i_in: Option<&Bound<'py, PyAny>>,
    spikes: Spikes<'_, 'py>,
    [tau_m, tau_syn, c_m, dt, e_l, v_th, v_reset, t_ref, i_e]: [f64; 9],
    threads: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let params = LifFloatParams {
        tau_m,
        tau_syn,
        c_m,
        dt,
        e_l,
        v_th,
        v_reset,
        t_ref,
        i_e,
    };
    let props = params.propagators()?;
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
    drive(py, pop, spikes, threads)
}

#[allow(clippy::too_many_arguments)]
fn izhikevich<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    i_in: &Bound<'py, PyAny>,
    spikes: Spikes<'_, 'py>,
    [a, b, c, d]: [&Bound<'py, PyAny>; 4],
    [dt, v_peak]: [f64; 2],
    threads: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let p = IzhikevichParams {
        dt: dt as f32,
        v_peak: v_peak as f32,
    };
    p.validate()?;
    let mut v = rw::<f32>(v, "v", "float32")?;
    let mut u = rw::<f32>(u, "u", "float32")?;
    let i_in = ParamArg::extract(i_in, "i_in")?;
    let a = ParamArg::extract(a, "a")?;
    let b = ParamArg::extract(b, "b")?;
    let c = ParamArg::extract(c, "c")?;
    let d = ParamArg::extract(d, "d")?;
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
    drive(py, pop, spikes, threads)
}

/// Adds the step functions to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_lif_int_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_int_step_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_float_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_float_step_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_izhikevich_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_izhikevich_step_indices, m)?)
}
