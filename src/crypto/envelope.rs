//! The wire format of one message and the seal/open steps around the AEAD.
//!
//! ```text
//! header (cleartext, authenticated):
//!   0      u8     magic+version  0xE1
//!   1      u8     mode           0 plaintext, 1 PSK, 2 DH, 3 DH with sender tags
//!   2      u8     kind           0 publish, 1 request, 2 reply
//!   3..7   [4]    key id         which key sealed it (0 when plaintext)
//!   7      u8     sender length  n, 1..=255
//!   8..    [n]    sender node id (UTF-8)
//!   +0     [16]   session id     random per communicator instance
//!   +16    u64be  session start  ms since the Unix epoch
//!   +24    u32be  time offset    ms since session start when the message was sealed
//!   +28    u64be  counter        per session, from 0; the AEAD nonce is derived from it
//! body:
//!   AES-256-GCM(plaintext = payload || format byte) || 16-byte tag      (modes 1, 2, 3)
//!   || per-recipient sender tags (mode 3; see `sender_auth`)
//!   payload || format byte                                              (mode 0)
//! AAD = header || full topic key expression || request binding (replies only)
//! ```
//! The format byte sits at the end so that the payload starts at offset 0 of the
//! decrypted buffer: a received numpy array can then be used in place, aligned.

use crate::crypto::aead::TAG_LEN;
use crate::crypto::keys::{KeyId, SessionKey, KEY_ID_LEN};
use crate::error::{Error, Result};
use crate::wire_enum::wire_enum;

pub const MAGIC_V1: u8 = 0xE1;
/// Header bytes besides the sender id.
pub const FIXED_HEADER_LEN: usize = 8 + 16 + 8 + 4 + 8;
pub const SESSION_ID_LEN: usize = 16;
pub const MAX_SENDER_LEN: usize = 255;

wire_enum! {
    /// How a message is protected.
    pub enum Mode {
        Plain = 0,
        Psk = 1,
        Dh = 2,
        /// DH mode with a tag per recipient that authenticates the sender (pinned identities).
        DhAuth = 3,
    }
}

wire_enum! {
    /// What a message is for; bound into the AAD so one kind cannot be replayed as another.
    pub enum Kind {
        Publish = 0,
        Request = 1,
        Reply = 2,
    }
}

/// A parsed or to-be-written header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub mode: Mode,
    pub kind: Kind,
    pub key_id: KeyId,
    pub sender: &'a str,
    pub session_id: [u8; SESSION_ID_LEN],
    pub session_start_ms: u64,
    pub time_offset_ms: u32,
    pub counter: u64,
}

impl<'a> Header<'a> {
    pub fn encoded_len(&self) -> usize {
        FIXED_HEADER_LEN + self.sender.len()
    }

    /// When the message was sealed, in ms since the Unix epoch (sender's clock).
    pub fn timestamp_ms(&self) -> u64 {
        self.session_start_ms
            .saturating_add(u64::from(self.time_offset_ms))
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        debug_assert!(!self.sender.is_empty() && self.sender.len() <= MAX_SENDER_LEN);
        out.push(MAGIC_V1);
        out.push(self.mode as u8);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.key_id.0);
        out.push(self.sender.len() as u8);
        out.extend_from_slice(self.sender.as_bytes());
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.session_start_ms.to_be_bytes());
        out.extend_from_slice(&self.time_offset_ms.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
    }

    /// Parse the header at the start of `buf`; returns it and its length. Every length
    /// is checked against `buf` before use; any malformation is `Error::Authentication`.
    pub fn parse(buf: &'a [u8]) -> Result<(Header<'a>, usize)> {
        let bad = || Error::Authentication;
        if buf.len() < FIXED_HEADER_LEN || buf[0] != MAGIC_V1 {
            return Err(bad());
        }
        let mode = Mode::try_from(buf[1]).map_err(|_| bad())?;
        let kind = Kind::try_from(buf[2]).map_err(|_| bad())?;
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&buf[3..7]);
        let n = buf[7] as usize;
        let len = FIXED_HEADER_LEN + n;
        if n == 0 || buf.len() < len {
            return Err(bad());
        }
        let sender = std::str::from_utf8(&buf[8..8 + n]).map_err(|_| bad())?;
        let rest = &buf[8 + n..len];
        let mut session_id = [0u8; SESSION_ID_LEN];
        session_id.copy_from_slice(&rest[..16]);
        let session_start_ms = u64::from_be_bytes(rest[16..24].try_into().unwrap());
        let time_offset_ms = u32::from_be_bytes(rest[24..28].try_into().unwrap());
        let counter = u64::from_be_bytes(rest[28..36].try_into().unwrap());
        Ok((
            Header {
                mode,
                kind,
                key_id: KeyId(key_id),
                sender,
                session_id,
                session_start_ms,
                time_offset_ms,
                counter,
            },
            len,
        ))
    }
}

