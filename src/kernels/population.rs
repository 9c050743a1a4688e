//! Stepping a population, serially or on several threads, with spikes in either form.
//!
//! A kernel describes its per-neuron arrays as a [`Population`]: something that can be
//! cut into two contiguous halves and stepped. The drivers here do the rest: split the
//! work over threads, and for the index form walk the population in blocks of
//! [`BLOCK`] neurons whose spike mask lives in a stack buffer, so the index form never
//! writes a population-sized mask to memory.

use super::error::{check_len, KernelError};
use super::spikes::{extend_indices, write_indices};

/// Neurons per block: large enough to amortize the per-block work, small enough that a
/// block's spike mask and scalar-parameter buffers stay in L1.
pub const BLOCK: usize = 1024;

/// Population size from which [`default_threads`] uses every thread of the pool.
///
/// Measured on a 2-core x86_64 machine: below about 4 million neurons a second thread
/// gains nothing (a step takes a millisecond or two and one core already draws most of
/// the memory bandwidth); above it the float kernels (LIF, Izhikevich) run 30-45% faster
/// on two threads, the integer LIF up to 25%. When the other core is busy, a second
/// thread makes every kernel slower, so the default stays serial below this size.
pub const PARALLEL_MIN_LEN: usize = 1 << 22;

/// Split points are multiples of this many neurons, so that no two threads write to the
/// same cache line of any state or output array (64 bytes hold at least 64 bools).
const SPLIT_ALIGN: usize = 64;

