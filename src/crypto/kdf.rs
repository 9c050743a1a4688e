//! HKDF-SHA256 (RFC 5869) that leaves no key material behind.
//!
//! RustCrypto's `hkdf`/`hmac` 0.12 keep the PRK as two SHA-256 states (key xor ipad, key
//! xor opad) and the output blocks T(i) in plain stack variables and wipe none of them;
//! 0.13 wipes the objects on drop but still leaves copies in the frames of `expand`
//! (RustCrypto/KDFs#215, RustCrypto/MACs#255). So every derivation runs in a frame of its
//! own, its output goes straight into the caller's zeroizing buffer, and the stack below
//! the caller is overwritten afterwards, as libsodium's `sodium_stackzero` does. The same
//! is done after building an AES key schedule (`crypto::aead`).

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

/// Bytes of stack overwritten after a derivation: well above the deepest derivation
/// measured (about 25 KiB in debug builds, 3 KiB in release).
const BURN_BYTES: usize = 32 * 1024;

/// HKDF-SHA256(salt, ikm, info) into `okm`; panics if `okm` is longer than 255 * 32
/// bytes (every caller asks for a fixed, valid length).
pub fn hkdf_sha256(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], okm: &mut [u8]) {
    #[inline(never)]
    fn derive(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], okm: &mut [u8]) {
        Hkdf::<Sha256>::new(salt, ikm)
            .expand(info, okm)
            .expect("a valid HKDF-SHA256 output length");
    }
    derive(salt, ikm, info, okm);
    burn_stack();
}

/// Overwrite the `BURN_BYTES` of stack below the caller's frame.
#[inline(never)]
pub fn burn_stack() {
    let mut scratch = [0u64; BURN_BYTES / 8];
    // Volatile writes and a compiler fence: not optimized away.
    scratch.zeroize();
    std::hint::black_box(&scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack the derivation used holds neither the PRK nor an output block once it
    /// returned. Runs on a thread of its own, so the scanned range is its own stack.
    #[test]
    fn a_derivation_leaves_no_key_material_on_the_stack() {
        std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| {
                let salt = [0x11u8; 32];
                let ikm = [0x22u8; 96];
                let info = b"evospikenet/test/kdf";
                let (prk, _) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
                let mut expected = [0u8; 120];
                Hkdf::<Sha256>::from_prk(&prk)
                    .unwrap()
                    .expand(info, &mut expected)
                    .unwrap();
                let prk: [u8; 32] = prk.into();
                // Scrub what computing the expectation left, then derive in a deeper frame.
                burn_stack();
                let top = stack_pointer();
                let mut okm = Box::new([0u8; 120]);
                deeper(&mut || {
                    let mut out = zeroize::Zeroizing::new([0u8; 120]);
                    hkdf_sha256(Some(&salt), &ikm, info, out.as_mut_slice());
                    okm.copy_from_slice(out.as_slice());
                });
                assert_eq!(&okm[..], &expected[..]);
                let below = stack_below(top, 96 * 1024);
                let found = |needle: &[u8]| below.windows(needle.len()).any(|w| w == needle);
                assert!(!found(&prk[..16]), "the PRK is left on the stack");
                for block in expected.chunks(32) {
                    assert!(!found(&block[..16]), "an output block is left on the stack");
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[inline(never)]
    fn deeper(f: &mut dyn FnMut()) {
        let pad = [0u8; 4096];
        std::hint::black_box(&pad);
        f();
        std::hint::black_box(&pad);
    }

    fn stack_pointer() -> usize {
        let marker = 0u8;
        std::hint::black_box(&marker) as *const u8 as usize
    }

    /// A copy of the `len` bytes of this thread's stack below `top` (skipping the 1 KiB
    /// the scanner itself uses).
    #[inline(never)]
    fn stack_below(top: usize, len: usize) -> Vec<u8> {
        (top - len..top - 1024)
            // SAFETY: the thread's stack is a 4 MiB mapping and `top` lies near its top,
            // so the range is mapped memory of this thread; it is only read, volatile.
            .map(|a| unsafe { std::ptr::read_volatile(a as *const u8) })
            .collect()
    }
}
