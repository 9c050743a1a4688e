//! Pre-shared keys and the key schedule (HKDF-SHA256, RFC 5869).
//!
//! ```text
//! key_id      = HKDF-Expand(HKDF-Extract(salt = "", PSK), "evospikenet/v1/key-id", 4)
//! sender key  = HKDF(ikm = PSK, salt = session id,
//!                    info = "evospikenet/v1/psk" || key_id || sender id) -> 32-byte key || 12-byte IV
//! nonce(n)    = IV xor (0^4 || n as u64 big-endian)           (as TLS 1.3, RFC 8446 §5.3)
//! ```
//! Every communicator draws a fresh random session id at start, so every sender key is
//! fresh and message counters can start at zero without two senders (or two runs of one
//! sender) ever sharing a (key, nonce) pair.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::aead::{Aead, KEY_LEN, NONCE_LEN};
use crate::crypto::kdf::hkdf_sha256;
use crate::error::{Error, Result};

/// Length of a pre-shared key in bytes (256 bits).
pub const PSK_LEN: usize = 32;
/// Length of a key identifier on the wire.
pub const KEY_ID_LEN: usize = 4;

const LABEL_KEY_ID: &[u8] = b"evospikenet/v1/key-id";
const LABEL_PSK_SENDER: &[u8] = b"evospikenet/v1/psk";

/// A 4-byte public identifier of a key, carried in every header so that a receiver
/// holding several keys (during a rotation) knows which one to try.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

/// A 256-bit pre-shared key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Psk {
    bytes: [u8; PSK_LEN],
    #[zeroize(skip)]
    key_id: KeyId,
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Psk(<redacted>, key_id={})", hex::encode(self.key_id.0))
    }
}

