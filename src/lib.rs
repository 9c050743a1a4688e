//! evospikenet: the secure communication layer of a distributed spiking brain simulation.
//!
//! The core (everything but `py`) is pure Rust and tested with `cargo test`; the `py`
//! module is the thin PyO3 binding layer, built only with the `python` feature.

pub mod codec;
#[cfg(feature = "transport")]
pub mod comm;
pub mod compress;
#[cfg(feature = "transport")]
pub mod config;
pub mod cpu;
pub mod crypto;
pub mod dh;
pub mod engine;
pub mod error;
pub mod kernels;
pub mod monitor;
#[cfg(feature = "transport")]
pub mod outbox;
pub mod secret_file;
pub mod senders;
#[cfg(feature = "transport")]
pub mod transport;
mod wire_enum;

#[cfg(feature = "python")]
mod py;
