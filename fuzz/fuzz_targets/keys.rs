//! Fuzz target: PSK, identity-key, public-key and fingerprint text; raw keys, announcements.
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evospikenet_fuzz::keys(data));
