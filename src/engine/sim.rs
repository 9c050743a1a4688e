//! The [`Engine`]: the regions of a network this process runs, stepped in Rust.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::connect::Synapses;
use super::error::EngineError;
use super::neurons::Neurons;
use super::record::{Probe, Recording, SpikeRecord};
use super::region::{shard_bounds, History, Incoming, LocalRegion};
use super::spec::NetworkSpec;

/// Local regions step in parallel from this many neurons in all, cut into shards when
/// there are fewer regions than rayon has threads: below it a step takes a few
/// microseconds, about what waking a second thread costs. (Cutting regions further, to
/// balance 3 regions over 2 threads for example, measured slower: every shard reads
/// every spiking row.)
pub const PARALLEL_MIN_NEURONS: usize = 1 << 16;

/// Counters of what an engine did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Steps computed.
    pub steps: u64,
    /// Spikes of the local regions.
    pub spikes: u64,
    /// Synaptic events (one weight added) into the local regions.
    pub events: u64,
    /// Neuron updates (neurons times steps).
    pub updates: u64,
}

/// Some or all regions of a network, with their incoming projections built, stepped
/// together. Spikes of regions run elsewhere are handed in with
/// [`set_remote`](Self::set_remote) before the steps that need them.
#[derive(Debug)]
pub struct Engine {
    spec: NetworkSpec,
    regions: Vec<LocalRegion>,
    history: Vec<Option<History>>,
    depth: u64,
    step: u64,
    /// Whether shards step on rayon's pool.
    pub(super) parallel: bool,
    recording: Option<Recording>,
    probe_regions: Vec<usize>,
    stats: RunStats,
}

impl Engine {
    /// Builds the regions named in `local` (all of them for `None`) with their incoming
    /// projections.
    pub fn new(spec: NetworkSpec, local: Option<&[String]>) -> Result<Self, EngineError> {
        Self::build(spec, local, None)
    }

    /// [`new`](Self::new) with each region cut into `shards` shards (fewer where a
    /// region has fewer drive blocks); they step in parallel when there are several.
    /// The spikes are the same for any number.
    pub fn with_shards(
        spec: NetworkSpec,
        local: Option<&[String]>,
        shards: usize,
    ) -> Result<Self, EngineError> {
        Self::build(spec, local, Some(shards))
    }

    /// Without `shards`: regions are cut when the local ones hold
    /// [`PARALLEL_MIN_NEURONS`] in all and are fewer than rayon's threads.
    fn build(
        spec: NetworkSpec,
        local: Option<&[String]>,
        shards: Option<usize>,
    ) -> Result<Self, EngineError> {
        spec.validate()?;
        let mut is_local = vec![local.is_none(); spec.regions.len()];
        for name in local.unwrap_or_default() {
            let i = spec.region_index(name).ok_or_else(|| {
                EngineError::Argument(format!("local: no region {name:?} in this network"))
            })?;
            is_local[i] = true;
        }
        let (count, total) = spec
            .regions
            .iter()
            .zip(&is_local)
            .filter(|(_, &here)| here)
            .fold((0, 0), |(k, n), (r, _)| (k + 1, n + r.n));
        if count == 0 {
            return Err(EngineError::Argument("local: no region to run".into()));
        }
        let large = total >= PARALLEL_MIN_NEURONS;
        let shards = shards.unwrap_or(if large {
            rayon::current_num_threads().div_ceil(count)
        } else {
            1
        });
        let depth = u64::from(spec.max_delay());
        let mut history: Vec<Option<History>> = vec![None; spec.regions.len()];
        let mut regions = Vec::new();
        for (index, r) in spec.regions.iter().enumerate() {
            if !is_local[index] {
                continue;
            }
            history[index] = Some(History::new(depth as usize));
            let bounds = shard_bounds(r.n, shards);
            let mut incoming = Vec::new();
            for (pi, p) in spec.projections.iter().enumerate() {
                if p.target != r.name {
                    continue;
                }
                let source = spec.region_index(&p.source).expect("validated");
                let n_pre = spec.regions[source].n;
                let integer = r.model.is_integer();
                let synapses = Synapses::build(spec.seed, pi, p, n_pre, r.n, integer)?;
                history[source].get_or_insert_with(|| History::new(depth as usize));
                incoming.push(Incoming {
                    source,
                    delay: u64::from(p.delay),
                    cuts: synapses.row_cuts(&bounds),
                    synapses,
                });
            }
            regions.push(LocalRegion {
                index,
                drive: r.drive,
                neurons: Neurons::new(&r.model, r.n),
                incoming,
                bounds,
                out: vec![0; r.n],
                count: 0,
                events: 0,
            });
        }
        let tasks: usize = regions.iter().map(|r| r.bounds.len() - 1).sum();
        let parallel = tasks > 1 && large;
        Ok(Self {
            spec,
            regions,
            history,
            depth,
            step: 0,
            parallel,
            recording: None,
            probe_regions: Vec::new(),
            stats: RunStats::default(),
        })
    }

