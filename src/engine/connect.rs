//! The synapses of a projection, built from its rule and weights, and propagation.
//!
//! Row `i` holds the synapses of source neuron `i` (targets sorted for the random rules,
//! as given for explicit arrays). The synapses of row `i` are drawn from the stream
//! keyed by `(seed, projection, i)`, so rows are built in parallel and every node that
//! runs the target region builds the same matrix. Storage is a `u32` target and an
//! `i16` (integer targets) or `f32` weight per synapse, and one `usize` per row.

use rayon::prelude::*;

use super::error::EngineError;
use super::rng::{Domain, Stream};
use super::spec::{ProjectionSpec, RuleSpec, WeightSpec};

/// The weights of a projection, in the target model's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// Onto integer LIF targets.
    I16(Vec<i16>),
    /// Onto float targets.
    F32(Vec<f32>),
}

/// A built projection: CSR rows of synapses.
#[derive(Clone, Debug, PartialEq)]
pub struct Synapses {
    /// Row offsets, `n_pre + 1`.
    pub indptr: Vec<usize>,
    /// The row length when every row has the same (fixed fan-out): rows are then found
    /// without reading `indptr`.
    pub fixed_row: Option<usize>,
    /// Target of each synapse.
    pub indices: Vec<u32>,
    /// Weight of each synapse.
    pub weights: Weights,
}

/// A weight type: how a spec's value or draw becomes one.
trait Weight: Copy + Send + Sync + Default {
    fn from_f64(x: f64) -> Self;
    fn uniform(low: f64, high: f64, s: &mut Stream) -> Self;
}

impl Weight for i16 {
    fn from_f64(x: f64) -> Self {
        // Validated: an integer in range.
        x as i16
    }
    fn uniform(low: f64, high: f64, s: &mut Stream) -> Self {
        let (lo, hi) = (low as i64, high as i64);
        (lo + s.below((hi - lo + 1) as u64) as i64) as i16
    }
}

impl Weight for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn uniform(low: f64, high: f64, s: &mut Stream) -> Self {
        (low + (high - low) * s.next_f64()) as f32
    }
}

/// How many spikes ahead [`Synapses::prefetch_ahead`] asks for rows.
const AHEAD: usize = 8;

/// Rows below this are built serially: a parallel build gains nothing on small ones.
const PARALLEL_ROWS: usize = 4096;

impl Synapses {
    /// Builds `p`, projection number `index` of a network with `seed`, from `n_pre` onto
    /// `n_post` neurons; `integer` chooses `i16` weights. The spec has been validated.
    pub fn build(
        seed: u64,
        index: usize,
        p: &ProjectionSpec,
        n_pre: usize,
        n_post: usize,
        integer: bool,
    ) -> Result<Self, EngineError> {
        let (rule, weights) = (&p.rule, &p.weights);
        let what = &format!("projection {}->{}", p.source, p.target);
        let (indptr, indices, w) = if integer {
            let (p, i, w) = build_typed::<i16>(seed, index, rule, weights, n_pre, n_post, what)?;
            (p, i, Weights::I16(w))
        } else {
            let (p, i, w) = build_typed::<f32>(seed, index, rule, weights, n_pre, n_post, what)?;
            (p, i, Weights::F32(w))
        };
        let fixed_row = match p.rule {
            RuleSpec::FixedFanOut { fan_out } if n_post > 0 => Some(fan_out),
            _ => None,
        };
        Ok(Self {
            indptr,
            fixed_row,
            indices,
            weights: w,
        })
    }

    /// The storage range of row `s`.
    #[inline(always)]
    fn row(&self, s: usize) -> (usize, usize) {
        match self.fixed_row {
            Some(k) => (s * k, s * k + k),
            None => (self.indptr[s], self.indptr[s + 1]),
        }
    }

