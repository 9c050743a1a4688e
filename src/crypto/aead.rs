//! The one AEAD the project uses: AES-256-GCM (NIST SP 800-38D) behind a small interface,
//! so the backend can change without touching the envelope or its tests.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

use crate::error::{Error, Result};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM key schedule. `aes` is built with `zeroize`, so it is wiped on drop.
pub struct Aead {
    cipher: Aes256Gcm,
}

impl Aead {
    /// `key` must be exactly 32 bytes (callers derive it, so this is an internal invariant).
    pub fn new(key: &[u8]) -> Aead {
        assert_eq!(key.len(), KEY_LEN, "AES-256 key must be 32 bytes");
        Aead {
            cipher: Aes256Gcm::new_from_slice(key).expect("length checked above"),
        }
    }

    /// Encrypt `buf` in place; returns the 16-byte tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .expect("AES-GCM encryption only fails above 64 GiB per message");
        tag.into()
    }

    /// Verify the tag and decrypt `buf` in place. On failure `buf` is left scrambled and
    /// must be discarded; the error carries no detail.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        if tag.len() != TAG_LEN {
            return Err(Error::Authentication);
        }
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .map_err(|_| Error::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    /// NIST GCM test vectors (gcmEncryptExtIV256.rsp), as also listed in McGrew & Viega,
    /// "The Galois/Counter Mode of Operation", Test Case 16 (AES-256, 60-byte plaintext, AAD).
    #[test]
    fn aes256_gcm_test_case_16() {
        let key = hex!("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = hex!("cafebabefacedbaddecaf888");
        let pt = hex!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        );
        let aad = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = hex!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        );
        let tag = hex!("76fc6ece0f4e1768cddf8853bb2d551b");

        let aead = Aead::new(&key);
        let mut buf = pt;
        assert_eq!(aead.seal_in_place(&iv, &aad, &mut buf), tag);
        assert_eq!(buf, ct);
        aead.open_in_place(&iv, &aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, pt);
    }

    /// Test Case 13: AES-256, empty plaintext, no AAD.
    #[test]
    fn aes256_gcm_test_case_13() {
        let aead = Aead::new(&[0u8; 32]);
        let tag = aead.seal_in_place(&[0u8; 12], b"", &mut []);
        assert_eq!(tag, hex!("530f8afbc74536b9a963b4f1c4cb738b"));
    }

    #[test]
    fn any_modification_fails() {
        let aead = Aead::new(&[9u8; 32]);
        let nonce = [3u8; 12];
        let mut buf = *b"spikes: 1 2 3";
        let tag = aead.seal_in_place(&nonce, b"topic", &mut buf);
        let sealed = buf;
        let mut flipped = sealed;
        flipped[0] ^= 1;
        assert!(aead
            .open_in_place(&nonce, b"topic", &mut flipped, &tag)
            .is_err());
        let mut copy = sealed;
        assert!(aead
            .open_in_place(&nonce, b"other", &mut copy, &tag)
            .is_err());
        let mut copy = sealed;
        assert!(aead
            .open_in_place(&[4u8; 12], b"topic", &mut copy, &tag)
            .is_err());
        let mut copy = sealed;
        assert!(aead
            .open_in_place(&nonce, b"topic", &mut copy, &tag[..15])
            .is_err());
        let mut copy = sealed;
        aead.open_in_place(&nonce, b"topic", &mut copy, &tag)
            .unwrap();
        assert_eq!(&copy, b"spikes: 1 2 3");
    }
}
