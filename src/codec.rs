//! Payload formats: the tag that says how a payload is encoded, and the numpy layout.
//!
//! JSON and raw payloads are their bytes. A numpy payload is the array's data (C order)
//! followed by a trailer that describes it, so the data starts at offset 0 of the buffer:
//! ```text
//! data || dims (ndim x u64be) || dtype (ASCII, numpy's `dtype.str`, e.g. "<f4") || ndim u8 || dtype length u8
//! ```
//! Everything read from the trailer is checked against the buffer before it is used: a
//! trailer that claims more data than there is fails, nothing is allocated from a claim.

use crate::error::{Error, Result};
use crate::wire_enum::wire_enum;

wire_enum! {
    /// How a payload is encoded; the byte is carried inside the encrypted plaintext.
    pub enum Format {
        Json = 1 => "json",
        Raw = 2 => "raw",
        Numpy = 3 => "numpy",
        /// A reply saying the service failed to handle the request (payload: UTF-8 text).
        /// Internal: not a serializer users can pick.
        RemoteError = 0x7F => "error",
    }
}

impl Format {
    /// The formats users can pick as serializers, by name.
    const SERIALIZERS: [Format; 3] = [Format::Json, Format::Raw, Format::Numpy];

    /// The serializer names users pass to `publish(..., serialize=...)`.
    pub fn from_name(name: &str) -> Result<Format> {
        Self::SERIALIZERS
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown serializer {name:?}; expected \"json\", \"raw\" or \"numpy\""
                ))
            })
    }

    pub fn from_byte(b: u8) -> Result<Format> {
        Format::try_from(b)
            .map_err(|other| Error::Decode(format!("unknown payload format tag {other}")))
    }
}

/// Most dimensions a numpy array may have (numpy's own limit).
pub const MAX_NDIM: usize = 64;
const MAX_DTYPE_LEN: usize = 8;

/// The description of a numpy payload.
#[derive(Debug, PartialEq, Eq)]
pub struct ArrayMeta<'a> {
    pub dtype: &'a str,
    pub shape: Vec<usize>,
    /// Length of the data at the start of the payload.
    pub data_len: usize,
}

/// Item size of a numeric numpy dtype string (`<f4`, `|u1`, `|b1`, `>c16`...), or an error
/// for anything that is not a plain number type (objects, strings, datetimes, structs).
pub fn numeric_itemsize(dtype: &str) -> Result<usize> {
    let bad = || {
        Error::InvalidArgument(format!(
            "the numpy serializer takes arrays of numeric or bool dtype; got dtype {dtype:?}"
        ))
    };
    let b = dtype.as_bytes();
    if b.len() < 3 || !matches!(b[0], b'<' | b'>' | b'|' | b'=') {
        return Err(bad());
    }
    // Digits only: byte 1 may start a multi-byte character (so `dtype[2..]` could split
    // it), and `usize::from_str` would also take a sign ("<f+4").
    let digits = &b[2..];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let size: usize = std::str::from_utf8(digits)
        .expect("ASCII digits")
        .parse()
        .map_err(|_| bad())?;
    let ok = match b[1] {
        b'b' => size == 1,
        b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
        b'f' => matches!(size, 2 | 4 | 8 | 12 | 16),
        b'c' => matches!(size, 8 | 16 | 24 | 32),
        _ => false,
    };
    if ok {
        Ok(size)
    } else {
        Err(bad())
    }
}

/// Append the trailer describing `shape` and `dtype` after data already in `out`.
pub fn write_array_trailer(out: &mut Vec<u8>, dtype: &str, shape: &[usize]) -> Result<()> {
    numeric_itemsize(dtype)?;
    if shape.len() > MAX_NDIM {
        return Err(Error::InvalidArgument(format!(
            "array has {} dimensions; at most {MAX_NDIM} are supported",
            shape.len()
        )));
    }
    for &d in shape {
        out.extend_from_slice(&(d as u64).to_be_bytes());
    }
    out.extend_from_slice(dtype.as_bytes());
    out.push(shape.len() as u8);
    out.push(dtype.len() as u8);
    Ok(())
}