    /// The network.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The next step to compute (the number computed so far).
    pub fn current_step(&self) -> u64 {
        self.step
    }

    /// The names of the local regions, in network order.
    pub fn local_regions(&self) -> Vec<&str> {
        self.regions
            .iter()
            .map(|r| self.spec.regions[r.index].name.as_str())
            .collect()
    }

    /// Counters since the engine was built.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// Number of synapses built (the projections into local regions).
    pub fn synapses(&self) -> usize {
        self.regions
            .iter()
            .flat_map(|r| &r.incoming)
            .map(|i| i.synapses.len())
            .sum()
    }

    /// Bytes held by the synapses and by the neuron state.
    pub fn bytes(&self) -> (usize, usize) {
        let syn = self
            .regions
            .iter()
            .flat_map(|r| &r.incoming)
            .map(|i| i.synapses.bytes() + i.cuts.bytes())
            .sum();
        let state = self
            .regions
            .iter()
            .map(|r| r.neurons.bytes() + r.out.len() * 4)
            .sum();
        (syn, state)
    }

    /// Starts recording spikes (and the probes) from the next step on.
    pub fn start_recording(&mut self) {
        let spikes = self
            .regions
            .iter()
            .map(|r| (self.spec.regions[r.index].name.clone(), SpikeRecord::new()))
            .collect();
        let probes = self
            .recording
            .take()
            .map(|r| r.probes)
            .unwrap_or_default()
            .into_iter()
            .map(|p| Probe {
                values: Vec::new(),
                ..p
            })
            .collect();
        self.recording = Some(Recording {
            first_step: self.step,
            spikes,
            probes,
        });
    }

    /// Watches the potentials of `neurons` of local region `region` after every step
    /// (recording is started if it was not).
    pub fn add_probe(&mut self, region: &str, neurons: Vec<u32>) -> Result<(), EngineError> {
        let pos = self
            .regions
            .iter()
            .position(|r| self.spec.regions[r.index].name == region)
            .ok_or_else(|| {
                EngineError::Argument(format!("probe: {region:?} is not a region of this node"))
            })?;
        let n = self.regions[pos].neurons.len();
        if let Some(&bad) = neurons.iter().find(|&&i| i as usize >= n) {
            return Err(EngineError::Argument(format!(
                "probe: neuron {bad} is not below region {region:?}'s n = {n}"
            )));
        }
        if self.recording.is_none() {
            self.start_recording();
        }
        let rec = self.recording.as_mut().expect("started above");
        rec.probes.push(Probe {
            region: region.to_string(),
            neurons,
            values: Vec::new(),
        });
        self.probe_regions.push(pos);
        Ok(())
    }

    /// What has been recorded; recording goes on from the next step in a new record.
    pub fn take_recording(&mut self) -> Option<Recording> {
        let rec = self.recording.take()?;
        let next = Recording {
            first_step: self.step,
            spikes: rec
                .spikes
                .iter()
                .map(|(n, _)| (n.clone(), SpikeRecord::new()))
                .collect(),
            probes: rec
                .probes
                .iter()
                .map(|p| Probe {
                    values: Vec::new(),
                    ..p.clone()
                })
                .collect(),
        };
        self.recording = Some(next);
        Some(rec)
    }

    /// The remote spikes step `t` needs: `(region index, step)` pairs, each once, in
    /// increasing order.
    pub fn needed(&self, t: u64) -> Vec<(usize, u64)> {
        let mut need: Vec<(usize, u64)> = self
            .regions
            .iter()
            .flat_map(|r| &r.incoming)
            .filter(|inc| t >= inc.delay && !self.is_local(inc.source))
            .map(|inc| (inc.source, t - inc.delay))
            .collect();
        need.sort_unstable();
        need.dedup();
        need
    }

    fn is_local(&self, index: usize) -> bool {
        self.regions.iter().any(|r| r.index == index)
    }

