//! What a run keeps: each local region's spikes, and the potentials of chosen neurons.

/// The spikes of one region over a run, as one flat array: the spikes of step
/// `first_step + k` are `indices[offsets[k]..offsets[k + 1]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpikeRecord {
    /// Sorted spike indices of every step, one step after the other.
    pub indices: Vec<u32>,
    /// `steps + 1` offsets into `indices`.
    pub offsets: Vec<u64>,
}

impl SpikeRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self {
            indices: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Appends one step.
    pub fn push(&mut self, spikes: &[u32]) {
        self.indices.extend_from_slice(spikes);
        self.offsets.push(self.indices.len() as u64);
    }

    /// Number of steps recorded.
    pub fn steps(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The spikes of the `k`-th recorded step.
    pub fn step(&self, k: usize) -> &[u32] {
        &self.indices[self.offsets[k] as usize..self.offsets[k + 1] as usize]
    }
}

/// The potentials of some neurons of one region, after every step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    /// The region's name.
    pub region: String,
    /// The neurons watched.
    pub neurons: Vec<u32>,
    /// `values[k * neurons.len() + j]`: neuron `j` after the `k`-th recorded step.
    pub values: Vec<f32>,
}

/// Everything recorded since the last [`take`](super::Engine::take_recording).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording {
    /// The first step the record covers.
    pub first_step: u64,
    /// Per local region, in network order: its name and its spikes.
    pub spikes: Vec<(String, SpikeRecord)>,
    /// The probes, in the order they were added.
    pub probes: Vec<Probe>,
}