    /// Number of synapses.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether there is no synapse.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> usize {
        let w = match &self.weights {
            Weights::I16(w) => w.len() * 2,
            Weights::F32(w) => w.len() * 4,
        };
        self.indptr.len() * std::mem::size_of::<usize>() + self.indices.len() * 4 + w
    }

    /// Where the rows cross the inner `bounds` of the target region's parts (`bounds`
    /// runs from 0 to `n_post`, increasing), for [`Part`]s to propagate apart.
    pub fn row_cuts(&self, bounds: &[usize]) -> RowCuts {
        let inner = &bounds[1..bounds.len() - 1];
        if inner.is_empty() {
            return RowCuts::Sorted(Vec::new());
        }
        let n_pre = self.indptr.len().saturating_sub(1);
        let rows = || (0..n_pre).map(|s| self.row(s));
        if !rows().all(|(lo, hi)| self.indices[lo..hi].is_sorted()) {
            return RowCuts::Unsorted;
        }
        let mut at = vec![0u32; n_pre * inner.len()];
        at.par_chunks_mut(inner.len())
            .enumerate()
            .for_each(|(s, cuts)| {
                let (lo, hi) = self.row(s);
                let row = &self.indices[lo..hi];
                for (cut, &b) in cuts.iter_mut().zip(inner) {
                    *cut = row.partition_point(|&c| (c as usize) < b) as u32;
                }
            });
        RowCuts::Sorted(at)
    }

    /// Adds the rows of `spikes` (each below `n_pre`) into `target`, the targets of
    /// `part`, in the order given; returns the number of synaptic events. Integer LIF
    /// targets add i16 weights with saturation.
    pub fn propagate_i32(&self, spikes: &[u32], part: Part<'_>, target: &mut [i32]) -> u64 {
        let Weights::I16(w) = &self.weights else {
            unreachable!("integer targets have i16 weights")
        };
        self.propagate(spikes, part, w, target, |t, x| {
            *t = t.saturating_add(i32::from(x))
        })
    }

    /// [`propagate_i32`](Self::propagate_i32) for float targets: plain `f32` adds, in
    /// the order of `spikes`, then of the row.
    pub fn propagate_f32(&self, spikes: &[u32], part: Part<'_>, target: &mut [f32]) -> u64 {
        let Weights::F32(w) = &self.weights else {
            unreachable!("float targets have f32 weights")
        };
        self.propagate(spikes, part, w, target, |t, x| *t += x)
    }

    /// The storage range of the synapses of row `s` that land in `part`, and whether
    /// the range must still be filtered by target (rows not sorted).
    #[inline(always)]
    fn segment(&self, s: usize, part: &Part<'_>) -> (usize, usize, bool) {
        let (lo, hi) = self.row(s);
        match part.cuts {
            RowCuts::Unsorted => (lo, hi, true),
            RowCuts::Sorted(_) if part.parts == 1 => (lo, hi, false),
            RowCuts::Sorted(at) => {
                let (k, inner) = (part.k, part.parts - 1);
                let a = if k == 0 {
                    lo
                } else {
                    lo + at[s * inner + k - 1] as usize
                };
                let b = if k == inner {
                    hi
                } else {
                    lo + at[s * inner + k] as usize
                };
                (a, b, false)
            }
        }
    }

    /// Hints the cache lines of the segment of `spikes[j + AHEAD]` (and the `indptr`
    /// and cut entries of `spikes[j + 2 * AHEAD]`, which that needs) for loading, so
    /// the cache misses of coming rows overlap the adds of this one. Rows of sorted
    /// spikes are far apart in memory; without this every row waits for its own misses
    /// in turn.
    #[inline(always)]
    fn prefetch_ahead<W>(&self, spikes: &[u32], j: usize, part: &Part<'_>, w: &[W]) {
        if let Some(&a) = spikes.get(j + AHEAD) {
            let (lo, hi, _) = self.segment(a as usize, part);
            crate::cpu::prefetch_slice(&self.indices[lo..hi]);
            crate::cpu::prefetch_slice(&w[lo..hi]);
        }
        if let Some(&b) = spikes.get(j + 2 * AHEAD) {
            if self.fixed_row.is_none() {
                crate::cpu::prefetch(&self.indptr[b as usize]);
            }
            if let RowCuts::Sorted(at) = part.cuts {
                if let Some(cut) = at.get(b as usize * (part.parts - 1)) {
                    crate::cpu::prefetch(cut);
                }
            }
        }
    }

    /// The loop both share: rows in the order of `spikes`, each row in its order, the
    /// next rows asked for early (`prefetch_ahead`).
    #[inline(always)]
    fn propagate<W: Copy, T>(
        &self,
        spikes: &[u32],
        part: Part<'_>,
        w: &[W],
        target: &mut [T],
        add: impl Fn(&mut T, W),
    ) -> u64 {
        let mut events = 0;
        let base = part.base;
        for (j, &s) in spikes.iter().enumerate() {
            self.prefetch_ahead(spikes, j, &part, w);
            let (lo, hi, filter) = self.segment(s as usize, &part);
            let synapses = self.indices[lo..hi].iter().zip(&w[lo..hi]);
            if filter {
                for (&c, &x) in synapses {
                    if let Some(t) = target.get_mut((c as usize).wrapping_sub(base)) {
                        add(t, x);
                        events += 1;
                    }
                }
            } else {
                events += (hi - lo) as u64;
                for (&c, &x) in synapses {
                    add(&mut target[c as usize - base], x);
                }
            }
        }
        events
    }
}