/// Read the trailer of a numpy payload and check it against the payload length.
pub fn parse_array(payload: &[u8]) -> Result<ArrayMeta<'_>> {
    let bad = |what: &str| Error::Decode(format!("malformed numpy payload: {what}"));
    let n = payload.len();
    if n < 2 {
        return Err(bad("too short"));
    }
    let dtype_len = payload[n - 1] as usize;
    let ndim = payload[n - 2] as usize;
    if dtype_len > MAX_DTYPE_LEN || ndim > MAX_NDIM {
        return Err(bad("trailer out of range"));
    }
    let trailer = 2 + dtype_len + 8 * ndim;
    if trailer > n {
        return Err(bad("trailer longer than payload"));
    }
    let dtype_start = n - 2 - dtype_len;
    let dtype = std::str::from_utf8(&payload[dtype_start..n - 2]).map_err(|_| bad("dtype"))?;
    let itemsize = numeric_itemsize(dtype).map_err(|_| bad("dtype"))?;
    let dims_start = dtype_start - 8 * ndim;
    let mut shape = Vec::with_capacity(ndim);
    let mut count: usize = 1;
    for chunk in payload[dims_start..dtype_start].chunks_exact(8) {
        let d = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
        let d = usize::try_from(d).map_err(|_| bad("dimension too large"))?;
        count = count.checked_mul(d).ok_or_else(|| bad("shape overflows"))?;
        shape.push(d);
    }
    let data_len = count
        .checked_mul(itemsize)
        .ok_or_else(|| bad("shape overflows"))?;
    if data_len != dims_start {
        return Err(bad("data length does not match shape and dtype"));
    }
    Ok(ArrayMeta {
        dtype,
        shape,
        data_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_and_tags() {
        for f in [Format::Json, Format::Raw, Format::Numpy] {
            assert_eq!(Format::from_name(f.name()).unwrap(), f);
            assert_eq!(Format::from_byte(f as u8).unwrap(), f);
        }
        let err = Format::from_name("pickle").unwrap_err().to_string();
        assert!(err.contains("pickle") && err.contains("json"));
        assert!(Format::from_byte(0).is_err());
        assert!(Format::from_name("error").is_err());
        assert_eq!(Format::from_byte(0x7F).unwrap(), Format::RemoteError);
    }

    #[test]
    fn itemsizes() {
        assert_eq!(numeric_itemsize("<f4").unwrap(), 4);
        assert_eq!(numeric_itemsize("|b1").unwrap(), 1);
        assert_eq!(numeric_itemsize(">c16").unwrap(), 16);
        assert_eq!(numeric_itemsize("<u8").unwrap(), 8);
        for bad in ["|O", "<U4", "|S3", "<M8", "|V8", "<i3", "f4", "<f", ""] {
            assert!(numeric_itemsize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dtype_text_from_the_wire_never_panics() {
        // Found by the `codec` fuzz target: a multi-byte character after the byte-order
        // mark made `dtype[2..]` split it and panic (on the receive path, in the thread
        // that delivers to callbacks). Signs and spaces are not part of a dtype either.
        for bad in [
            "<\u{113}1",
            "<é4",
            "|\u{10348}",
            "<f+4",
            "<f 4",
            "<f4 ",
            "<i-1",
        ] {
            assert!(numeric_itemsize(bad).is_err(), "{bad:?}");
        }
        let mut payload = vec![0u8; 4];
        payload.extend_from_slice(&1u64.to_be_bytes());
        payload.extend_from_slice("<ē1".as_bytes());
        payload.extend_from_slice(&[1, 4]);
        assert!(parse_array(&payload).is_err());
        assert!(parse_array(&[0, 0x3c, 0xc4, 0x93, 0x31, 0, 4]).is_err());
    }

    #[test]
    fn array_round_trip() {
        let mut buf = vec![0u8; 2 * 3 * 4];
        write_array_trailer(&mut buf, "<i4", &[2, 3]).unwrap();
        let meta = parse_array(&buf).unwrap();
        assert_eq!(meta.dtype, "<i4");
        assert_eq!(meta.shape, vec![2, 3]);
        assert_eq!(meta.data_len, 24);

        let mut scalar = vec![1u8; 8];
        write_array_trailer(&mut scalar, "<f8", &[]).unwrap();
        assert_eq!(parse_array(&scalar).unwrap().shape, Vec::<usize>::new());

        let mut empty = vec![];
        write_array_trailer(&mut empty, "<f4", &[0, 5]).unwrap();
        assert_eq!(parse_array(&empty).unwrap().data_len, 0);
    }

    #[test]
    fn hostile_trailers_fail_without_allocating() {
        // A shape claiming 2^63 elements.
        let mut buf = vec![];
        buf.extend_from_slice(&(1u64 << 63).to_be_bytes());
        buf.extend_from_slice(b"<f8");
        buf.extend_from_slice(&[1, 3]);
        assert!(parse_array(&buf).is_err());
        // Every truncation of a valid payload fails.
        let mut ok = vec![0u8; 16];
        write_array_trailer(&mut ok, "<u2", &[8]).unwrap();
        for cut in 1..ok.len() {
            assert!(parse_array(&ok[cut..]).is_err(), "front cut {cut}");
        }
        // ndim larger than the payload.
        assert!(parse_array(&[0, 0, 60, 3]).is_err());
        assert!(parse_array(&[]).is_err());
    }
}