    /// Hands in the spikes of remote region `region` (its index in the network) at
    /// `step`: sorted, distinct, below its `n`. Only steps that a coming step may need
    /// are kept: `step` must be before [`current_step`](Self::current_step) and at
    /// most the largest delay before it.
    pub fn set_remote(
        &mut self,
        region: usize,
        step: u64,
        spikes: &[u32],
    ) -> Result<(), EngineError> {
        let name = self
            .spec
            .regions
            .get(region)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        if self.is_local(region) || self.history.get(region).is_none_or(|h| h.is_none()) {
            return Err(EngineError::Argument(format!(
                "region {name:?} (index {region}) is not a remote input of this node"
            )));
        }
        if step >= self.step || self.step - step > self.depth {
            return Err(EngineError::Argument(format!(
                "spikes of region {name:?} for step {step}: only steps {}..{} can be set now",
                self.step.saturating_sub(self.depth),
                self.step
            )));
        }
        let n = self.spec.regions[region].n;
        if spikes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EngineError::Argument(format!(
                "spikes of region {name:?} for step {step}: not sorted and distinct"
            )));
        }
        if let Some(&last) = spikes.last() {
            if last as usize >= n {
                return Err(EngineError::Argument(format!(
                    "spikes of region {name:?} for step {step}: index {last} is not below n = {n}"
                )));
            }
        }
        self.history[region]
            .as_mut()
            .expect("checked above")
            .store(step, spikes);
        Ok(())
    }

    /// Whether the spikes of remote region `region` at `step` have been handed in (and
    /// are still kept).
    pub fn has_remote(&self, region: usize, step: u64) -> bool {
        self.history
            .get(region)
            .and_then(Option::as_ref)
            .is_some_and(|h| h.get(step).is_some())
    }

    /// The spikes of local region number `k` (in [`local_regions`](Self::local_regions)
    /// order) at the last step computed.
    pub fn last_spikes(&self, k: usize) -> &[u32] {
        let r = &self.regions[k];
        &r.out[..r.count]
    }

    /// Computes the next step of every local region.
    pub fn step(&mut self) -> Result<(), EngineError> {
        let t = self.step;
        for r in &self.regions {
            for inc in r.incoming.iter().filter(|inc| t >= inc.delay) {
                let s = t - inc.delay;
                let have = self.history[inc.source]
                    .as_ref()
                    .is_some_and(|h| h.get(s).is_some());
                if !have {
                    return Err(EngineError::MissingSpikes {
                        region: self.spec.regions[inc.source].name.clone(),
                        source_step: s,
                        step: t,
                    });
                }
            }
        }
        let (seed, history) = (self.spec.seed, &self.history);
        let mut shards: Vec<_> = self.regions.iter_mut().flat_map(|r| r.shards()).collect();
        if self.parallel {
            shards
                .par_iter_mut()
                .for_each(|s| s.compute(t, seed, history));
        } else {
            shards.iter_mut().for_each(|s| s.compute(t, seed, history));
        }
        let done: Vec<_> = shards.into_iter().map(|s| (s.count, s.events)).collect();
        let mut done = done.into_iter();
        for r in &mut self.regions {
            let parts = r.bounds.len() - 1;
            r.gather(done.by_ref().take(parts));
        }
        for (k, r) in self.regions.iter().enumerate() {
            let spikes = &r.out[..r.count];
            self.history[r.index]
                .as_mut()
                .expect("local regions keep a history")
                .store(t, spikes);
            self.stats.spikes += spikes.len() as u64;
            self.stats.updates += r.neurons.len() as u64;
            if let Some(rec) = &mut self.recording {
                rec.spikes[k].1.push(spikes);
            }
        }
        if let Some(rec) = &mut self.recording {
            for (probe, &pos) in rec.probes.iter_mut().zip(&self.probe_regions) {
                let neurons = &self.regions[pos].neurons;
                probe.values.extend(
                    probe
                        .neurons
                        .iter()
                        .map(|&i| neurons.potential(i as usize) as f32),
                );
            }
        }
        self.stats.events = self.regions.iter().map(|r| r.events).sum();
        self.stats.steps += 1;
        self.step += 1;
        Ok(())
    }

    /// Runs up to `steps` steps, returning early once `budget` has passed; returns the
    /// number of steps computed. A caller that must stay responsive (to a signal, a
    /// progress display) runs in such slices.
    pub fn run_for(&mut self, steps: u64, budget: Duration) -> Result<u64, EngineError> {
        let start = Instant::now();
        for k in 0..steps {
            if k > 0 && start.elapsed() >= budget {
                return Ok(k);
            }
            self.step()?;
        }
        Ok(steps)
    }

    /// Runs `steps` steps, calling `hook` about every `every` (and after the last step);
    /// a hook that returns `false` stops the run. Returns the steps computed.
    pub fn run(
        &mut self,
        steps: u64,
        every: Duration,
        mut hook: impl FnMut(&Engine) -> bool,
    ) -> Result<u64, EngineError> {
        let mut done = 0;
        while done < steps {
            done += self.run_for(steps - done, every)?;
            if !hook(self) {
                break;
            }
        }
        Ok(done)
    }
}
