//! The engine's error type.

use thiserror::Error;

/// Why the engine refused a network, an input or a call. Messages name the region,
/// projection or argument at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// The network description is inconsistent (a bad parameter, an unknown region...).
    #[error("{0}")]
    Network(String),
    /// An argument of a call is wrong (an unknown region, spikes out of range...).
    #[error("{0}")]
    Argument(String),
    /// A step needs spikes of a region run elsewhere that have not been given.
    #[error("step {step} needs the spikes of region {region:?} at step {source_step}, which have not arrived")]
    MissingSpikes {
        /// The region whose spikes are missing.
        region: String,
        /// The step of those spikes.
        source_step: u64,
        /// The step being computed.
        step: u64,
    },
    /// A peer did not deliver spikes in time; the message names the node and its regions.
    #[error("{0}")]
    Timeout(String),
}

impl EngineError {
    pub(crate) fn network(msg: impl Into<String>) -> Self {
        Self::Network(msg.into())
    }
}
