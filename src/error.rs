//! The one error type of the core. The binding layer maps it to Python exceptions in one
//! place (`py::errors`).

use thiserror::Error;

/// Everything the core can fail with.
///
/// Messages never contain key material, nonces or payload bytes. Authentication failures
/// carry no detail on purpose: which check failed is of no use to a user and of use to
/// an attacker.
#[derive(Debug, Error)]
pub enum Error {
    /// A configuration value is malformed (bad PSK, bad endpoint, bad mode...).
    #[error("{0}")]
    Config(String),
    /// The caller passed a value the operation cannot take.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller passed a value of a type the operation cannot take.
    #[error("{0}")]
    InvalidType(String),
    /// A payload could not be encoded with the requested format.
    #[error("{0}")]
    Encode(String),
    /// A payload that authenticated could not be decoded (sender bug or version skew).
    #[error("{0}")]
    Decode(String),
    /// A message failed authentication or was malformed; deliberately detail-free.
    #[error("message authentication failed")]
    Authentication,
    /// An encrypted message reached a node that has no key configured.
    #[error("encrypted message received but no key is configured")]
    NoKey,
    /// A message sealed under DH keys by a sender (as it claims) with which this node
    /// has no session yet: its key exchange has not completed here.
    #[error("no session with {0:?} yet")]
    NoSession(String),
    /// A message authenticated but was a replay, too old, or from a retired session.
    #[error("message rejected as a replay")]
    Replay,
    /// A step of a DH key exchange failed (bad peer key, nothing pending, bad peer id).
    /// Counted and logged by the key manager before it is returned.
    #[error("{0}")]
    KeyExchange(String),
    /// A wait ran out of time: no valid reply to a query, no session with a peer.
    #[error("{0}")]
    Timeout(String),
    /// The service that answered a request reported that it failed to handle it.
    #[error("{0}")]
    Remote(String),
    /// The communicator (or handle) was closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// Zenoh reported an error.
    #[error("zenoh: {0}")]
    Transport(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(feature = "transport")]
impl From<zenoh::Error> for Error {
    fn from(e: zenoh::Error) -> Self {
        Error::Transport(e.to_string())
    }
}
