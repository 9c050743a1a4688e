//! Sender authentication in DH mode with pinned identity keys (header mode 3).
//!
//! A node seals each publication once, under its sender key, which every peer holds: that
//! key proves membership, not who sent. So with pinned identities each message also
//! carries, for every peer holding the sender key, a tag under a key only the sender and
//! that peer hold (a fresh random key per peer and per sender-key epoch, handed over with
//! the sender key on the pinned, authenticated pairwise channel):
//!
//! ```text
//! message   = header (mode 3) || AES-256-GCM body || tag || trailer
//! trailer   = N x (recipient id [4] || HMAC-SHA256(k_sender->recipient, digest) [32]) || N u8
//! recipient id = SHA-256("evospikenet/v2/recipient" || node id)[..4]
//! digest    = SHA-256("evospikenet/v2/sender-auth" || u16be len || topic
//!                     || u16be len || binding || header || body || tag)
//! ```
//! The digest covers the whole sealed message and its topic: a member knows the sender key,
//! and GHASH is no hash for someone who knows it, so the GCM tag alone cannot be what is
//! MACed. One hash per message, then one HMAC per recipient; a receiver checks only its
//! own entry (measured against Ed25519 signatures: docs/benchmarks.md).

use std::mem::MaybeUninit;

use ring::{digest, hmac};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const RECIPIENT_ID_LEN: usize = 4;
pub const AUTH_TAG_LEN: usize = 32;
pub const ENTRY_LEN: usize = RECIPIENT_ID_LEN + AUTH_TAG_LEN;
/// At most this many tags per message (the count is one byte).
pub const MAX_RECIPIENTS: usize = 255;
pub const AUTH_KEY_LEN: usize = 32;

const LABEL_RECIPIENT: &[u8] = b"evospikenet/v2/recipient";
const LABEL_DIGEST: &[u8] = b"evospikenet/v2/sender-auth";

/// A sender-auth key. The HMAC state (key-equivalent) is wiped on drop.
pub struct AuthKey {
    // Initialized until `drop`, which overwrites it (as `aead::Aead`).
    key: MaybeUninit<hmac::Key>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

impl AuthKey {
    pub fn new(raw: &Zeroizing<[u8; AUTH_KEY_LEN]>) -> AuthKey {
        let key = AuthKey {
            key: MaybeUninit::new(hmac::Key::new(hmac::HMAC_SHA256, raw.as_slice())),
        };
        crate::crypto::kdf::burn_stack();
        key
    }

    fn key(&self) -> &hmac::Key {
        // SAFETY: initialized in `new`, only overwritten in `drop`.
        unsafe { self.key.assume_init_ref() }
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        // SAFETY: `hmac::Key` is two flat SHA-256 block contexts (no heap, no destructor),
        // as `zeroize_flat_type` requires; the slot is never read again.
        unsafe { zeroize::zeroize_flat_type(self.key.as_mut_ptr()) }
    }
}

/// The short public name of a recipient in a trailer.
pub fn recipient_id(node_id: &str) -> [u8; RECIPIENT_ID_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LABEL_RECIPIENT);
    ctx.update(node_id.as_bytes());
    ctx.finish().as_ref()[..RECIPIENT_ID_LEN]
        .try_into()
        .expect("4 bytes")
}

