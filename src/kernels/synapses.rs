//! Event-driven synaptic propagation through a CSR weight matrix.
//!
//! Row `i` of the matrix holds the outgoing synapses of presynaptic neuron `i`: target
//! neurons in `indices[indptr[i]..indptr[i + 1]]`, weights at the same positions of
//! `data` (scipy.sparse's CSR layout, shape `(n_pre, n_post)`). Propagating a step's
//! spikes adds the row of every spiking neuron into the postsynaptic input array, so
//! the cost is proportional to the number of synaptic events, never to the number of
//! synapses. The same call serves local recurrent connections and the incoming side of
//! a projection from another node (its matrix maps the source population onto the
//! local one).
//!
//! Accumulation: `f32` adds; the integer targets add with saturation (`i16` weights
//! into `i16` or `i32` inputs, `i32` weights into `i32` inputs). Accumulating into
//! `i32` never saturates in practice (it needs 65536 maximal `i16` weights onto one
//! neuron), so integer results are then independent of the order of the spikes, which
//! keeps distributed runs bit-identical to single-process ones.

use super::error::{check_len, KernelError};
use super::spikes::check_indices;

/// An integer type of CSR `indptr` and `indices` (scipy uses `i32`, or `i64` for very
/// large matrices).
pub trait CsrIndex: Copy + Send + Sync {
    /// The value as `i64`, for range checks and messages.
    fn to_i64(self) -> i64;

    /// Position of the first entry of `row` that is not in `0..bound`, if any.
    fn first_out_of_range(row: &[Self], bound: usize) -> Option<usize>;
}

macro_rules! csr_index {
    ($t:ty, $u:ty) => {
        impl CsrIndex for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }

            #[inline]
            fn first_out_of_range(row: &[Self], bound: usize) -> Option<usize> {
                // As unsigned, a negative index is at least 2^(bits-1), so one compare
                // against a bound capped at that value rejects both ends. The compare is
                // in the index's own width: widened to 64 bits it does not vectorize on
                // SSE2, which made this check twice as slow. The reduction vectorizes;
                // the position is searched only on failure.
                let cap = (bound as u64).min(<$t>::MAX as u64 + 1) as $u;
                let all_in = row.iter().fold(true, |ok, &c| ok & ((c as $u) < cap));
                if all_in {
                    None
                } else {
                    row.iter().position(|&c| (c as $u) >= cap)
                }
            }
        }
    };
}

csr_index!(i32, u32);
csr_index!(i64, u64);

/// How a weight of type `W` is added into an input of this type.
pub trait Accumulate<W>: Copy + Send {
    /// `*self += w`, saturating for integers.
    fn accumulate(&mut self, w: W);
}

/// Integer inputs add with saturation at their limits.
macro_rules! saturating_accumulate {
    ($($w:ty => $t:ty),*) => {$(
        impl Accumulate<$w> for $t {
            #[inline(always)]
            fn accumulate(&mut self, w: $w) {
                *self = self.saturating_add(<$t>::from(w));
            }
        }
    )*};
}

saturating_accumulate!(i16 => i16, i16 => i32, i32 => i32);

impl Accumulate<f32> for f32 {
    #[inline(always)]
    fn accumulate(&mut self, w: f32) {
        *self += w;
    }
}

/// A borrowed CSR matrix of shape `(n_pre, n_post)`.
#[derive(Debug, Clone, Copy)]
pub struct Csr<'a, Ix, W> {
    indptr: &'a [Ix],
    indices: &'a [Ix],
    data: &'a [W],
    n_post: usize,
}

impl<'a, Ix: CsrIndex, W: Copy> Csr<'a, Ix, W> {
    /// Wraps the three arrays after the constant-time checks: `indptr` has `n_pre + 1`
    /// entries and `indices` and `data` have the same length. The rows are checked when
    /// they are used ([`propagate`]) or all at once by [`validate`](Self::validate).
    pub fn new(
        indptr: &'a [Ix],
        indices: &'a [Ix],
        data: &'a [W],
        n_pre: usize,
        n_post: usize,
    ) -> Result<Self, KernelError> {
        check_len("indptr", n_pre + 1, indptr.len())?;
        check_len("data", indices.len(), data.len())?;
        Ok(Self {
            indptr,
            indices,
            data,
            n_post,
        })
    }