/// The thread count used when the caller does not choose one: 1 below
/// [`PARALLEL_MIN_LEN`] neurons, otherwise the size of rayon's global pool (by default
/// the number of cores).
pub fn default_threads(len: usize) -> usize {
    if len >= PARALLEL_MIN_LEN {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// The per-neuron arrays of one kernel call, as a unit that can be split and stepped.
pub trait Population: Sized + Send {
    /// Number of neurons.
    fn len(&self) -> usize;

    /// Whether the population has no neurons.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits into neurons `..mid` and `mid..`.
    fn split_at(self, mid: usize) -> (Self, Self);

    /// Advances every neuron by one step and writes whether it spiked into `spikes`,
    /// which has exactly [`len`](Self::len) elements.
    fn step(self, spikes: &mut [bool]);
}

/// A per-neuron part of a population: cut at a neuron into the parts before and after.
pub(crate) trait SplitAt: Sized {
    fn split_at(self, mid: usize) -> (Self, Self);
}

impl<T> SplitAt for &mut [T] {
    fn split_at(self, mid: usize) -> (Self, Self) {
        self.split_at_mut(mid)
    }
}

impl<T> SplitAt for &[T] {
    fn split_at(self, mid: usize) -> (Self, Self) {
        <[T]>::split_at(self, mid)
    }
}

/// `Self`'s halves at neuron `$mid`: the `keep` fields (parameters, `Copy`) go to both
/// halves as they are, the `cut` fields ([`SplitAt`]) are cut. The body of
/// [`Population::split_at`] for a struct of per-neuron arrays.
macro_rules! split_fields {
    ($this:expr, $mid:expr, keep [$($keep:ident),*], cut [$($cut:ident),*]) => {{
        let this = $this;
        $(let $cut = $crate::kernels::population::SplitAt::split_at(this.$cut, $mid);)*
        (
            Self { $($keep: this.$keep,)* $($cut: $cut.0,)* },
            Self { $($keep: this.$keep,)* $($cut: $cut.1,)* },
        )
    }};
}
pub(crate) use split_fields;

/// Steps `pop` once, writing the spike mask into `spikes` (one bool per neuron), using
/// up to `threads` threads of rayon's global pool.
pub fn step_mask<P: Population>(
    pop: P,
    spikes: &mut [bool],
    threads: usize,
) -> Result<(), KernelError> {
    check_len("out", pop.len(), spikes.len())?;
    mask_parts(pop, spikes, threads.max(1));
    Ok(())
}

/// Steps `pop` once and returns the indices of the neurons that spiked, in increasing
/// order, using up to `threads` threads of rayon's global pool.
pub fn step_indices<P: Population>(pop: P, threads: usize) -> Result<Vec<u32>, KernelError> {
    if pop.len() > u32::MAX as usize + 1 {
        return Err(KernelError::TooManyNeurons { len: pop.len() });
    }
    Ok(indices_vec_parts(pop, 0, threads.max(1)))
}

/// Steps `pop` once and writes the indices of the neurons that spiked, in increasing
/// order, to the front of `out`; returns their number. `out` needs room for one index
/// per neuron (a buffer reused across steps saves an allocation per step).
pub fn step_indices_into<P: Population>(
    pop: P,
    out: &mut [u32],
    threads: usize,
) -> Result<usize, KernelError> {
    let n = pop.len();
    if n > u32::MAX as usize + 1 {
        return Err(KernelError::TooManyNeurons { len: n });
    }
    if out.len() < n {
        return Err(KernelError::TooShort {
            arg: "out",
            min: n,
            got: out.len(),
        });
    }
    Ok(indices_parts(pop, 0, &mut out[..n], threads.max(1)))
}

/// Where to cut `len` neurons so that the left part gets `left` of `parts` shares.
fn split_point(len: usize, left: usize, parts: usize) -> usize {
    let exact = (len as u128 * left as u128 / parts as u128) as usize;
    (exact / SPLIT_ALIGN * SPLIT_ALIGN).max(SPLIT_ALIGN)
}

fn mask_parts<P: Population>(pop: P, spikes: &mut [bool], parts: usize) {
    if parts <= 1 || pop.len() < 2 * SPLIT_ALIGN {
        pop.step(spikes);
        return;
    }
    let left = parts / 2;
    let mid = split_point(pop.len(), left, parts);
    let (a, b) = pop.split_at(mid);
    let (sa, sb) = spikes.split_at_mut(mid);
    rayon::join(
        || mask_parts(a, sa, left),
        || mask_parts(b, sb, parts - left),
    );
}

/// Each part writes its indices at the start of its own stretch of `out` (a part never
/// has more spikes than neurons), then the right part's are moved down to follow the
/// left part's: no allocation, and the parts never share a cache line of input.
fn indices_parts<P: Population>(pop: P, offset: usize, out: &mut [u32], parts: usize) -> usize {
    if parts <= 1 || pop.len() < 2 * SPLIT_ALIGN {
        return indices_serial(pop, offset, out);
    }
    let left = parts / 2;
    let mid = split_point(pop.len(), left, parts);
    let (a, b) = pop.split_at(mid);
    let (oa, ob) = out.split_at_mut(mid);
    let (ka, kb) = rayon::join(
        || indices_parts(a, offset, oa, left),
        || indices_parts(b, offset + mid, ob, parts - left),
    );
    out.copy_within(mid..mid + kb, ka);
    ka + kb
}

fn indices_serial<P: Population>(mut pop: P, offset: usize, out: &mut [u32]) -> usize {
    let mut buf = [false; BLOCK];
    let mut k = 0;
    let mut base = offset;
    while !pop.is_empty() {
        let len = pop.len().min(BLOCK);
        let (head, rest) = pop.split_at(len);
        head.step(&mut buf[..len]);
        // k <= the neurons done so far, so out[k..] has room for this block.
        k += write_indices(&buf[..len], base, &mut out[k..]);
        base += len;
        pop = rest;
    }
    k
}

/// [`indices_parts`] into a new vector. Without a caller's buffer, one as large as the
/// population would have to be zeroed or page-faulted in on every step, which costs
/// more than the step; so each part collects its indices through a block-sized stack
/// buffer, and the parts are concatenated.
fn indices_vec_parts<P: Population>(pop: P, offset: usize, parts: usize) -> Vec<u32> {
    if parts <= 1 || pop.len() < 2 * SPLIT_ALIGN {
        let mut out = Vec::new();
        let mut buf = [false; BLOCK];
        let (mut pop, mut base) = (pop, offset);
        while !pop.is_empty() {
            let len = pop.len().min(BLOCK);
            let (head, rest) = pop.split_at(len);
            head.step(&mut buf[..len]);
            extend_indices(&buf[..len], base, &mut out);
            base += len;
            pop = rest;
        }
        return out;
    }
    let left = parts / 2;
    let mid = split_point(pop.len(), left, parts);
    let (a, b) = pop.split_at(mid);
    let (mut ia, ib) = rayon::join(
        || indices_vec_parts(a, offset, left),
        || indices_vec_parts(b, offset + mid, parts - left),
    );
    ia.extend_from_slice(&ib);
    ia
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A population whose neuron `i` spikes when `i % period == phase`, and which counts
    /// its steps so a test can see every neuron was stepped exactly once.
    struct Modulo<'a> {
        start: usize,
        steps: &'a mut [u8],
        period: usize,
    }

    impl Population for Modulo<'_> {
        fn len(&self) -> usize {
            self.steps.len()
        }
        fn split_at(self, mid: usize) -> (Self, Self) {
            let (a, b) = self.steps.split_at_mut(mid);
            (
                Modulo {
                    start: self.start,
                    steps: a,
                    period: self.period,
                },
                Modulo {
                    start: self.start + mid,
                    steps: b,
                    period: self.period,
                },
            )
        }
        fn step(self, spikes: &mut [bool]) {
            assert_eq!(spikes.len(), self.steps.len());
            for (k, (c, s)) in self.steps.iter_mut().zip(spikes).enumerate() {
                *c += 1;
                *s = (self.start + k) % self.period == 0;
            }
        }
    }

    fn expected(n: usize, period: usize) -> Vec<u32> {
        (0..n as u32)
            .filter(|i| *i as usize % period == 0)
            .collect()
    }

    #[test]
    fn indices_match_mask_for_any_thread_count() {
        for n in [0, 1, 63, 64, 129, 1023, 1024, 1025, 5000, 70_001] {
            for threads in [1, 2, 3, 8] {
                let mut steps = vec![0u8; n];
                let pop = Modulo {
                    start: 0,
                    steps: &mut steps,
                    period: 7,
                };
                let idx = step_indices(pop, threads).unwrap();
                assert_eq!(idx, expected(n, 7), "n={n} threads={threads}");
                assert!(steps.iter().all(|&c| c == 1));

                let mut steps = vec![0u8; n];
                let mut mask = vec![true; n];
                let pop = Modulo {
                    start: 0,
                    steps: &mut steps,
                    period: 7,
                };
                step_mask(pop, &mut mask, threads).unwrap();
                let from_mask: Vec<u32> = (0..n as u32).filter(|&i| mask[i as usize]).collect();
                assert_eq!(from_mask, expected(n, 7));
                assert!(steps.iter().all(|&c| c == 1));
            }
        }
    }

    #[test]
    fn indices_into_a_reused_buffer() {
        let mut out = vec![u32::MAX; 1000];
        for threads in [1, 2, 3] {
            let mut steps = vec![0u8; 900];
            let pop = Modulo {
                start: 0,
                steps: &mut steps,
                period: 5,
            };
            let k = step_indices_into(pop, &mut out, threads).unwrap();
            assert_eq!(&out[..k], &expected(900, 5)[..]);
            assert!(out[900..].iter().all(|&x| x == u32::MAX), "written past n");
        }
        let mut steps = vec![0u8; 10];
        let pop = Modulo {
            start: 0,
            steps: &mut steps,
            period: 5,
        };
        assert_eq!(
            step_indices_into(pop, &mut out[..9], 1),
            Err(KernelError::TooShort {
                arg: "out",
                min: 10,
                got: 9
            })
        );
        assert!(steps.iter().all(|&c| c == 0));
    }

    #[test]
    fn mask_length_is_checked_before_stepping() {
        let mut steps = vec![0u8; 10];
        let mut mask = vec![false; 9];
        let pop = Modulo {
            start: 0,
            steps: &mut steps,
            period: 2,
        };
        let err = step_mask(pop, &mut mask, 1).unwrap_err();
        assert_eq!(
            err,
            KernelError::Length {
                arg: "out",
                expected: 10,
                got: 9
            }
        );
        assert!(steps.iter().all(|&c| c == 0));
    }

    #[test]
    fn split_points_are_aligned() {
        assert_eq!(split_point(1000, 1, 2), 448);
        assert_eq!(split_point(130, 1, 2), 64);
        assert_eq!(split_point(1 << 20, 1, 2), 1 << 19);
        assert_eq!(split_point(100, 1, 4), 64);
    }

    #[test]
    fn default_threads_is_serial_for_small_populations() {
        assert_eq!(default_threads(10_000), 1);
        assert_eq!(
            default_threads(PARALLEL_MIN_LEN),
            rayon::current_num_threads()
        );
    }
}