/// The associated data: header bytes, topic, and (for replies) the request binding.
pub fn aad(header_bytes: &[u8], topic: &str, binding: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header_bytes.len() + topic.len() + binding.len());
    aad.extend_from_slice(header_bytes);
    aad.extend_from_slice(topic.as_bytes());
    aad.extend_from_slice(binding);
    aad
}

/// Build a message: header, then the payload written by `write_payload`, then the format
/// byte; encrypted in place when `key` is given. One allocation, sized by `size_hint`.
pub fn seal(
    header: &Header<'_>,
    topic: &str,
    binding: &[u8],
    key: Option<&SessionKey>,
    format: u8,
    size_hint: usize,
    write_payload: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let header_len = header.encoded_len();
    let mut buf = Vec::with_capacity(header_len + size_hint + 1 + TAG_LEN);
    header.write(&mut buf);
    write_payload(&mut buf)?;
    buf.push(format);
    if let Some(key) = key {
        let aad = aad(&buf[..header_len], topic, binding);
        let tag = key.seal(header.counter, &aad, &mut buf[header_len..]);
        buf.extend_from_slice(&tag);
    }
    Ok(buf)
}

/// Verify and decrypt the body of a message whose header occupies `msg[..header_len]`.
/// Returns the plaintext (payload || format byte) in a fresh buffer whose payload starts
/// at offset 0.
pub fn open(
    msg: &[u8],
    header_len: usize,
    counter: u64,
    topic: &str,
    binding: &[u8],
    key: &SessionKey,
) -> Result<Vec<u8>> {
    let body = &msg[header_len..];
    if body.len() < TAG_LEN + 1 {
        return Err(Error::Authentication);
    }
    let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    let aad = aad(&msg[..header_len], topic, binding);
    key.open(counter, &aad, &mut plaintext, tag)?;
    Ok(plaintext)
}

/// Split a plaintext into (format byte, payload length): the payload is `pt[..len]`.
pub fn split_format(plaintext: &[u8]) -> Result<(u8, usize)> {
    match plaintext.last() {
        Some(&f) => Ok((f, plaintext.len() - 1)),
        None => Err(Error::Authentication),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(counter: u64) -> Header<'static> {
        Header {
            mode: Mode::Psk,
            kind: Kind::Publish,
            key_id: KeyId([1, 2, 3, 4]),
            sender: "node-1",
            session_id: [0xab; 16],
            session_start_ms: 1_700_000_000_000,
            time_offset_ms: 42,
            counter,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = header(77);
        let mut buf = Vec::new();
        h.write(&mut buf);
        buf.extend_from_slice(b"rest");
        let (parsed, len) = Header::parse(&buf).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(len, buf.len() - 4);
        assert_eq!(len, FIXED_HEADER_LEN + 6);
        assert_eq!(parsed.timestamp_ms(), 1_700_000_000_042);
    }

    #[test]
    fn every_truncation_and_bad_byte_is_rejected() {
        let mut buf = Vec::new();
        header(1).write(&mut buf);
        for cut in 0..buf.len() {
            assert!(Header::parse(&buf[..cut]).is_err(), "truncated at {cut}");
        }
        for (i, v) in [(0, 0xE2), (1, 9), (2, 9), (7, 0), (7, 200)] {
            let mut b = buf.clone();
            b[i] = v;
            assert!(Header::parse(&b).is_err(), "byte {i} = {v}");
        }
        let mut b = buf.clone();
        b[8] = 0xff; // invalid UTF-8 in the sender id
        assert!(Header::parse(&b).is_err());
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = SessionKey::from_key_and_iv(&[5; 32], &[6; 12]);
        let h = header(9);
        let msg = seal(&h, "evospikenet/a", b"", Some(&key), 2, 5, |b| {
            b.extend_from_slice(b"hello");
            Ok(())
        })
        .unwrap();
        assert!(!msg.windows(5).any(|w| w == b"hello"));
        let (parsed, hl) = Header::parse(&msg).unwrap();
        let pt = open(&msg, hl, parsed.counter, "evospikenet/a", b"", &key).unwrap();
        assert_eq!(split_format(&pt).unwrap(), (2, 5));
        assert_eq!(&pt[..5], b"hello");
        // Another topic, another binding, a changed header byte, a cut: all fail.
        assert!(open(&msg, hl, 9, "evospikenet/b", b"", &key).is_err());
        assert!(open(&msg, hl, 9, "evospikenet/a", b"x", &key).is_err());
        assert!(open(&msg, hl, 10, "evospikenet/a", b"", &key).is_err());
        let mut m = msg.clone();
        m[2] = Kind::Reply as u8;
        assert!(open(&m, hl, 9, "evospikenet/a", b"", &key).is_err());
        assert!(open(&msg[..msg.len() - 1], hl, 9, "evospikenet/a", b"", &key).is_err());
        assert!(open(&msg[..hl + 16], hl, 9, "evospikenet/a", b"", &key).is_err());
        let other = SessionKey::from_key_and_iv(&[7; 32], &[6; 12]);
        assert!(open(&msg, hl, 9, "evospikenet/a", b"", &other).is_err());
    }
}