/// Where each row of a projection crosses the bounds of its target region's parts.
#[derive(Clone, Debug, PartialEq)]
pub enum RowCuts {
    /// Every row is sorted by target: for row `s`, entries `s * inner..(s + 1) * inner`
    /// are the offsets from the row's start where it reaches each inner bound (none for
    /// a region in one part).
    Sorted(Vec<u32>),
    /// Some row is not sorted (explicit arrays): each part scans whole rows and keeps
    /// the synapses onto its own targets.
    Unsorted,
}

impl RowCuts {
    /// Bytes of storage.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Sorted(at) => at.len() * 4,
            Self::Unsorted => 0,
        }
    }
}

/// Part `k` of `parts` of a target region: the neurons from `base` on, whose input is
/// the `target` slice propagation adds into.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// Which part.
    pub k: usize,
    /// Of how many.
    pub parts: usize,
    /// The first neuron of the part.
    pub base: usize,
    /// The projection's cuts for these parts.
    pub cuts: &'a RowCuts,
}

impl<'a> Part<'a> {
    /// The whole target region as one part (`cuts` built for one part).
    pub fn whole(cuts: &'a RowCuts) -> Self {
        Self {
            k: 0,
            parts: 1,
            base: 0,
            cuts,
        }
    }
}

type Built<W> = (Vec<usize>, Vec<u32>, Vec<W>);

