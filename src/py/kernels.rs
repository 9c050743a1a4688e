//! Python bindings of the spike-update kernels.
//!
//! Thin by design: each function checks its arguments, borrows the caller's numpy
//! arrays in place, releases the GIL (through the crate's one `detach` helper) and calls
//! the pure kernel in [`crate::kernels`]. Nothing is converted or copied: an array of the wrong dtype,
//! layout or length is refused with an error that names the argument, rather than
//! silently copied (a copy of a state array would also mean the update is lost).
//!
//! Exceptions (chosen in `py::errors`): `TypeError` for an argument of the wrong kind or dtype, `ValueError` for
//! a right-typed argument whose length, layout, writability or values are wrong. Every
//! check happens before any state is written.

use numpy::prelude::*;
use numpy::{BorrowError, Element, PyArray1, PyReadonlyArray1, PyReadwriteArray1, PyUntypedArray};
use pyo3::prelude::*;
use pyo3::types::PySlice;

use crate::kernels::izhikevich::{Abcd, IzhikevichParams, IzhikevichPopulation};
use crate::kernels::lif_float::{LifFloatParams, LifFloatPopulation};
use crate::kernels::lif_int::{Current, LifIntParams, LifIntPopulation};
use crate::kernels::spikes::{indices_to_mask, mask_to_indices};
use crate::kernels::synapses::{propagate, Accumulate, Csr, CsrIndex};
use crate::kernels::{
    default_threads, step_indices, step_indices_into, step_mask, Param, Population,
    PARALLEL_MIN_LEN,
};
use crate::py::detach;
use crate::py::errors::{invalid_type, invalid_value};

/// Adds the kernel functions and constants to the `_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("KERNEL_PARALLEL_MIN_LEN", PARALLEL_MIN_LEN)?;
    m.add_function(wrap_pyfunction!(kernel_default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_int_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_int_step_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_float_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_lif_float_step_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_izhikevich_step, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_izhikevich_step_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_propagate, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_validate_csr, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_spikes_to_indices, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_indices_to_spikes, m)?)?;
    Ok(())
}

/// What the caller passed, for error messages: dtype and dimensions of an array, or the
/// Python type of anything else. Never the values.
fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => match obj.get_type().name() {
            Ok(name) => format!("an object of type {name}"),
            Err(_) => "an object of unknown type".to_owned(),
        },
    }
}

fn type_err(arg: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    invalid_type(format!(
        "{arg}: expected a 1-D numpy array of dtype {expected}, got {}",
        describe(obj)
    ))
}

/// `obj` as a 1-D array of `T`, or a `TypeError` naming `arg` and `expected`.
fn cast<'a, 'py, T: Element>(
    obj: &'a Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<&'a Bound<'py, PyArray1<T>>> {
    obj.cast::<PyArray1<T>>()
        .map_err(|_| type_err(arg, expected, obj))
}

/// Refuses layouts a slice cannot view without a copy.
fn check_layout<T: Element>(arr: &Bound<'_, PyArray1<T>>, arg: &str) -> PyResult<()> {
    if !arr.is_contiguous() {
        return Err(invalid_value(format!(
            "{arg}: expected a contiguous array, got a strided view; \
             pass np.ascontiguousarray({arg}) to copy it explicitly"
        )));
    }
    // numpy can hold misaligned data (e.g. np.frombuffer at an odd offset); a Rust slice
    // must not.
    if arr.data() as usize % std::mem::align_of::<T>() != 0 {
        return Err(invalid_value(format!(
            "{arg}: array data is not aligned to its dtype"
        )));
    }
    Ok(())
}

fn borrow_err(arg: &str, e: BorrowError) -> PyErr {
    match e {
        BorrowError::NotWriteable => {
            invalid_value(format!("{arg}: array is read-only, it is updated in place"))
        }
        _ => invalid_value(format!(
            "{arg}: array shares memory with another argument of this call"
        )),
    }
}

