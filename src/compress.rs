//! Payload compression before sealing (`publish(..., compress=True)`).
//!
//! A compressed payload is flagged in the format byte, which travels inside the encrypted
//! and authenticated plaintext (`payload || format byte`), so receivers need no setting
//! and nobody without the key can flip the flag or the algorithm:
//!
//! ```text
//! format byte  = format | COMPRESSED_FLAG
//! payload      = algorithm u8 || original length u32be || compressed bytes
//! ```
//!
//! Compression leaks through the message length how well the plaintext compresses: do
//! not compress secrets mixed with data an attacker chooses (CRIME/BREACH; SECURITY.md,
//! "Compression").

use std::cell::RefCell;
use std::io::Read;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Set in the format byte of a compressed payload. Formats use the low 7 bits.
pub const COMPRESSED_FLAG: u8 = 0x80;

/// The largest payload a receiver decompresses: the sender's claim is checked against it
/// before anything is allocated (a key holder could otherwise ask for 4 GiB).
pub const MAX_DECOMPRESSED_LEN: usize = 256 << 20;

/// algorithm byte + original length.
const PREFIX_LEN: usize = 5;

/// An lz4 block's output is at most about 255 times its input (a match length grows by
/// 255 per extra byte); the claim of a decompressed length is checked against this.
const LZ4_MAX_RATIO: usize = 256;

/// zstd's level for spike messages and arrays: level 1 is several times faster than the
/// default 3 and, on the payloads of bench/comm_bench.py, within a few percent of its ratio.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    // zstd's compression context, one per thread and reused: creating one per message
    // (what `zstd::bulk::compress` does) costs more than compressing a small payload.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

/// A compression algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Zstd = 1,
    Lz4 = 2,
}

impl Compression {
    /// What `compress=True` uses when the configuration names none: zstd, by the
    /// measurement in bench/comm_bench.py (see the README's table).
    pub const DEFAULT: Compression = Compression::Zstd;

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    fn from_byte(b: u8) -> Result<Compression> {
        match b {
            1 => Ok(Compression::Zstd),
            2 => Ok(Compression::Lz4),
            other => Err(Error::Decode(format!(
                "unknown compression algorithm {other}"
            ))),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Compression> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zstd" => Ok(Compression::Zstd),
            "lz4" => Ok(Compression::Lz4),
            other => Err(Error::Config(format!(
                "compression must be \"zstd\" or \"lz4\"; got {other:?}"
            ))),
        }
    }
}

/// Payloads shorter than this are sent as they are: on a spike message of a few hundred
/// bytes zstd saves some 20% and costs about 20 us (bench/comm_bench.py: small-message
/// throughput fell to a tenth), the same trade-off as a web server's minimum length for
/// gzip.
pub const MIN_COMPRESS_LEN: usize = 1024;

/// Append the compressed form of `data` (prefix included) to `out`, and say whether it
/// is worth sending: `false` for payloads under [`MIN_COMPRESS_LEN`] (not compressed at
/// all) and when the result is not shorter than `data` (incompressible), which then go
/// uncompressed.
pub fn compress_if_smaller(algorithm: Compression, data: &[u8], out: &mut Vec<u8>) -> Result<bool> {
    if data.len() < MIN_COMPRESS_LEN {
        return Ok(false);
    }
    let start = out.len();
    compress_into(algorithm, data, out)?;
    Ok(out.len() - start < data.len())
}

/// Append the compressed form of `data` (prefix included) to `out`.
pub fn compress_into(algorithm: Compression, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&n| n as usize <= MAX_DECOMPRESSED_LEN)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a compressed payload may hold at most {MAX_DECOMPRESSED_LEN} bytes; got {}",
                data.len()
            ))
        })?;
    out.push(algorithm as u8);
    out.extend_from_slice(&len.to_be_bytes());
    match algorithm {
        Compression::Zstd => {
            let start = out.len();
            out.resize(start + zstd::zstd_safe::compress_bound(data.len()), 0);
            let n = ZSTD_COMPRESSOR
                .with_borrow_mut(|c| {
                    c.get_or_insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?)
                        .compress_to_buffer(data, &mut out[start..])
                })
                .map_err(|e| Error::Encode(format!("zstd: {e}")))?;
            out.truncate(start + n);
        }
        Compression::Lz4 => {
            let start = out.len();
            out.resize(
                start + lz4_flex::block::get_maximum_output_size(data.len()),
                0,
            );
            let n = lz4_flex::block::compress_into(data, &mut out[start..])
                .map_err(|e| Error::Encode(format!("lz4: {e}")))?;
            out.truncate(start + n);
        }
    }
    Ok(())
}

