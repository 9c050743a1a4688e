//! Keys, the AEAD, the wire envelope and the replay window.
//!
//! Nothing in here knows about Zenoh or Python: it turns (header, topic, plaintext) into
//! bytes and back, and decides whether a message may be accepted.

pub mod aead;
pub mod envelope;
pub mod group;
pub mod handshake;
pub mod kdf;
pub mod keyring;
pub mod keys;
pub mod replay;
pub mod sender_auth;
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

/// Test support: whether dropping `value` erases `secret` from the memory it occupied.
#[cfg(test)]
pub(crate) fn drop_leaves_no_trace<T>(value: T, secret: &[u8]) -> bool {
    use std::mem::{size_of, MaybeUninit};
    let mut slot = MaybeUninit::<T>::uninit();
    slot.write(value);
    let contains = |slot: &MaybeUninit<T>| {
        // SAFETY: the slot's bytes stay allocated (on this stack frame) and initialized
        // (with whatever drop left there) for the whole function; they are only read.
        let bytes =
            unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<T>()) };
        bytes.windows(secret.len()).any(|w| w == secret)
    };
    assert!(
        contains(&slot),
        "the secret is not held inline; this check cannot see it"
    );
    // SAFETY: the slot holds a valid T, dropped exactly once here and never used again.
    unsafe { std::ptr::drop_in_place(slot.as_mut_ptr()) };
    !contains(&slot)
}