fn borrow_rw<'py, T: Element>(
    arr: &Bound<'py, PyArray1<T>>,
    arg: &str,
) -> PyResult<PyReadwriteArray1<'py, T>> {
    check_layout(arr, arg)?;
    arr.try_readwrite().map_err(|e| borrow_err(arg, e))
}

fn borrow_ro<'py, T: Element>(
    arr: &Bound<'py, PyArray1<T>>,
    arg: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    check_layout(arr, arg)?;
    arr.try_readonly().map_err(|e| borrow_err(arg, e))
}

fn rw<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<PyReadwriteArray1<'py, T>> {
    borrow_rw(cast::<T>(obj, arg, expected)?, arg)
}

fn ro<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    borrow_ro(cast::<T>(obj, arg, expected)?, arg)
}

fn slice_mut<'a, T: Element>(
    a: &'a mut PyReadwriteArray1<'_, T>,
    arg: &str,
) -> PyResult<&'a mut [T]> {
    a.as_slice_mut()
        .map_err(|_| invalid_value(format!("{arg}: expected a contiguous array")))
}

fn slice<'a, T: Element>(a: &'a PyReadonlyArray1<'_, T>, arg: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| invalid_value(format!("{arg}: expected a contiguous array")))
}

fn int16_arg(arg: &str, x: i64) -> PyResult<i16> {
    i16::try_from(x).map_err(|_| {
        invalid_value(format!(
            "{arg}: expected an integer in [-32768, 32767], got {x}"
        ))
    })
}

fn threads_arg(threads: Option<i64>, len: usize) -> PyResult<usize> {
    match threads {
        None => Ok(default_threads(len)),
        // More parts than pool threads would only add scheduling work.
        Some(t) if t >= 1 => Ok(usize::try_from(t)
            .unwrap_or(usize::MAX)
            .min(rayon::current_num_threads())),
        Some(t) => Err(invalid_value(format!(
            "threads: expected a positive integer or None, got {t}"
        ))),
    }
}

/// A float parameter as passed from Python: a scalar, or a borrowed float32 array.
enum ParamArg<'py> {
    Scalar(f32),
    Array(PyReadonlyArray1<'py, f32>),
}

impl<'py> ParamArg<'py> {
    fn extract(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Self> {
        let wrong = || {
            invalid_type(format!(
                "{arg}: expected a float or a 1-D numpy array of dtype float32, got {}",
                describe(obj)
            ))
        };
        if obj.cast::<PyUntypedArray>().is_ok() {
            let arr = obj.cast::<PyArray1<f32>>().map_err(|_| wrong())?;
            return Ok(Self::Array(borrow_ro(arr, arg)?));
        }
        obj.extract::<f64>()
            .map(|x| Self::Scalar(x as f32))
            .map_err(|_| wrong())
    }

    fn param(&self, arg: &str) -> PyResult<Param<'_>> {
        Ok(match self {
            Self::Scalar(x) => Param::Scalar(*x),
            Self::Array(a) => Param::PerNeuron(slice(a, arg)?),
        })
    }
}

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

/// The array [`drive`] returns for the index form.
fn indices_result(r: Option<Bound<'_, PyAny>>) -> Bound<'_, PyAny> {
    r.expect("the index form always returns an array")
}

/// Number of threads `threads=None` uses for `n` neurons: 1 below
/// `KERNEL_PARALLEL_MIN_LEN`, otherwise the size of the kernel thread pool.
#[pyfunction]
fn kernel_default_threads(n: usize) -> usize {
    default_threads(n)
}

#[allow(clippy::too_many_arguments)]
fn lif_int<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    spikes: Spikes<'_, 'py>,
    leak: i64,
    threshold: i64,
    reset: i64,
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

/// Integer LIF step (EvoSpikeNet's `LIFNeuronLayer`) in place on `v` (int16), with
/// `i_syn` int16 or int32; writes the bool spike mask into `out`. `leak`, `threshold`
/// and `reset` must fit in int16.
#[pyfunction]
#[pyo3(signature = (v, i_syn, out, leak, threshold, reset, threads=None))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_int_step<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    leak: i64,
    threshold: i64,
    reset: i64,
    threads: Option<i64>,
) -> PyResult<()> {
    lif_int(
        py,
        v,
        i_syn,
        Spikes::Mask(out),
        leak,
        threshold,
        reset,
        threads,
    )
    .map(|_| ())
}

