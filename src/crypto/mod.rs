//! Keys, the AEAD, the wire envelope and the replay window.
//!
//! Nothing in here knows about Zenoh or Python: it turns (header, topic, plaintext) into
//! bytes and back, and decides whether a message may be accepted.

pub mod aead;
pub mod control;
pub mod envelope;
pub mod group;
pub mod handshake;
pub mod keys;
pub mod replay;
pub mod session;

/// Current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fill `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    use rand_core::{OsRng, RngCore};
    OsRng.fill_bytes(buf);
}
