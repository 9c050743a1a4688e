//! DH mode's key management: X25519 exchanges (the guide's manual ones, or automatic and
//! authenticated ones), the sender keys handed over the resulting pairwise channels,
//! rekeying and PSK revocation.
//!
//! Built as boringtun and snow build WireGuard and Noise: a sans-IO state machine
//! (`machine`, with `initiator` and `responder`) that takes messages, commands and time
//! and returns actions, tested without a network (`tests`), and a thin driver (`driver`)
//! that does the Zenoh I/O on one thread.
//!
//! - `message`: the wire format, each message's encoder next to its parser
//! - `auth`: the MAC that authenticates an INIT before anything is spent on it
//! - `channel`: pairwise keys and the previous/current/next slots per peer
//! - `timers`: every timing constant, a back-off and a token bucket over injected time
//! - `inbox`: incoming messages queued per claimed sender and served in turn

pub mod auth;
pub mod channel;
#[cfg(feature = "transport")]
pub mod driver;
pub mod inbox;
mod initiator;
pub mod machine;
pub mod message;
mod responder;
pub mod timers;

#[cfg(test)]
mod tests;

#[cfg(feature = "transport")]
pub use driver::KeyManager;
pub use machine::{Action, Machine, Settings};
pub use timers::Now;
