//! Argument extraction for the kernel bindings: each helper takes a Python object and
//! the argument's name, and returns a borrowed slice (or a scalar) or an error naming
//! the argument. `TypeError` for a wrong kind or dtype, `ValueError` for a wrong layout,
//! writability, overlap or value; nothing is converted or copied.

use numpy::prelude::*;
use numpy::{BorrowError, Element, PyArray1, PyReadonlyArray1, PyReadwriteArray1, PyUntypedArray};
use pyo3::prelude::*;

use crate::kernels::{default_threads, Param};
use crate::py::errors::{invalid_type, invalid_value};

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

pub fn type_err(arg: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    invalid_type(format!(
        "{arg}: expected a 1-D numpy array of dtype {expected}, got {}",
        describe(obj)
    ))
}

/// `obj` as a 1-D array of `T`, or a `TypeError` naming `arg` and `expected`.
pub fn cast<'a, 'py, T: Element>(
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

/// A read-write borrow of an array, or the error naming the argument.
pub type Rw<'py, T> = PyResult<PyReadwriteArray1<'py, T>>;
/// A read-only borrow of an array, or the error naming the argument.
pub type Ro<'py, T> = PyResult<PyReadonlyArray1<'py, T>>;

pub fn borrow_rw<'py, T: Element>(arr: &Bound<'py, PyArray1<T>>, arg: &str) -> Rw<'py, T> {
    check_layout(arr, arg)?;
    arr.try_readwrite().map_err(|e| borrow_err(arg, e))
}

pub fn borrow_ro<'py, T: Element>(arr: &Bound<'py, PyArray1<T>>, arg: &str) -> Ro<'py, T> {
    check_layout(arr, arg)?;
    arr.try_readonly().map_err(|e| borrow_err(arg, e))
}

/// `obj` as an array of `T`, borrowed read-write.
pub fn rw<'py, T: Element>(obj: &Bound<'py, PyAny>, arg: &str, expected: &str) -> Rw<'py, T> {
    borrow_rw(cast::<T>(obj, arg, expected)?, arg)
}

/// `obj` as an array of `T`, borrowed read-only.
pub fn ro<'py, T: Element>(obj: &Bound<'py, PyAny>, arg: &str, expected: &str) -> Ro<'py, T> {
    borrow_ro(cast::<T>(obj, arg, expected)?, arg)
}

pub fn slice_mut<'a, T: Element>(
    a: &'a mut PyReadwriteArray1<'_, T>,
    arg: &str,
) -> PyResult<&'a mut [T]> {
    a.as_slice_mut()
        .map_err(|_| invalid_value(format!("{arg}: expected a contiguous array")))
}

pub fn slice<'a, T: Element>(a: &'a PyReadonlyArray1<'_, T>, arg: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| invalid_value(format!("{arg}: expected a contiguous array")))
}

pub fn int16_arg(arg: &str, x: i64) -> PyResult<i16> {
    i16::try_from(x).map_err(|_| {
        invalid_value(format!(
            "{arg}: expected an integer in [-32768, 32767], got {x}"
        ))
    })
}

/// The attribute `name` of a parameters object, as a float, or an error naming it.
pub fn float_attr(params: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    let value = params.getattr(name)?;
    value.extract().map_err(|_| {
        invalid_type(format!(
            "{name}: expected a float, got {}",
            describe(&value)
        ))
    })
}

pub fn threads_arg(threads: Option<i64>, len: usize) -> PyResult<usize> {
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
pub enum ParamArg<'py> {
    Scalar(f32),
    Array(PyReadonlyArray1<'py, f32>),
}

impl<'py> ParamArg<'py> {
    pub fn extract(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Self> {
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

    pub fn param(&self, arg: &str) -> PyResult<Param<'_>> {
        Ok(match self {
            Self::Scalar(x) => Param::Scalar(*x),
            Self::Array(a) => Param::PerNeuron(slice(a, arg)?),
        })
    }
}

/// The CSR index arrays, borrowed with one dtype for both (as scipy keeps them).
pub enum CsrIndexArgs<'py> {
    I32(PyReadonlyArray1<'py, i32>, PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>),
}

impl<'py> CsrIndexArgs<'py> {
    pub fn extract(indptr: &Bound<'py, PyAny>, indices: &Bound<'py, PyAny>) -> PyResult<Self> {
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