/// The original bytes of a payload written by [`compress_into`]. Every claim is checked
/// before use: the length against [`MAX_DECOMPRESSED_LEN`], and the output against it.
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() < PREFIX_LEN {
        return Err(Error::Decode(
            "compressed payload shorter than its header".into(),
        ));
    }
    let algorithm = Compression::from_byte(payload[0])?;
    let len = u32::from_be_bytes(payload[1..PREFIX_LEN].try_into().expect("4 bytes")) as usize;
    if len > MAX_DECOMPRESSED_LEN {
        return Err(Error::Decode(format!(
            "compressed payload claims {len} bytes, more than the {MAX_DECOMPRESSED_LEN} accepted"
        )));
    }
    let body = &payload[PREFIX_LEN..];
    let out = match algorithm {
        Compression::Zstd => {
            // Streamed, so memory grows with what the data really holds, never with the
            // claim: a few bytes claiming 256 MiB allocate next to nothing.
            let mut out = Vec::with_capacity(len.min(body.len().saturating_mul(4)));
            let decoder = zstd::stream::read::Decoder::with_buffer(body)
                .map_err(|e| Error::Decode(format!("zstd: {e}")))?;
            decoder
                .take(len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::Decode(format!("zstd: {e}")))?;
            out
        }
        Compression::Lz4 => {
            // An lz4 block expands at most LZ4_MAX_RATIO times: a larger claim is a lie,
            // refused before the output buffer is allocated.
            if len > body.len().saturating_mul(LZ4_MAX_RATIO) {
                return Err(Error::Decode(format!(
                    "lz4 payload of {} bytes claims {len} bytes",
                    body.len()
                )));
            }
            let mut out = vec![0u8; len];
            let n = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|e| Error::Decode(format!("lz4: {e}")))?;
            out.truncate(n);
            out
        }
    };
    let n = out.len();
    if n != len {
        return Err(Error::Decode(format!(
            "compressed payload decompressed to {n} bytes, not the {len} it claims"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Vec<u8>> {
        let spikes: Vec<u8> = (0u32..500).flat_map(|i| (i * 7).to_le_bytes()).collect();
        vec![
            Vec::new(),
            b"x".to_vec(),
            vec![0u8; 100_000],
            spikes,
            (0..=255).collect(),
        ]
    }

    #[test]
    fn round_trip_every_algorithm() {
        for algorithm in [Compression::Zstd, Compression::Lz4] {
            for data in samples() {
                let mut out = b"head".to_vec();
                compress_into(algorithm, &data, &mut out).unwrap();
                assert_eq!(&out[..4], b"head");
                assert_eq!(decompress(&out[4..]).unwrap(), data, "{algorithm:?}");
            }
            let mut zeros = Vec::new();
            compress_into(algorithm, &[0u8; 100_000], &mut zeros).unwrap();
            assert!(zeros.len() < 1000, "{algorithm:?}: {}", zeros.len());
        }
    }

    #[test]
    fn lying_or_broken_payloads_fail_without_allocating_the_claim() {
        let mut good = Vec::new();
        compress_into(Compression::Lz4, &[7u8; 1000], &mut good).unwrap();
        // Claims 4 GiB.
        let mut huge = good.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decompress(&huge)
            .unwrap_err()
            .to_string()
            .contains("claims"));
        // Claims more or fewer bytes than it holds.
        for claim in [999u32, 1001] {
            let mut wrong = good.clone();
            wrong[1..5].copy_from_slice(&claim.to_be_bytes());
            assert!(decompress(&wrong).is_err(), "{claim}");
        }
        // lz4 cannot expand 20 bytes into 1 MiB: refused before allocating.
        let mut inflated = good.clone();
        inflated[1..5].copy_from_slice(&(1u32 << 20).to_be_bytes());
        assert!(decompress(&inflated)
            .unwrap_err()
            .to_string()
            .contains("claims"));
        let mut unknown = good.clone();
        unknown[0] = 9;
        assert!(decompress(&unknown)
            .unwrap_err()
            .to_string()
            .contains("algorithm"));
        assert!(decompress(&good[..3]).is_err());
        let mut z = Vec::new();
        compress_into(Compression::Zstd, &[1u8; 5000], &mut z).unwrap();
        // A zstd payload claiming more or less than its frame holds.
        for claim in [4999u32, 5001, 200 << 20] {
            let mut wrong = z.clone();
            wrong[1..5].copy_from_slice(&claim.to_be_bytes());
            assert!(decompress(&wrong).is_err(), "{claim}");
        }
        z.truncate(z.len() - 2);
        assert!(decompress(&z).is_err());
    }

    #[test]
    fn only_what_shrinks_is_worth_sending() {
        let mut out = Vec::new();
        assert!(!compress_if_smaller(Compression::Lz4, b"{\"n\": 1}", &mut out).unwrap());
        assert!(out.is_empty(), "a tiny payload is not even compressed");
        let mut noise = vec![0u8; 4096];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut noise);
        assert!(!compress_if_smaller(Compression::Lz4, &noise, &mut out).unwrap());
        out.clear();
        assert!(compress_if_smaller(Compression::Zstd, &[0u8; 4096], &mut out).unwrap());
        assert_eq!(decompress(&out).unwrap(), vec![0u8; 4096]);
    }

    #[test]
    fn names_parse_and_print() {
        for c in [Compression::Zstd, Compression::Lz4] {
            assert_eq!(c.as_str().parse::<Compression>().unwrap(), c);
        }
        assert!(" LZ4 ".parse::<Compression>().is_ok());
        assert!("gzip"
            .parse::<Compression>()
            .unwrap_err()
            .to_string()
            .contains("gzip"));
    }
}