fn digest_of(topic: &str, binding: &[u8], sealed: &[u8]) -> digest::Digest {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LABEL_DIGEST);
    for part in [topic.as_bytes(), binding] {
        ctx.update(&(part.len().min(u16::MAX as usize) as u16).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(sealed);
    ctx.finish()
}

/// Append the trailer for `recipients` to the sealed message `msg`.
pub fn append_trailer(
    msg: &mut Vec<u8>,
    topic: &str,
    binding: &[u8],
    recipients: &[([u8; RECIPIENT_ID_LEN], AuthKey)],
) {
    let recipients = &recipients[..recipients.len().min(MAX_RECIPIENTS)];
    let d = digest_of(topic, binding, msg);
    msg.reserve(recipients.len() * ENTRY_LEN + 1);
    for (rid, key) in recipients {
        msg.extend_from_slice(rid);
        msg.extend_from_slice(hmac::sign(key.key(), d.as_ref()).as_ref());
    }
    msg.push(recipients.len() as u8);
}

/// Split a mode-3 message into the sealed message and its trailer entries.
pub fn split_trailer(msg: &[u8]) -> Result<(&[u8], &[u8])> {
    let (&n, rest) = msg.split_last().ok_or(Error::Authentication)?;
    let len = usize::from(n) * ENTRY_LEN;
    if rest.len() < len {
        return Err(Error::Authentication);
    }
    Ok(rest.split_at(rest.len() - len))
}

/// Whether an entry for `me` in `trailer` carries a valid tag under `key` for the sealed
/// message `sealed` on `topic` (constant-time comparison, by ring).
pub fn verify(
    sealed: &[u8],
    trailer: &[u8],
    topic: &str,
    binding: &[u8],
    me: &[u8; RECIPIENT_ID_LEN],
    key: &AuthKey,
) -> bool {
    let mine: Vec<&[u8]> = trailer
        .chunks_exact(ENTRY_LEN)
        .filter(|e| &e[..RECIPIENT_ID_LEN] == me)
        .map(|e| &e[RECIPIENT_ID_LEN..])
        .collect();
    if mine.is_empty() {
        return false;
    }
    let d = digest_of(topic, binding, sealed);
    mine.iter()
        .any(|tag| hmac::verify(key.key(), d.as_ref(), tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> AuthKey {
        AuthKey::new(&Zeroizing::new([b; AUTH_KEY_LEN]))
    }

    #[test]
    fn each_recipient_verifies_its_own_tag_only() {
        let (b, c) = (recipient_id("node-b"), recipient_id("node-c"));
        let mut msg = b"sealed message".to_vec();
        append_trailer(&mut msg, "ns/t", b"", &[(b, key(2)), (c, key(3))]);
        let (sealed, trailer) = split_trailer(&msg).unwrap();
        assert_eq!(sealed, b"sealed message");
        assert!(verify(sealed, trailer, "ns/t", b"", &b, &key(2)));
        assert!(verify(sealed, trailer, "ns/t", b"", &c, &key(3)));
        // Another node's key, another topic, a changed message: refused.
        assert!(!verify(sealed, trailer, "ns/t", b"", &b, &key(3)));
        assert!(!verify(sealed, trailer, "ns/u", b"", &b, &key(2)));
        assert!(!verify(
            b"sealed messagf",
            trailer,
            "ns/t",
            b"",
            &b,
            &key(2)
        ));
        // A recipient with no entry: refused.
        assert!(!verify(
            sealed,
            trailer,
            "ns/t",
            b"",
            &recipient_id("node-d"),
            &key(2)
        ));
    }

    #[test]
    fn a_member_cannot_forge_a_tag_for_another_sender() {
        // node-c holds the sender key of node-a (a member) but not a's key for node-b:
        // whatever it writes in b's entry fails.
        let b = recipient_id("node-b");
        let mut forged = b"forged by node-c".to_vec();
        append_trailer(&mut forged, "ns/t", b"", &[(b, key(9))]);
        let (sealed, trailer) = split_trailer(&forged).unwrap();
        assert!(!verify(sealed, trailer, "ns/t", b"", &b, &key(2)));
    }

    #[test]
    fn malformed_trailers_are_refused() {
        assert!(split_trailer(b"").is_err());
        assert!(split_trailer(&[1]).is_err());
        let mut msg = vec![0u8; 10];
        msg.push(1);
        assert!(split_trailer(&msg).is_err());
        let (sealed, trailer) = split_trailer(&[7, 7, 0]).unwrap();
        assert_eq!((sealed, trailer), (&[7u8, 7][..], &[][..]));
    }

    #[test]
    fn auth_keys_are_wiped_on_drop() {
        // The HMAC state derived from the key is what must go: look for its first block
        // state bytes by recomputing the same key and comparing memory before and after.
        let k = key(0x5a);
        let witness = AuthKey::new(&Zeroizing::new([0x5a; AUTH_KEY_LEN]));
        // SAFETY: reading the initialized bytes of a live value, for comparison only.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                witness.key.as_ptr().cast::<u8>(),
                std::mem::size_of::<hmac::Key>(),
            )
        }
        .to_vec();
        let state = bytes
            .chunks(16)
            .find(|c| c.iter().any(|&b| b != 0))
            .unwrap()
            .to_vec();
        assert!(crate::crypto::drop_leaves_no_trace(k, &state));
    }
}
