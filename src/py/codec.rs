//! Python objects <-> payload bytes for the three serializers.
//!
//! Encoding happens with the GIL held and produces something that can be copied into the
//! message buffer after the GIL is released: owned bytes (json), or a pinned view of the
//! caller's buffer (raw, numpy) so large payloads are copied exactly once, into the
//! buffer they are encrypted in.

use numpy::{PyArray1, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use pyo3::IntoPyObjectExt;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::codec::{self, Format};
use crate::py::errors::{invalid_type, invalid_value};

/// Deeper nesting than this is refused (it also stops reference cycles).
const MAX_JSON_DEPTH: usize = 256;

/// A read-only view of memory owned by a Python object that `owner` keeps alive.
pub struct PinnedBytes {
    _owner: Py<PyAny>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the memory belongs to `_owner`, which we keep a strong reference to, so it stays
// valid while this value lives; we only read it. (As with any zero-copy send, a caller that
// mutates the array from another thread during the send races with the copy.) Shared
// references only read, so `Sync` holds for the same reason.
unsafe impl Send for PinnedBytes {}
unsafe impl Sync for PinnedBytes {}

impl PinnedBytes {
    fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see the `Send` impl: ptr..ptr+len is owned by `_owner` and alive.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A payload ready to be written into a message buffer without the GIL.
pub enum Encoded {
    Owned(Vec<u8>),
    Pinned(PinnedBytes),
    Array { data: PinnedBytes, trailer: Vec<u8> },
}

impl Encoded {
    pub fn len(&self) -> usize {
        match self {
            Encoded::Owned(v) => v.len(),
            Encoded::Pinned(p) => p.len,
            Encoded::Array { data, trailer } => data.len + trailer.len(),
        }
    }

    pub fn write_to(&self, buf: &mut Vec<u8>) {
        match self {
            Encoded::Owned(v) => buf.extend_from_slice(v),
            Encoded::Pinned(p) => buf.extend_from_slice(p.as_slice()),
            Encoded::Array { data, trailer } => {
                buf.extend_from_slice(data.as_slice());
                buf.extend_from_slice(trailer);
            }
        }
    }
}

/// Encode `data` with `format`.
pub fn encode(data: &Bound<'_, PyAny>, format: Format) -> PyResult<Encoded> {
    match format {
        Format::Json => {
            let mut out = Vec::with_capacity(64);
            write_json(data, &mut out, 0)?;
            Ok(Encoded::Owned(out))
        }
        Format::Raw => encode_raw(data),
        Format::Numpy => encode_array(data),
        Format::RemoteError => Err(invalid_value("not a serializer")),
    }
}

fn encode_raw(data: &Bound<'_, PyAny>) -> PyResult<Encoded> {
    if let Ok(b) = data.cast::<PyBytes>() {
        let s = b.as_bytes();
        return Ok(Encoded::Pinned(PinnedBytes {
            ptr: s.as_ptr(),
            len: s.len(),
            _owner: data.clone().unbind(),
        }));
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        // A bytearray can be resized by other Python code once the GIL is released: copy.
        return Ok(Encoded::Owned(b.to_vec()));
    }
    if data.is_instance_of::<PyString>() {
        return Err(invalid_type(
            "the raw serializer takes bytes-like data, not str; encode it first \
             (e.g. text.encode()) or use serialize=\"json\"",
        ));
    }
    // Any other buffer (memoryview, array.array, numpy...): its bytes, in C order.
    let view = PyMemoryView::from(data).map_err(|_| {
        invalid_type(format!(
            "the raw serializer takes bytes-like data (bytes, bytearray, memoryview); got {}",
            type_name(data)
        ))
    })?;
    let bytes = view.call_method0(intern!(data.py(), "tobytes"))?;
    let b = bytes.cast::<PyBytes>()?;
    let s = b.as_bytes();
    Ok(Encoded::Pinned(PinnedBytes {
        ptr: s.as_ptr(),
        len: s.len(),
        _owner: bytes.clone().unbind(),
    }))
}

fn encode_array(data: &Bound<'_, PyAny>) -> PyResult<Encoded> {
    let py = data.py();
    let arr = data.cast::<PyUntypedArray>().map_err(|_| {
        invalid_type(format!(
            "the numpy serializer takes a numpy.ndarray; got {}",
            type_name(data)
        ))
    })?;
    let dtype: String = arr.dtype().getattr(intern!(py, "str"))?.extract()?;
    codec::numeric_itemsize(&dtype).map_err(|e| invalid_type(e.to_string()))?;
    let shape = arr.shape().to_vec();
    // Non-contiguous views are compacted (one copy); contiguous arrays are read in place.
    let arr = if arr.is_c_contiguous() {
        arr.clone()
    } else {
        static ASCONTIGUOUSARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        ASCONTIGUOUSARRAY
            .import(py, "numpy", "ascontiguousarray")?
            .call1((arr,))?
            .cast_into::<PyUntypedArray>()?
    };
    let len = arr.len() * arr.dtype().itemsize();
    // SAFETY: a C-contiguous array's data pointer addresses `len` bytes it owns (or its
    // base owns); `arr` is kept alive by the pinned view.
    let ptr = unsafe { (*arr.as_array_ptr()).data as *const u8 };
    let mut trailer = Vec::with_capacity(2 + dtype.len() + 8 * shape.len());
    codec::write_array_trailer(&mut trailer, &dtype, &shape)
        .map_err(|e| invalid_value(e.to_string()))?;
    Ok(Encoded::Array {
        data: PinnedBytes {
            ptr,
            len,
            _owner: arr.into_any().unbind(),
        },
        trailer,
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

fn write_json(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> PyResult<()> {
    let py = obj.py();
    if depth > MAX_JSON_DEPTH {
        return Err(invalid_value(
            "json payload nested too deeply (or contains a reference cycle)",
        ));
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(s) = obj.cast::<PyString>() {
        write_json_str(&s.to_cow()?, out);
    } else if let Ok(i) = obj.cast::<PyInt>() {
        write_json_int(i.as_any(), out)?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        write_json_float(f.value(), out)?;
    } else if let Ok(d) = obj.cast::<PyDict>() {
        out.push(b'{');
        for (n, (k, v)) in d.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_json_key(&k, out)?;
            out.push(b':');
            write_json(&v, out, depth + 1)?;
        }
        out.push(b'}');
    } else if let Ok(l) = obj.cast::<PyList>() {
        write_json_array(l.iter(), out, depth)?;
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        write_json_array(t.iter(), out, depth)?;
    } else if obj.hasattr(intern!(py, "__array_interface__"))?
        && obj.hasattr(intern!(py, "shape"))?
    {
        let shape = obj.getattr(intern!(py, "shape"))?;
        if shape.len()? > 0 {
            return Err(invalid_type(
                "Object of type ndarray is not JSON serializable; \
                 use serialize=\"numpy\" (or convert with .tolist())",
            ));
        }
        // A numpy scalar: its Python value.
        write_json(&obj.call_method0(intern!(py, "item"))?, out, depth + 1)?;
    } else if obj.hasattr(intern!(py, "__index__"))? {
        write_json_int(&obj.call_method0(intern!(py, "__index__"))?, out)?;
    } else {
        return Err(invalid_type(format!(
            "Object of type {} is not JSON serializable",
            type_name(obj)
        )));
    }
    Ok(())
}

/// A list or tuple as a JSON array.
fn write_json_array<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    out: &mut Vec<u8>,
    depth: usize,
) -> PyResult<()> {
    out.push(b'[');
    for (n, v) in items.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_json(&v, out, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn write_json_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn write_json_int(i: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let mut digits = itoa::Buffer::new();
    if let Ok(v) = i.extract::<i64>() {
        out.extend_from_slice(digits.format(v).as_bytes());
    } else if let Ok(v) = i.extract::<u64>() {
        out.extend_from_slice(digits.format(v).as_bytes());
    } else {
        // The receiving side decodes numbers as 64-bit: refuse rather than lose digits.
        return Err(invalid_value(
            "the json serializer takes integers in [-2**63, 2**64); send larger ones as strings",
        ));
    }
    Ok(())
}

fn write_json_float(v: f64, out: &mut Vec<u8>) -> PyResult<()> {
    if !v.is_finite() {
        return Err(invalid_value(
            "Out of range float values (nan, inf) are not JSON compliant",
        ));
    }
    serde_json::to_writer(&mut *out, &v).expect("finite floats serialize");
    Ok(())
}

fn write_json_key(k: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(s) = k.cast::<PyString>() {
        write_json_str(&s.to_cow()?, out);
        return Ok(());
    }
    // Python's json turns these keys into strings the same way.
    let text = if k.is_none() {
        "null".to_owned()
    } else if let Ok(b) = k.cast::<PyBool>() {
        (if b.is_true() { "true" } else { "false" }).to_owned()
    } else if k.is_instance_of::<PyInt>() {
        k.str()?.to_string()
    } else if let Ok(f) = k.cast::<PyFloat>() {
        let mut tmp = Vec::new();
        write_json_float(f.value(), &mut tmp)?;
        String::from_utf8(tmp).expect("ascii")
    } else {
        return Err(invalid_type(format!(
            "keys must be str, int, float, bool or None, not {}",
            type_name(k)
        )));
    };
    write_json_str(&text, out);
    Ok(())
}

/// Decode a received payload into the Python object the subscriber gets.
pub fn decode(py: Python<'_>, format: Format, payload: Vec<u8>) -> PyResult<Py<PyAny>> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(&payload);
            let value = PyJson(py)
                .deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| invalid_value(format!("invalid json payload: {e}")))?;
            Ok(value.unbind())
        }
        Format::Raw => Ok(PyBytes::new(py, &payload).into_any().unbind()),
        Format::Numpy => decode_array(py, payload),
        Format::RemoteError => Err(invalid_value("unexpected error payload")),
    }
}

fn decode_array(py: Python<'_>, mut payload: Vec<u8>) -> PyResult<Py<PyAny>> {
    let (dtype, shape, data_len) = {
        let meta = codec::parse_array(&payload).map_err(|e| invalid_value(e.to_string()))?;
        (meta.dtype.to_owned(), meta.shape, meta.data_len)
    };
    payload.truncate(data_len);
    // The decrypted buffer becomes the array's memory: no further copy.
    let bytes = PyArray1::<u8>::from_vec(py, payload);
    let typed = bytes.call_method1(intern!(py, "view"), (dtype,))?;
    Ok(typed
        .call_method1(intern!(py, "reshape"), (shape,))?
        .unbind())
}

/// Builds Python objects straight from the JSON tokens (no intermediate tree).
struct PyJson<'py>(Python<'py>);

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for PyJson<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for PyJson<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        v.into_bound_py_any(self.0).map_err(py_err)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        v.into_bound_py_any(self.0).map_err(py_err)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(PyJson(self.0))? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value = map.next_value_seed(PyJson(self.0))?;
            dict.set_item(key.as_ref(), value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}