    /// Number of presynaptic neurons (rows).
    pub fn n_pre(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of postsynaptic neurons (columns).
    pub fn n_post(&self) -> usize {
        self.n_post
    }

    /// Checks the whole structure, in `O(n_pre + nnz)`: `indptr` starts at 0, never
    /// decreases and ends within `indices`, and every column index used lies in
    /// `0..n_post`. A matrix that passes can be propagated without any row failing.
    pub fn validate(&self) -> Result<(), KernelError> {
        let storage = self.indices.len();
        if self.indptr[0].to_i64() != 0 {
            return Err(KernelError::InvalidCsr {
                arg: "indptr",
                reason: format!("indptr[0] is {}, expected 0", self.indptr[0].to_i64()),
            });
        }
        if let Some(row) = self
            .indptr
            .windows(2)
            .position(|w| w[1].to_i64() < w[0].to_i64())
        {
            return Err(KernelError::InvalidCsr {
                arg: "indptr",
                reason: format!("indptr decreases after row {row}"),
            });
        }
        let end = self.indptr[self.n_pre()].to_i64();
        if end > storage as i64 {
            return Err(KernelError::InvalidCsr {
                arg: "indptr",
                reason: format!("indptr ends at {end}, past the {storage} entries of indices"),
            });
        }
        self.check_columns(0, end as usize)
    }

    fn check_columns(&self, lo: usize, hi: usize) -> Result<(), KernelError> {
        match Ix::first_out_of_range(&self.indices[lo..hi], self.n_post) {
            None => Ok(()),
            Some(k) => Err(KernelError::IndexOutOfRange {
                arg: "indices",
                position: lo + k,
                value: self.indices[lo + k].to_i64(),
                bound: self.n_post,
            }),
        }
    }

    /// The storage range of row `s`, which the caller has checked is below `n_pre`.
    #[inline]
    fn row(&self, s: usize) -> Result<(usize, usize), KernelError> {
        let (lo, hi) = (self.indptr[s].to_i64(), self.indptr[s + 1].to_i64());
        if 0 <= lo && lo <= hi && hi <= self.indices.len() as i64 {
            Ok((lo as usize, hi as usize))
        } else {
            Err(self.row_error(s, lo, hi))
        }
    }

    #[cold]
    fn row_error(&self, s: usize, lo: i64, hi: i64) -> KernelError {
        KernelError::InvalidCsr {
            arg: "indptr",
            reason: format!(
                "row {s} spans [{lo}, {hi}), not a range within the {} entries of indices",
                self.indices.len()
            ),
        }
    }
}

/// Adds the row of every neuron listed in `spikes` into `target` and returns the number
/// of synaptic events (weights added).
///
/// `spikes` need not be sorted, and a neuron listed twice is propagated twice. Every
/// listed neuron and every row it touches is checked before `target` is written, so
/// spikes received from elsewhere cannot make the call read or write out of bounds, and
/// a failed call leaves `target` unchanged.
pub fn propagate<Ix, W, T>(
    spikes: &[u32],
    csr: &Csr<'_, Ix, W>,
    target: &mut [T],
) -> Result<u64, KernelError>
where
    Ix: CsrIndex,
    W: Copy,
    T: Accumulate<W>,
{
    check_len("target", csr.n_post, target.len())?;
    check_indices("spikes", spikes, csr.n_pre())?;
    let mut events = 0u64;
    for &s in spikes {
        let (lo, hi) = csr.row(s as usize)?;
        csr.check_columns(lo, hi)?;
        events += (hi - lo) as u64;
    }
    for &s in spikes {
        let (lo, hi) = csr.row(s as usize)?;
        add_row(&csr.indices[lo..hi], &csr.data[lo..hi], target);
    }
    Ok(events)
}

/// Adds one validated row. Unrolled by four: the loads of four synapses issue together
/// instead of behind one loop-counter update each.
#[inline(always)]
fn add_row<Ix: CsrIndex, W: Copy, T: Accumulate<W>>(cols: &[Ix], weights: &[W], target: &mut [T]) {
    let mut c4 = cols.chunks_exact(4);
    let mut w4 = weights.chunks_exact(4);
    for (c, w) in c4.by_ref().zip(w4.by_ref()) {
        target[c[0].to_i64() as usize].accumulate(w[0]);
        target[c[1].to_i64() as usize].accumulate(w[1]);
        target[c[2].to_i64() as usize].accumulate(w[2]);
        target[c[3].to_i64() as usize].accumulate(w[3]);
    }
    for (&c, &w) in c4.remainder().iter().zip(w4.remainder()) {
        target[c.to_i64() as usize].accumulate(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense reference: adds `weights[s][j]` for every listed `s`, in i64.
    fn dense(n_post: usize, rows: &[Vec<(usize, i64)>], spikes: &[u32]) -> Vec<i64> {
        let mut out = vec![0i64; n_post];
        for &s in spikes {
            for &(j, w) in &rows[s as usize] {
                out[j] += w;
            }
        }
        out
    }

    fn to_csr(rows: &[Vec<(usize, i64)>]) -> (Vec<i32>, Vec<i32>, Vec<i64>) {
        let mut indptr = vec![0i32];
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for r in rows {
            for &(j, w) in r {
                indices.push(j as i32);
                data.push(w);
            }
            indptr.push(indices.len() as i32);
        }
        (indptr, indices, data)
    }

    fn example() -> Vec<Vec<(usize, i64)>> {
        vec![
            vec![(0, 5), (2, -3), (2, 4)],
            vec![],
            vec![(1, 100), (3, 7)],
            vec![(3, -1)],
        ]
    }

    #[test]
    fn matches_dense_reference_for_every_accumulator() {
        let rows = example();
        let (indptr, indices, data) = to_csr(&rows);
        let spikes = [3u32, 0, 2, 0];
        let want = dense(4, &rows, &spikes);

        let d16: Vec<i16> = data.iter().map(|&w| w as i16).collect();
        let csr = Csr::new(&indptr, &indices, &d16, 4, 4).unwrap();
        csr.validate().unwrap();
        let mut t16 = vec![0i16; 4];
        assert_eq!(propagate(&spikes, &csr, &mut t16).unwrap(), 9);
        assert_eq!(t16.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), want);
        let mut t32 = vec![0i32; 4];
        propagate(&spikes, &csr, &mut t32).unwrap();
        assert_eq!(t32.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), want);

        let d32: Vec<i32> = data.iter().map(|&w| w as i32).collect();
        let ip64: Vec<i64> = indptr.iter().map(|&x| i64::from(x)).collect();
        let ix64: Vec<i64> = indices.iter().map(|&x| i64::from(x)).collect();
        let csr = Csr::new(&ip64, &ix64, &d32, 4, 4).unwrap();
        let mut t32 = vec![1i32; 4];
        propagate(&spikes, &csr, &mut t32).unwrap();
        assert_eq!(
            t32.iter().map(|&x| i64::from(x) - 1).collect::<Vec<_>>(),
            want
        );

        let df: Vec<f32> = data.iter().map(|&w| w as f32 * 0.5).collect();
        let csr = Csr::new(&indptr, &indices, &df, 4, 4).unwrap();
        let mut tf = vec![0f32; 4];
        propagate(&spikes, &csr, &mut tf).unwrap();
        assert_eq!(
            tf.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
            want.iter().map(|&x| x as f64 * 0.5).collect::<Vec<_>>()
        );
    }

    #[test]
    fn integer_accumulation_saturates() {
        let indptr = [0i32, 2];
        let indices = [0i32, 1];
        let data = [i16::MAX, i16::MIN];
        let csr = Csr::new(&indptr, &indices, &data, 1, 2).unwrap();
        let mut t = [100i16, -100];
        propagate(&[0], &csr, &mut t).unwrap();
        assert_eq!(t, [i16::MAX, i16::MIN]);
        let mut t = [i32::MAX - 1, i32::MIN + 1];
        propagate(&[0], &csr, &mut t).unwrap();
        assert_eq!(t, [i32::MAX, i32::MIN]);
    }

    #[test]
    fn bad_spikes_and_rows_are_rejected_before_any_write() {
        let rows = example();
        let (indptr, mut indices, data) = to_csr(&rows);
        let d: Vec<i16> = data.iter().map(|&w| w as i16).collect();
        let csr = Csr::new(&indptr, &indices, &d, 4, 4).unwrap();
        let mut t = vec![0i16; 4];
        let e = propagate(&[0, 4], &csr, &mut t).unwrap_err();
        assert_eq!(
            e,
            KernelError::IndexOutOfRange {
                arg: "spikes",
                position: 1,
                value: 4,
                bound: 4
            }
        );
        assert!(matches!(
            propagate(&[0], &csr, &mut [0i16; 3]),
            Err(KernelError::Length { arg: "target", .. })
        ));

        // A bad column in row 3, listed after a good row: nothing may be written.
        indices[5] = 4;
        let csr = Csr::new(&indptr, &indices, &d, 4, 4).unwrap();
        let e = propagate(&[0, 3], &csr, &mut t).unwrap_err();
        assert_eq!(
            e,
            KernelError::IndexOutOfRange {
                arg: "indices",
                position: 5,
                value: 4,
                bound: 4
            }
        );
        assert_eq!(t, vec![0; 4]);
        // Rows not listed are not looked at.
        assert_eq!(propagate(&[2], &csr, &mut t).unwrap(), 2);
        assert!(csr.validate().is_err());

        indices[5] = -1;
        let csr = Csr::new(&indptr, &indices, &d, 4, 4).unwrap();
        let e = propagate(&[3], &csr, &mut t).unwrap_err();
        assert_eq!(
            e,
            KernelError::IndexOutOfRange {
                arg: "indices",
                position: 5,
                value: -1,
                bound: 4
            }
        );
    }

    #[test]
    fn broken_indptr_is_rejected() {
        let indices = [0i32, 1, 2];
        let data = [1i16; 3];
        let decreasing = [0i32, 2, 1, 3];
        let csr = Csr::new(&decreasing, &indices, &data, 3, 3).unwrap();
        assert!(matches!(
            csr.validate(),
            Err(KernelError::InvalidCsr { arg: "indptr", .. })
        ));
        assert!(matches!(
            propagate(&[1], &csr, &mut [0i16; 3]),
            Err(KernelError::InvalidCsr { .. })
        ));
        assert!(propagate(&[0, 2], &csr, &mut [0i16; 3]).is_ok());

        // Past the end of `indices` (row 2), and starting below 0 (row 0): refused by the
        // full check and by a propagation that uses the row.
        for (indptr, row) in [([0i32, 1, 2, 4], 2), ([-1, 1, 2, 3], 0)] {
            let csr = Csr::new(&indptr, &indices, &data, 3, 3).unwrap();
            let invalid = |r| matches!(r, Err(KernelError::InvalidCsr { .. }));
            assert!(invalid(csr.validate().map(|_| 0)));
            assert!(invalid(propagate(&[row], &csr, &mut [0i16; 3])));
        }

        assert!(matches!(
            Csr::new(&[0i32, 1], &indices, &data, 3, 3),
            Err(KernelError::Length {
                arg: "indptr",
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            Csr::new(&[0i32, 1, 2, 3], &indices, &data[..2], 3, 3),
            Err(KernelError::Length { arg: "data", .. })
        ));
    }

    #[test]
    fn index_range_check_handles_sign_and_large_bounds() {
        assert_eq!(i32::first_out_of_range(&[0, 5, -1], usize::MAX), Some(2));
        assert_eq!(i32::first_out_of_range(&[0, i32::MAX], usize::MAX), None);
        assert_eq!(i64::first_out_of_range(&[3, i64::MIN], 10), Some(1));
        assert_eq!(i64::first_out_of_range(&[9, 10], 10), Some(1));
        assert_eq!(i32::first_out_of_range(&[], 0), None);
    }
}
