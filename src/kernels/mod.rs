//! Vectorized spike-update kernels over slices.
//!
//! Every kernel is a plain function over slices: no Python, no allocation of state, no
//! hidden copies. The loops are written so that the compiler vectorizes them for the
//! baseline x86_64 target (SSE2): straight-line arithmetic per neuron and branch-free
//! selects for the reset, so a population update runs close to the memory bandwidth.
//!
//! - [`lif_int`]: the integer leaky integrate-and-fire neuron of EvoSpikeNet's
//!   `LIFNeuronLayer`, bit for bit.
//! - [`lif_float`]: a current-based LIF neuron with exact integration, as NEST's
//!   `iaf_psc_exp`.
//! - [`izhikevich`]: the Izhikevich (2003) neuron.
//! - [`synapses`]: event-driven propagation of spikes through a CSR weight matrix.
//! - [`spikes`]: conversions between the bool mask and the sorted `u32` index form.
//! - [`population`]: the driver that steps a population serially or on several threads
//!   and collects spikes in either form.
//!
//! Errors are reported as [`KernelError`], which names the offending argument. Inputs
//! are validated before any state is written, so a failed call leaves every array as it
//! was.
#![forbid(unsafe_code)]

mod error;
pub mod izhikevich;
pub mod lif_float;
pub mod lif_int;
mod param;
pub mod population;
pub mod spikes;
pub mod synapses;

pub use error::KernelError;
pub use param::Param;
pub use population::{
    default_threads, step_indices, step_indices_into, step_mask, Population, BLOCK,
    PARALLEL_MIN_LEN,
};