/// Integer LIF step (EvoSpikeNet's `LIFNeuronLayer`) in place on `v` (int16), with
/// `i_syn` int16 or int32; returns the sorted uint32 indices of the neurons that spiked
/// (in `out[:k]` when a uint32 buffer `out` of at least `len(v)` entries is given).
#[pyfunction]
#[pyo3(signature = (v, i_syn, leak, threshold, reset, out=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_int_step_indices<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    leak: i64,
    threshold: i64,
    reset: i64,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let spikes = Spikes::Indices(out);
    lif_int(py, v, i_syn, spikes, leak, threshold, reset, threads).map(indices_result)
}

#[allow(clippy::too_many_arguments)]
fn lif_float<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    refractory: &Bound<'py, PyAny>,
    i_in: Option<&Bound<'py, PyAny>>,
    spikes: Spikes<'_, 'py>,
    params: LifFloatParams,
    threads: Option<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
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

/// Current-based LIF step with exact integration (NEST's `iaf_psc_exp`), in place on
/// `v`, `i_syn` (float32) and `refractory` (int32); `i_in` is a float32 array, a float
/// or None. Writes the bool spike mask into `out`.
#[pyfunction]
#[pyo3(signature = (
    v, i_syn, refractory, i_in, out, *, tau_m, tau_syn, c_m, dt, e_l, v_th, v_reset, t_ref,
    i_e, threads=None
))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_float_step<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    refractory: &Bound<'py, PyAny>,
    i_in: Option<&Bound<'py, PyAny>>,
    out: &Bound<'py, PyAny>,
    tau_m: f64,
    tau_syn: f64,
    c_m: f64,
    dt: f64,
    e_l: f64,
    v_th: f64,
    v_reset: f64,
    t_ref: f64,
    i_e: f64,
    threads: Option<i64>,
) -> PyResult<()> {
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
    let spikes = Spikes::Mask(out);
    lif_float(py, v, i_syn, refractory, i_in, spikes, params, threads).map(|_| ())
}

/// Current-based LIF step with exact integration (NEST's `iaf_psc_exp`), in place on
/// `v`, `i_syn` (float32) and `refractory` (int32); returns the sorted uint32 indices
/// of the neurons that spiked (in `out[:k]` when a uint32 buffer `out` is given).
#[pyfunction]
#[pyo3(signature = (
    v, i_syn, refractory, i_in, *, tau_m, tau_syn, c_m, dt, e_l, v_th, v_reset, t_ref,
    i_e, out=None, threads=None
))]
#[allow(clippy::too_many_arguments)]
fn kernel_lif_float_step_indices<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    i_syn: &Bound<'py, PyAny>,
    refractory: &Bound<'py, PyAny>,
    i_in: Option<&Bound<'py, PyAny>>,
    tau_m: f64,
    tau_syn: f64,
    c_m: f64,
    dt: f64,
    e_l: f64,
    v_th: f64,
    v_reset: f64,
    t_ref: f64,
    i_e: f64,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
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
    let spikes = Spikes::Indices(out);
    lif_float(py, v, i_syn, refractory, i_in, spikes, params, threads).map(indices_result)
}

#[allow(clippy::too_many_arguments)]
fn izhikevich<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    i_in: &Bound<'py, PyAny>,
    spikes: Spikes<'_, 'py>,
    abcd: [&Bound<'py, PyAny>; 4],
    dt: f64,
    v_peak: f64,
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
    let a = ParamArg::extract(abcd[0], "a")?;
    let b = ParamArg::extract(abcd[1], "b")?;
    let c = ParamArg::extract(abcd[2], "c")?;
    let d = ParamArg::extract(abcd[3], "d")?;
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

/// Izhikevich step in place on `v` and `u` (float32); `i_in`, `a`, `b`, `c`, `d` are
/// each a float or a float32 array. Writes the bool spike mask into `out`.
#[pyfunction]
#[pyo3(signature = (v, u, i_in, out, *, a, b, c, d, dt, v_peak, threads=None))]
#[allow(clippy::too_many_arguments)]
fn kernel_izhikevich_step<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    i_in: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    d: &Bound<'py, PyAny>,
    dt: f64,
    v_peak: f64,
    threads: Option<i64>,
) -> PyResult<()> {
    let spikes = Spikes::Mask(out);
    izhikevich(py, v, u, i_in, spikes, [a, b, c, d], dt, v_peak, threads).map(|_| ())
}

