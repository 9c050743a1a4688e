//! A region an engine runs, cut into shards, and the step of one shard.
//!
//! A shard is a range of a region's neurons that does the whole step for its neurons:
//! it clears their input, adds the drive of its blocks, adds the synapses of every
//! incoming projection that land in it (each row cut at the shard bounds), and steps
//! the model. Each neuron receives its inputs in the same order however the region is
//! cut, and the drive is drawn per block of [`DRIVE_BLOCK`] neurons (shard bounds fall
//! on block bounds), so the spikes do not depend on the number of shards.

use super::connect::{Part, RowCuts, Synapses};
use super::neurons::{cut, Input, Neurons, Shard};
use super::rng::{Stream, DRIVE_BLOCK};
use super::spec::DriveSpec;

/// The spikes of one region over the last `depth` steps: step `s` in slot `s % depth`.
#[derive(Clone, Debug)]
pub(super) struct History {
    slots: Vec<Vec<u32>>,
    stamps: Vec<Option<u64>>,
}

impl History {
    pub(super) fn new(depth: usize) -> Self {
        Self {
            slots: vec![Vec::new(); depth],
            stamps: vec![None; depth],
        }
    }

    pub(super) fn get(&self, step: u64) -> Option<&[u32]> {
        let k = (step % self.slots.len() as u64) as usize;
        (self.stamps[k] == Some(step)).then(|| &self.slots[k][..])
    }

    pub(super) fn store(&mut self, step: u64, spikes: &[u32]) {
        let k = (step % self.slots.len() as u64) as usize;
        self.slots[k].clear();
        self.slots[k].extend_from_slice(spikes);
        self.stamps[k] = Some(step);
    }
}

/// A projection into a local region.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) source: usize,
    pub(super) delay: u64,
    pub(super) synapses: Synapses,
    /// Where its rows cross the target's shard bounds.
    pub(super) cuts: RowCuts,
}

/// The bounds of `shards` shards of `n` neurons (fewer if `n` has fewer drive blocks):
/// from 0 to `n`, on block bounds, as even as blocks allow.
pub(super) fn shard_bounds(n: usize, shards: usize) -> Vec<usize> {
    let blocks = n.div_ceil(DRIVE_BLOCK).max(1);
    let shards = shards.clamp(1, blocks);
    (0..=shards)
        .map(|k| (blocks * k / shards * DRIVE_BLOCK).min(n))
        .collect()
}

/// A region this engine runs.
#[derive(Debug)]
pub(super) struct LocalRegion {
    pub(super) index: usize,
    pub(super) drive: DriveSpec,
    pub(super) neurons: Neurons,
    pub(super) incoming: Vec<Incoming>,
    /// Shard bounds, from 0 to n.
    pub(super) bounds: Vec<usize>,
    /// The spikes of the last step at the front (`count` of them); room for all.
    pub(super) out: Vec<u32>,
    pub(super) count: usize,
    pub(super) events: u64,
}

impl LocalRegion {
    /// The step of each shard, to compute (in any order, in parallel) and then
    /// [`gather`](Self::gather).
    pub(super) fn shards(&mut self) -> impl Iterator<Item = ShardStep<'_>> {
        let Self {
            index,
            drive,
            neurons,
            incoming,
            bounds,
            out,
            ..
        } = self;
        let (bounds, incoming): (&[usize], &[Incoming]) = (bounds, incoming);
        let parts = bounds.len() - 1;
        neurons
            .shards(bounds)
            .into_iter()
            .zip(cut(out, bounds))
            .enumerate()
            .map(move |(k, (neurons, out))| ShardStep {
                region: *index,
                drive: *drive,
                incoming,
                k,
                parts,
                base: bounds[k],
                neurons,
                out,
                count: 0,
                events: 0,
            })
    }

    /// Moves the shards' spikes (each at its shard's start in `out`, `counts` of them)
    /// together at the front of `out`, in order; adds the shards' events.
    pub(super) fn gather(&mut self, done: impl Iterator<Item = (usize, u64)>) {
        let mut total = 0;
        for (k, (count, events)) in done.enumerate() {
            let start = self.bounds[k];
            self.out.copy_within(start..start + count, total);
            total += count;
            self.events += events;
        }
        self.count = total;
    }
}

/// One shard's step, with what it borrows from its region.
pub(super) struct ShardStep<'a> {
    region: usize,
    drive: DriveSpec,
    incoming: &'a [Incoming],
    k: usize,
    parts: usize,
    base: usize,
    neurons: Shard<'a>,
    out: &'a mut [u32],
    /// Spikes after [`compute`](Self::compute).
    pub(super) count: usize,
    /// Synaptic events after [`compute`](Self::compute).
    pub(super) events: u64,
}

impl ShardStep<'_> {
    /// Step `t`: the drive of this shard's blocks, the projections in order, then the
    /// model. The spikes (region indices) go to the front of the shard's `out`.
    pub(super) fn compute(&mut self, t: u64, seed: u64, history: &[Option<History>]) {
        let (rate, weight) = (self.drive.rate, self.drive.weight);
        let first_block = self.base / DRIVE_BLOCK;
        let inputs = self
            .incoming
            .iter()
            .filter(|inc| t >= inc.delay)
            .map(|inc| {
                let spikes = history[inc.source]
                    .as_ref()
                    .and_then(|h| h.get(t - inc.delay))
                    .expect("checked before the step");
                let part = Part {
                    k: self.k,
                    parts: self.parts,
                    base: self.base,
                    cuts: &inc.cuts,
                };
                (&inc.synapses, part, spikes)
            });
        let mut events = 0;
        let region = self.region as u64;
        match self.neurons.cleared_input() {
            Input::I32(x) => {
                let w = weight as i32;
                add_drive(x, (seed, region, first_block, t), rate, |x| {
                    *x = x.saturating_add(w)
                });
                for (syn, part, spikes) in inputs {
                    events += syn.propagate_i32(spikes, part, x);
                }
            }
            Input::F32(x) => {
                let w = weight as f32;
                add_drive(x, (seed, region, first_block, t), rate, |x| *x += w);
                for (syn, part, spikes) in inputs {
                    events += syn.propagate_f32(spikes, part, x);
                }
            }
        }
        self.events = events;
        self.count = self.neurons.step(self.out);
        let base = self.base as u32;
        for s in &mut self.out[..self.count] {
            *s += base;
        }
    }
}

/// Applies `kick` to the input `x[k]` of every neuron the drive kicks at step `t`: `x`
/// starts at block `first_block` of `region`, and each block's kicks come from its own
/// stream ([`Stream::drive`]).
fn add_drive<T>(
    x: &mut [T],
    (seed, region, first_block, t): (u64, u64, usize, u64),
    rate: f64,
    kick: impl Fn(&mut T),
) {
    for (b, x) in (first_block..).zip(x.chunks_mut(DRIVE_BLOCK)) {
        Stream::drive(seed, region, b as u64, t)
            .bernoulli_positions(x.len() as u64, rate, |k| kick(&mut x[k as usize]));
    }
}