impl Psk {
    /// Parse a PSK from its hex form: exactly 64 hex digits, surrounding whitespace
    /// tolerated. The error message says what is expected and never contains the input.
    pub fn from_hex(text: &str) -> Result<Psk> {
        let trimmed = text.trim();
        if trimmed.len() != 2 * PSK_LEN {
            return Err(Error::Config(format!(
                "PSK must be {} hexadecimal characters (32 random bytes, e.g. from \
                 `python3 -c \"import os; print(os.urandom(32).hex())\"`); got {} characters",
                2 * PSK_LEN,
                trimmed.chars().count()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; PSK_LEN]);
        hex::decode_to_slice(trimmed, bytes.as_mut_slice()).map_err(|_| {
            Error::Config(format!(
                "PSK must contain only hexadecimal characters 0-9, a-f ({} of them)",
                2 * PSK_LEN
            ))
        })?;
        Psk::from_bytes(bytes.as_slice())
    }

    /// Build a PSK from raw bytes (exactly 32, not all zero).
    pub fn from_bytes(raw: &[u8]) -> Result<Psk> {
        if raw.len() != PSK_LEN {
            return Err(Error::Config(format!(
                "PSK must be {PSK_LEN} bytes; got {}",
                raw.len()
            )));
        }
        if raw.iter().all(|&b| b == 0) {
            return Err(Error::Config(
                "PSK must not be all zeros: generate 32 random bytes".into(),
            ));
        }
        let mut bytes = [0u8; PSK_LEN];
        bytes.copy_from_slice(raw);
        let key_id = derive_key_id(&bytes);
        Ok(Psk { bytes, key_id })
    }

    /// The public identifier of this key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Derive the AEAD key of one sender session from this PSK.
    pub fn sender_key(&self, session_id: &[u8; 16], sender: &str) -> SessionKey {
        let mut info = Vec::with_capacity(LABEL_PSK_SENDER.len() + KEY_ID_LEN + sender.len());
        info.extend_from_slice(LABEL_PSK_SENDER);
        info.extend_from_slice(&self.key_id.0);
        info.extend_from_slice(sender.as_bytes());
        SessionKey::derive(&self.bytes, session_id, &info)
    }
}

impl Psk {
    /// A 32-byte secret for another purpose, independent of every sender key:
    /// HKDF-SHA256(ikm = PSK, no salt, info = `label`). Labels must not collide with the
    /// ones above.
    pub(crate) fn derive_secret(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_sha256(None, &self.bytes, label, out.as_mut_slice());
        out
    }
}

fn derive_key_id(psk: &[u8; PSK_LEN]) -> KeyId {
    let mut id = [0u8; KEY_ID_LEN];
    hkdf_sha256(None, psk, LABEL_KEY_ID, &mut id);
    KeyId(id)
}

/// An AEAD key with its IV: what one sender session encrypts with. The key schedule
/// inside is zeroized on drop; `Debug` never shows it.
pub struct SessionKey {
    aead: Aead,
    iv: Zeroizing<[u8; NONCE_LEN]>,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

impl SessionKey {
    /// HKDF-SHA256(ikm, salt, info) -> key (32 bytes) || IV (12 bytes).
    pub fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> SessionKey {
        let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
        hkdf_sha256(Some(salt), ikm, info, okm.as_mut_slice());
        SessionKey::from_key_and_iv(&okm[..KEY_LEN], &okm[KEY_LEN..])
    }

    /// Build from raw key and IV bytes (used by the known-answer tests and DH mode).
    pub fn from_key_and_iv(key: &[u8], iv: &[u8]) -> SessionKey {
        let mut iv_arr = Zeroizing::new([0u8; NONCE_LEN]);
        iv_arr.copy_from_slice(iv);
        SessionKey {
            aead: Aead::new(key),
            iv: iv_arr,
        }
    }

    /// The nonce of message `counter`: IV xor the big-endian counter in the last 8 bytes.
    pub fn nonce(&self, counter: u64) -> [u8; NONCE_LEN] {
        let mut nonce = *self.iv;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(counter.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// Encrypt `buf` in place and return the tag.
    pub fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.aead.seal_in_place(&self.nonce(counter), aad, buf)
    }

    /// Verify and decrypt `buf` in place.
    pub fn open(&self, counter: u64, aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<()> {
        self.aead.open_in_place(&self.nonce(counter), aad, buf, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_erased_from_memory_when_dropped() {
        let raw = [0x5Au8; 32];
        assert!(crate::crypto::drop_leaves_no_trace(
            Psk::from_bytes(&raw).unwrap(),
            &raw
        ));
        // AES-256's first round keys are the key itself: the expanded schedule of the
        // AEAD must be gone too, and the IV.
        let key: Vec<u8> = (1..=32).collect();
        let iv = [0xC3u8; 12];
        assert!(crate::crypto::drop_leaves_no_trace(
            SessionKey::from_key_and_iv(&key, &iv),
            &key[..16]
        ));
        assert!(crate::crypto::drop_leaves_no_trace(
            SessionKey::from_key_and_iv(&key, &iv),
            &iv
        ));
    }

    const PSK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_valid_psk_with_surrounding_whitespace() {
        let a = Psk::from_hex(PSK_HEX).unwrap();
        let b = Psk::from_hex(&format!("  {PSK_HEX}\n")).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let upper = Psk::from_hex(&PSK_HEX.to_uppercase()).unwrap();
        assert_eq!(a.key_id(), upper.key_id());
    }

    #[test]
    fn rejects_bad_psks_without_echoing_them() {
        let secretish = "zz".repeat(32);
        for bad in [
            "",
            "abcd",
            &PSK_HEX[..62],
            &format!("{PSK_HEX}00"),
            secretish.as_str(),
            &"0".repeat(64),
        ] {
            let err = Psk::from_hex(bad).unwrap_err().to_string();
            assert!(matches!(Psk::from_hex(bad), Err(Error::Config(_))));
            if bad.len() >= 4 {
                assert!(!err.contains(bad), "error echoes the value: {err}");
            }
        }
        assert!(Psk::from_hex(&"0".repeat(64))
            .unwrap_err()
            .to_string()
            .contains("zero"));
    }

    #[test]
    fn debug_is_redacted() {
        let psk = Psk::from_hex(PSK_HEX).unwrap();
        let shown = format!("{psk:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("0102030405"));
        let key = psk.sender_key(&[7; 16], "node-1");
        assert_eq!(format!("{key:?}"), "SessionKey(<redacted>)");
    }

    #[test]
    fn sender_keys_differ_by_session_and_sender() {
        let psk = Psk::from_hex(PSK_HEX).unwrap();
        let mut buf_a = *b"same plaintext..";
        let mut buf_b = buf_a;
        let mut buf_c = buf_a;
        psk.sender_key(&[1; 16], "node-1").seal(0, b"", &mut buf_a);
        psk.sender_key(&[2; 16], "node-1").seal(0, b"", &mut buf_b);
        psk.sender_key(&[1; 16], "node-2").seal(0, b"", &mut buf_c);
        assert_ne!(buf_a, buf_b);
        assert_ne!(buf_a, buf_c);
        assert_ne!(buf_b, buf_c);
    }

    #[test]
    fn nonce_xors_counter_into_iv() {
        let key = SessionKey::from_key_and_iv(&[0; 32], &[0xff; 12]);
        let n = key.nonce(0x0102030405060708);
        assert_eq!(
            n,
            [0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7]
        );
        assert_ne!(key.nonce(1), key.nonce(2));
    }

    /// RFC 5869, Appendix A.1 (Test Case 1): HKDF-SHA256 as used by the key schedule.
    #[test]
    fn hkdf_sha256_rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256(Some(&salt), &ikm, &info, &mut okm);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    /// Fixed vector of our own schedule, so a change to labels or layout cannot go unnoticed.
    #[test]
    fn key_schedule_known_answer() {
        let psk = Psk::from_hex(PSK_HEX).unwrap();
        assert_eq!(hex::encode(psk.key_id().0), KEY_ID_VECTOR);
        let key = psk.sender_key(&[0x11; 16], "node-1");
        let mut buf = *b"evospikenet";
        let tag = key.seal(5, b"aad", &mut buf);
        assert_eq!(hex::encode(buf), CIPHERTEXT_VECTOR);
        assert_eq!(hex::encode(tag), TAG_VECTOR);
    }

    // Computed independently with Python's `cryptography` (HKDF, AESGCM) from the
    // schedule in this file's header; see tests/test_wire_format.py for the same check.
    const KEY_ID_VECTOR: &str = "c1bed9be";
    const CIPHERTEXT_VECTOR: &str = "80f9460fa08916b561f219";
    const TAG_VECTOR: &str = "b420374879dfd55a36153d0ff22af7ca";
}