/// Izhikevich step in place on `v` and `u` (float32); `i_in`, `a`, `b`, `c`, `d` are
/// each a float or a float32 array. Returns the sorted uint32 indices of the neurons
/// that spiked (in `out[:k]` when a uint32 buffer `out` is given).
#[pyfunction]
#[pyo3(signature = (v, u, i_in, *, a, b, c, d, dt, v_peak, out=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn kernel_izhikevich_step_indices<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    i_in: &Bound<'py, PyAny>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    c: &Bound<'py, PyAny>,
    d: &Bound<'py, PyAny>,
    dt: f64,
    v_peak: f64,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let spikes = Spikes::Indices(out);
    izhikevich(py, v, u, i_in, spikes, [a, b, c, d], dt, v_peak, threads).map(indices_result)
}

/// The CSR index arrays, borrowed with one dtype for both (as scipy keeps them).
enum CsrIndexArgs<'py> {
    I32(PyReadonlyArray1<'py, i32>, PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>),
}

impl<'py> CsrIndexArgs<'py> {
    fn extract(indptr: &Bound<'py, PyAny>, indices: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(p) = indptr.cast::<PyArray1<i32>>() {
            let p = borrow_ro(p, "indptr")?;
            let i = ro::<i32>(indices, "indices", "int32 (the dtype of indptr)")?;
            Ok(Self::I32(p, i))
        } else if let Ok(p) = indptr.cast::<PyArray1<i64>>() {
            let p = borrow_ro(p, "indptr")?;
            let i = ro::<i64>(indices, "indices", "int64 (the dtype of indptr)")?;
            Ok(Self::I64(p, i))
        } else {
            Err(type_err("indptr", "int32 or int64", indptr))
        }
    }
}

fn propagate_with<Ix, W, T>(
    py: Python<'_>,
    spikes: &[u32],
    indptr: &[Ix],
    indices: &[Ix],
    data: &[W],
    shape: (usize, usize),
    target: &mut [T],
) -> PyResult<u64>
where
    Ix: CsrIndex,
    W: Copy + Sync,
    T: Accumulate<W>,
{
    let csr = Csr::new(indptr, indices, data, shape.0, shape.1)?;
    Ok(detach(py, move || propagate(spikes, &csr, target))?)
}

fn propagate_typed<'py, W, T>(
    py: Python<'py>,
    spikes: &[u32],
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyArray1<W>>,
    shape: (usize, usize),
    target: &mut [T],
) -> PyResult<u64>
where
    W: Element + Copy + Sync,
    T: Accumulate<W>,
{
    let data = borrow_ro(data, "data")?;
    let data = slice(&data, "data")?;
    match CsrIndexArgs::extract(indptr, indices)? {
        CsrIndexArgs::I32(p, i) => propagate_with(
            py,
            spikes,
            slice(&p, "indptr")?,
            slice(&i, "indices")?,
            data,
            shape,
            target,
        ),
        CsrIndexArgs::I64(p, i) => propagate_with(
            py,
            spikes,
            slice(&p, "indptr")?,
            slice(&i, "indices")?,
            data,
            shape,
            target,
        ),
    }
}

