//! The simulation engine: a network of regions and projections, stepped without Python.
//!
//! - [`spec`]: the network description (regions with a neuron model and a drive,
//!   projections with a connection rule, weights and a delay) and its validation;
//! - [`rng`]: the counter-based random streams every draw comes from;
//! - [`connect`]: building a projection's synapses and propagating spikes through them;
//! - [`neurons`]: the state of a region's neurons and the step of its model;
//! - `region`: a region an engine runs, cut into shards that step in parallel, and the
//!   step of one shard;
//! - [`sim`]: the [`Engine`]: some or all regions of a network, their delay rings, the
//!   step and the run loop;
//! - [`record`]: what a run keeps;
//! - [`wire`]: the compact encoding of a step's spikes on the wire;
//! - `exchange` (with the `transport` feature): a node's spike exchange with its peers
//!   over the communicator.
//!
//! Determinism: the drive of block `b` of region `r` at step `t` and the synapses of
//! projection `p` are drawn from streams keyed by `(seed, r, b, t)` and `(seed, p, source
//! neuron)`, every neuron receives its inputs in a fixed order (drive, then projections
//! in network order, each in increasing source-neuron order), and regions depend on each
//! other only through spikes at least one step old. So an engine that runs a subset of
//! the regions, and is given the other regions' spikes, computes exactly what the whole
//! network computes, however its regions are cut into shards.
//! The geometric skips of the drive use `f64::ln`: bit-identical runs assume every
//! node uses the same build of the library.

pub mod connect;
mod error;
#[cfg(feature = "transport")]
pub mod exchange;
pub mod neurons;
pub mod record;
mod region;
pub mod rng;
pub mod sim;
pub mod spec;
#[cfg(test)]
mod tests;
pub mod wire;

pub use error::EngineError;
pub use record::{Probe, Recording, SpikeRecord};
pub use sim::{Engine, RunStats};
pub use spec::NetworkSpec;
