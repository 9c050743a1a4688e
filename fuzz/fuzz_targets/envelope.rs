//! Fuzz target: wire messages (`Header::parse`, `Receiver::open` in plaintext, PSK, DH mode).
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evospikenet_fuzz::envelope(data));