/// Adds the CSR rows of the neurons in `spikes` into `target`; returns the number of
/// synaptic events.
#[pyfunction]
fn kernel_propagate<'py>(
    py: Python<'py>,
    spikes: &Bound<'py, PyAny>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    shape: (usize, usize),
    target: &Bound<'py, PyAny>,
) -> PyResult<u64> {
    let spikes = ro::<u32>(spikes, "spikes", "uint32")?;
    let spikes = slice(&spikes, "spikes")?;
    if let Ok(t) = target.cast::<PyArray1<i16>>() {
        let mut t = borrow_rw(t, "target")?;
        let t = slice_mut(&mut t, "target")?;
        let d = cast::<i16>(data, "data", "int16 (for an int16 target)")?;
        propagate_typed(py, spikes, indptr, indices, d, shape, t)
    } else if let Ok(t) = target.cast::<PyArray1<i32>>() {
        let mut t = borrow_rw(t, "target")?;
        let t = slice_mut(&mut t, "target")?;
        if let Ok(d) = data.cast::<PyArray1<i16>>() {
            propagate_typed(py, spikes, indptr, indices, d, shape, t)
        } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
            propagate_typed(py, spikes, indptr, indices, d, shape, t)
        } else {
            Err(type_err(
                "data",
                "int16 or int32 (for an int32 target)",
                data,
            ))
        }
    } else if let Ok(t) = target.cast::<PyArray1<f32>>() {
        let mut t = borrow_rw(t, "target")?;
        let t = slice_mut(&mut t, "target")?;
        let d = cast::<f32>(data, "data", "float32 (for a float32 target)")?;
        propagate_typed(py, spikes, indptr, indices, d, shape, t)
    } else {
        Err(type_err("target", "int16, int32 or float32", target))
    }
}

/// Checks a whole CSR matrix: lengths, `indptr` monotone from 0, column indices in range.
#[pyfunction]
fn kernel_validate_csr<'py>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    shape: (usize, usize),
) -> PyResult<()> {
    fn run<Ix: CsrIndex, W: Copy + Sync>(
        py: Python<'_>,
        indptr: &[Ix],
        indices: &[Ix],
        data: &[W],
        shape: (usize, usize),
    ) -> PyResult<()> {
        let csr = Csr::new(indptr, indices, data, shape.0, shape.1)?;
        Ok(detach(py, move || csr.validate())?)
    }
    fn with_data<'py, W: Element + Copy + Sync>(
        py: Python<'py>,
        indptr: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        data: &Bound<'py, PyArray1<W>>,
        shape: (usize, usize),
    ) -> PyResult<()> {
        let data = borrow_ro(data, "data")?;
        let data = slice(&data, "data")?;
        match CsrIndexArgs::extract(indptr, indices)? {
            CsrIndexArgs::I32(p, i) => {
                run(py, slice(&p, "indptr")?, slice(&i, "indices")?, data, shape)
            }
            CsrIndexArgs::I64(p, i) => {
                run(py, slice(&p, "indptr")?, slice(&i, "indices")?, data, shape)
            }
        }
    }
    if let Ok(d) = data.cast::<PyArray1<i16>>() {
        with_data(py, indptr, indices, d, shape)
    } else if let Ok(d) = data.cast::<PyArray1<i32>>() {
        with_data(py, indptr, indices, d, shape)
    } else if let Ok(d) = data.cast::<PyArray1<f32>>() {
        with_data(py, indptr, indices, d, shape)
    } else {
        Err(type_err("data", "int16, int32 or float32", data))
    }
}

/// Sorted uint32 indices of the set entries of a bool mask.
#[pyfunction]
fn kernel_spikes_to_indices<'py>(
    py: Python<'py>,
    mask: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let mask = ro::<bool>(mask, "mask", "bool")?;
    let mask = slice(&mask, "mask")?;
    let idx = detach(py, move || mask_to_indices(mask))?;
    Ok(idx.into_pyarray(py))
}

/// Writes the bool mask of uint32 `indices` into `out` (cleared first).
#[pyfunction]
fn kernel_indices_to_spikes<'py>(
    py: Python<'py>,
    indices: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let indices = ro::<u32>(indices, "indices", "uint32")?;
    let indices = slice(&indices, "indices")?;
    let mut out = rw::<bool>(out, "out", "bool")?;
    let out = slice_mut(&mut out, "out")?;
    Ok(detach(py, move || indices_to_mask(indices, out))?)
}
