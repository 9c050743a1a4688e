//! Fuzz target: key-exchange messages (`Control::parse`, `open_sealed`, announcements).
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evospikenet_fuzz::control(data));
