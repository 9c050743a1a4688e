//! Fuzz target: payload codec (`Format::from_byte`, `numeric_itemsize`, `parse_array`).
//! The checks are in `src/lib.rs`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evospikenet_fuzz::codec(data));
