//! The fuzz targets' checks on stable Rust, fast enough for every CI run: every file of
//! the checked-in seed corpus (`fuzz/corpus/<target>/`) and a few thousand deterministic
//! mutations of them (bit flips, cuts, extensions, huge lengths, splices) go through the
//! same functions the libFuzzer targets call (`fuzz/src/lib.rs`). No input may panic, and
//! no input may make the parsers allocate more than a small bound, whatever a header
//! claims. Long fuzzing runs are `fuzz/run.sh` (nightly, cargo-fuzz).
//!
//! Regenerate the seeds after a wire-format change with
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, recording the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Mutations per corpus file.
const MUTATIONS_PER_SEED: usize = 60;
/// Inputs are at most a few KiB; a parser that allocated what a header claims would go
/// far beyond this.
const ALLOCATION_BOUND: usize = 1 << 20;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random mutation of `seed` (`other` is another corpus file, for splicing).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    let pos = rng.below(m.len());
    match rng.below(9) {
        0 if !m.is_empty() => m[pos] ^= 1 << rng.below(8),
        1 if !m.is_empty() => m[pos] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
        2 => m.truncate(pos),
        3 => m = m.split_off(pos),
        4 => m.extend((0..1 + rng.below(64)).map(|_| rng.next() as u8)),
        5 => {
            // A length or count field claiming the maximum.
            let huge = [u64::MAX, 1 << 63, u32::MAX as u64, 0xffff][rng.below(4)];
            let bytes = huge.to_be_bytes();
            let n = [1, 2, 4, 8][rng.below(4)];
            for (i, b) in bytes[8 - n..].iter().enumerate() {
                if let Some(slot) = m.get_mut(pos + i) {
                    *slot = *b;
                }
            }
        }
        6 => {
            m.truncate(pos);
            m.extend_from_slice(&other[rng.below(other.len())..]);
        }
        7 if !m.is_empty() => {
            m.remove(pos);
        }
        _ => m.insert(pos, rng.next() as u8),
    }
    m
}

fn read_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn corpus_and_mutations_never_panic_or_allocate_what_headers_claim() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut inputs = 0;
    for (target, check) in checks::TARGETS {
        let corpus = read_corpus(target);
        assert!(corpus.len() >= 8, "{target}: seed corpus missing");
        for (i, (name, seed)) in corpus.iter().enumerate() {
            let run = |input: &[u8], what: &str| {
                let hook = std::panic::catch_unwind(|| check(input));
                assert!(
                    hook.is_ok(),
                    "{target}: {what} of {name} panicked; input: {}",
                    hex_of(input)
                );
            };
            run(seed, "the seed");
            let other = &corpus[(i + 1) % corpus.len()].1;
            for k in 0..MUTATIONS_PER_SEED {
                let m = mutate(&mut rng, seed, other);
                run(&m, &format!("mutation {k}"));
                inputs += 1;
            }
            inputs += 1;
        }
        for len in [0, 1, 2, 7, 44, 61, 140, 500] {
            let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            std::panic::catch_unwind(|| check(&noise))
                .unwrap_or_else(|_| panic!("{target}: noise {} panicked", hex_of(&noise)));
            inputs += 1;
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    println!("{inputs} inputs; largest single allocation {largest} bytes");
    assert!(
        largest < ALLOCATION_BOUND,
        "an allocation of {largest} bytes: a parser trusted a claimed length"
    );
}

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    // Catches a wire-format change that left the seeds behind: the real messages among
    // them would no longer open, and the fuzzers would start from garbage.
    for (target, seeds) in checks::seeds::all() {
        let corpus = read_corpus(target);
        for (name, bytes) in seeds {
            let found = corpus.iter().find(|(n, _)| *n == name);
            assert!(
                found.is_some_and(|(_, b)| *b == bytes),
                "fuzz/corpus/{target}/{name} is missing or stale: run \
                 `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`"
            );
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run after a wire-format change"]
fn write_seed_corpus() {
    for (target, seeds) in checks::seeds::all() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