fn build_typed<W: Weight>(
    seed: u64,
    index: usize,
    rule: &RuleSpec,
    weights: &WeightSpec,
    n_pre: usize,
    n_post: usize,
    what: &str,
) -> Result<Built<W>, EngineError> {
    let stream = |row: usize| Stream::new(seed, Domain::Connect, index as u64, row as u64);
    let draw_weights = |s: &mut Stream, out: &mut [W]| match weights {
        WeightSpec::Constant { value } => out.fill(W::from_f64(*value)),
        WeightSpec::Uniform { low, high } => {
            out.iter_mut().for_each(|w| *w = W::uniform(*low, *high, s))
        }
        // Filled after the rows are known.
        WeightSpec::Array { .. } => {}
    };
    let (indptr, indices, mut w) = match rule {
        RuleSpec::FixedFanOut { fan_out } => {
            let k = *fan_out;
            let nnz = n_pre * k;
            let mut indices = vec![0u32; nnz];
            let mut w = vec![W::default(); nnz];
            let fill_row = |(row, (cols, ws)): (usize, (&mut [u32], &mut [W]))| {
                let mut s = stream(row);
                cols.iter_mut()
                    .for_each(|c| *c = s.below(n_post as u64) as u32);
                cols.sort_unstable();
                draw_weights(&mut s, ws);
            };
            if k > 0 && n_post > 0 {
                if n_pre >= PARALLEL_ROWS {
                    indices
                        .par_chunks_mut(k)
                        .zip(w.par_chunks_mut(k))
                        .enumerate()
                        .for_each(fill_row);
                } else {
                    indices
                        .chunks_mut(k)
                        .zip(w.chunks_mut(k))
                        .enumerate()
                        .for_each(fill_row);
                }
            }
            let indptr = if n_post > 0 {
                (0..=n_pre).map(|i| i * k).collect()
            } else {
                vec![0; n_pre + 1]
            };
            if n_post == 0 {
                indices.clear();
                w.clear();
            }
            (indptr, indices, w)
        }
        RuleSpec::FixedProbability { p } => {
            let row = |i: usize| {
                let mut s = stream(i);
                let mut cols = Vec::new();
                s.bernoulli_positions(n_post as u64, *p, |c| cols.push(c as u32));
                let mut ws = vec![W::default(); cols.len()];
                draw_weights(&mut s, &mut ws);
                (cols, ws)
            };
            let rows: Vec<(Vec<u32>, Vec<W>)> = if n_pre >= PARALLEL_ROWS {
                (0..n_pre).into_par_iter().map(row).collect()
            } else {
                (0..n_pre).map(row).collect()
            };
            let mut indptr = Vec::with_capacity(n_pre + 1);
            indptr.push(0);
            let nnz = rows.iter().map(|r| r.0.len()).sum();
            let (mut indices, mut w) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
            for (c, ws) in rows {
                indices.extend_from_slice(&c);
                w.extend_from_slice(&ws);
                indptr.push(indices.len());
            }
            (indptr, indices, w)
        }
        RuleSpec::Csr { indptr, indices } => {
            let mut w = vec![W::default(); indices.len()];
            for row in 0..n_pre {
                let (lo, hi) = (indptr[row] as usize, indptr[row + 1] as usize);
                draw_weights(&mut stream(row), &mut w[lo..hi]);
            }
            (
                indptr.iter().map(|&x| x as usize).collect(),
                indices.clone(),
                w,
            )
        }
    };
    if let WeightSpec::Array { values } = weights {
        if values.len() != indices.len() {
            return Err(EngineError::network(format!(
                "{what}: weights.values has {} entries, but the rule made {} synapses",
                values.len(),
                indices.len()
            )));
        }
        w.iter_mut()
            .zip(values)
            .for_each(|(w, &x)| *w = W::from_f64(x));
    }
    Ok((indptr, indices, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rule: RuleSpec, weights: WeightSpec) -> ProjectionSpec {
        ProjectionSpec {
            source: "a".into(),
            target: "b".into(),
            rule,
            weights,
            delay: 1,
        }
    }

    fn build(rule: RuleSpec, weights: WeightSpec, integer: bool) -> Synapses {
        Synapses::build(5, 2, &spec(rule, weights), 5000, 300, integer).unwrap()
    }

    #[test]
    fn fixed_fan_out_rows_are_sorted_in_range_and_reproducible() {
        let rule = RuleSpec::FixedFanOut { fan_out: 7 };
        let w = WeightSpec::Uniform {
            low: 20.0,
            high: 25.0,
        };
        let s = build(rule.clone(), w.clone(), true);
        assert_eq!(s.len(), 35_000);
        assert_eq!(s.indptr[5000], 35_000);
        for r in s.indices.chunks(7) {
            assert!(r.windows(2).all(|p| p[0] <= p[1]) && r.iter().all(|&c| c < 300));
        }
        let Weights::I16(ws) = &s.weights else {
            panic!()
        };
        assert!(ws.iter().all(|&x| (20..=25).contains(&x)));
        for v in 20..=25 {
            assert!(ws.contains(&v), "inclusive bounds: {v} never drawn");
        }
        assert_eq!(s, build(rule.clone(), w.clone(), true));
        // Another projection index draws other synapses.
        let other = Synapses::build(5, 3, &spec(rule.clone(), w.clone()), 5000, 300, true).unwrap();
        assert_ne!(s.indices, other.indices);
        // Built serially (few rows) or in parallel, a row is the same.
        let small = Synapses::build(5, 2, &spec(rule, w), 10, 300, true).unwrap();
        assert_eq!(small.indices[..], s.indices[..70]);
    }

    #[test]
    fn fixed_probability_density_and_float_weights() {
        let s = build(
            RuleSpec::FixedProbability { p: 0.1 },
            WeightSpec::Uniform {
                low: -1.0,
                high: 2.0,
            },
            false,
        );
        let mean = 5000.0 * 300.0 * 0.1;
        let sd = (mean * 0.9f64).sqrt();
        assert!((s.len() as f64 - mean).abs() < 5.0 * sd);
        let Weights::F32(ws) = &s.weights else {
            panic!()
        };
        assert!(ws.iter().all(|&x| (-1.0..2.0).contains(&x)));
        for r in s.indptr.windows(2) {
            let row = &s.indices[r[0]..r[1]];
            assert!(row.windows(2).all(|p| p[0] < p[1]), "no multapses");
        }
    }

    #[test]
    fn explicit_arrays_and_weight_arrays() {
        let rule = RuleSpec::Csr {
            indptr: vec![0, 2, 2, 3],
            indices: vec![1, 0, 2],
        };
        let values = vec![1.0, -2.0, 3.0];
        let p = spec(rule.clone(), WeightSpec::Array { values });
        let s = Synapses::build(0, 0, &p, 3, 3, true).unwrap();
        assert_eq!(s.indptr, [0, 2, 2, 3]);
        assert_eq!(s.weights, Weights::I16(vec![1, -2, 3]));
        let mut t = vec![0i32; 3];
        assert_eq!(
            s.propagate_i32(&[0, 2], Part::whole(&RowCuts::Sorted(Vec::new())), &mut t),
            3
        );
        assert_eq!(t, [-2, 1, 3]);
        let p = spec(rule, WeightSpec::Array { values: vec![1.0] });
        let e = Synapses::build(0, 0, &p, 3, 3, false).unwrap_err();
        assert!(
            e.to_string().contains("a->b: weights.values has 1 entries"),
            "{e}"
        );
    }

    #[test]
    fn integer_accumulation_saturates() {
        let s = Synapses {
            indptr: vec![0, 1],
            fixed_row: None,
            indices: vec![0],
            weights: Weights::I16(vec![i16::MAX]),
        };
        let mut t = vec![i32::MAX - 1];
        s.propagate_i32(&[0], Part::whole(&RowCuts::Sorted(Vec::new())), &mut t);
        assert_eq!(t, [i32::MAX]);
    }
}
