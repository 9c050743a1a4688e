//! The order publications leave in, and the publications held back while a manual key
//! exchange waits for its peer.
//!
//! After `complete_key_exchange(peer)` this node seals with a DH sender key that `peer`
//! only learns once it has completed its side too (a person may still be pasting the
//! key there). A publication sent in between could not be opened by `peer`. So from a
//! manual completion until the peer confirms the session (it holds our key, we hold
//! its), publications are held here, in order, and sent once it does: the guide's
//! `complete_key_exchange(...)` followed by `publish(...)` delivers that first message.
//!
//! Holding is bounded: past `MAX_HELD` messages or `MAX_HELD_BYTES` bytes, `publish`
//! fails with an error that names the peers still awaited, instead of dropping.
//! Requests are never held (they time out and the caller retries).

use std::collections::VecDeque;

use parking_lot::{Mutex, MutexGuard};

use crate::crypto::envelope::Kind;
use crate::crypto::session::Sender;
use crate::error::{Error, Result};
use crate::monitor::{escape_for_log, Monitor, Stats, LOG_TARGET};
use crate::transport::Transport;

/// At most this many publications are held.
pub const MAX_HELD: usize = 4096;
/// And at most this many payload bytes.
pub const MAX_HELD_BYTES: usize = 64 << 20;

struct Held {
    key: String,
    topic: String,
    format: u8,
    payload: Vec<u8>,
}

#[derive(Default)]
pub struct State {
    /// Peers whose manual exchange this node completed and that have not confirmed it.
    awaiting: Vec<String>,
    held: VecDeque<Held>,
    bytes: usize,
}

/// Publications in sealing order, and those held for a manual exchange.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
}

/// The outbox locked for one publication: holding the lock from sealing to putting keeps
/// publications in counter order. Otherwise a thread descheduled between the two, while
/// others publish more than a replay window's worth, would have its message refused as
/// too old.
pub struct Turn<'a>(MutexGuard<'a, State>);

impl Outbox {
    pub fn turn(&self) -> Turn<'_> {
        Turn(self.state.lock())
    }

    /// Hold publications from now until `peer` confirms the session.
    pub fn await_peer(&self, peer: &str) {
        let mut s = self.state.lock();
        if !s.awaiting.iter().any(|p| p == peer) {
            s.awaiting.push(peer.to_owned());
        }
    }

    /// Whether any peer is awaited (cheap enough to ask after every key-exchange event).
    pub fn is_awaiting(&self) -> bool {
        !self.state.lock().awaiting.is_empty()
    }

    /// Forget the awaited peers that are `confirmed`; once none is left, seal and send
    /// every held publication in order. Returns how many were sent.
    pub fn confirm(&self, confirmed: impl Fn(&str) -> bool, outlet: &Outlet) -> usize {
        let mut s = self.state.lock();
        s.awaiting.retain(|p| !confirmed(p));
        if !s.awaiting.is_empty() {
            return 0;
        }
        let mut sent = 0;
        while let Some(h) = s.held.pop_front() {
            s.bytes -= h.payload.len();
            let put = outlet.seal_and_put(&h.key, &h.topic, h.format, h.payload.len(), |buf| {
                buf.extend_from_slice(&h.payload);
                Ok(())
            });
            match put {
                Ok(()) => sent += 1,
                Err(e) => log::warn!(
                    target: LOG_TARGET,
                    "A held publication for {} could not be sent: {e}",
                    escape_for_log(&h.key)
                ),
            }
        }
        sent
    }

    /// Report publications that were never sent (at close).
    pub fn abandon(&self) {
        let mut s = self.state.lock();
        if !s.held.is_empty() {
            log::warn!(
                target: LOG_TARGET,
                "{} publication(s) held until {} confirmed the key exchange were not sent: \
                 the communicator closed first",
                s.held.len(),
                awaited(&s.awaiting)
            );
        }
        s.held.clear();
        s.bytes = 0;
    }
}

impl Turn<'_> {
    /// Whether this publication must be held (a peer is awaited, or earlier ones are
    /// held and must leave first).
    pub fn must_hold(&self) -> bool {
        !self.0.awaiting.is_empty() || !self.0.held.is_empty()
    }

    /// Hold a publication of `payload` on `key` (user topic `topic`) until the awaited
    /// peers confirm.
    pub fn hold(&mut self, key: &str, topic: &str, format: u8, payload: Vec<u8>) -> Result<()> {
        let s = &mut *self.0;
        if s.held.len() >= MAX_HELD || s.bytes + payload.len() > MAX_HELD_BYTES {
            return Err(Error::KeyExchange(format!(
                "{} publication(s) ({} bytes) are already held until {} confirmed the key \
                 exchange, and this one would pass the limit ({MAX_HELD} messages, \
                 {MAX_HELD_BYTES} bytes): has it called complete_key_exchange? Call \
                 wait_for_session(peer_id) before publishing more",
                s.held.len(),
                s.bytes,
                awaited(&s.awaiting)
            )));
        }
        s.bytes += payload.len();
        s.held.push_back(Held {
            key: key.to_owned(),
            topic: topic.to_owned(),
            format,
            payload,
        });
        Ok(())
    }
}

/// Where publications leave: sealed by `sender`, put on `transport`, counted (and
/// checked for plaintext) by `monitor`.
pub struct Outlet<'a> {
    pub sender: &'a Sender,
    pub transport: &'a Transport,
    pub monitor: &'a Monitor,
}

impl Outlet<'_> {
    /// Seal one publication on `key` (user topic `topic`, for the warnings) with the
    /// payload `write` appends, put it, and count it. Called under the outbox's turn, so
    /// publications leave in counter order.
    pub fn seal_and_put(
        &self,
        key: &str,
        topic: &str,
        format: u8,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let (msg, _, _) = self
            .sender
            .seal(Kind::Publish, key, b"", format, size_hint, write)?;
        self.monitor.check_plaintext(topic, &msg);
        let len = msg.len() as u64;
        self.transport.put(key, msg)?;
        Stats::add(&self.monitor.stats.published, 1);
        Stats::add(&self.monitor.stats.bytes_sent, len);
        Ok(())
    }
}

fn awaited(peers: &[String]) -> String {
    if peers.is_empty() {
        return "the peer".into();
    }
    let names: Vec<String> = peers
        .iter()
        .map(|p| format!("{:?}", escape_for_log(p)))
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_while_a_peer_is_awaited_and_refuses_past_the_limit() {
        let out = Outbox::default();
        assert!(!out.turn().must_hold());
        out.await_peer("node-2");
        out.await_peer("node-2");
        assert!(out.is_awaiting());
        let mut turn = out.turn();
        assert!(turn.must_hold());
        for _ in 0..MAX_HELD {
            turn.hold("ns/t", "t", 1, vec![0; 4]).unwrap();
        }
        let err = turn
            .hold("ns/t", "t", 1, vec![0; 4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"node-2\"") && err.contains("wait_for_session"),
            "{err}"
        );
        drop(turn);
        out.abandon();
        // Still awaited after close: nothing is held, but the peer is not confirmed.
        assert!(out.turn().must_hold());
    }

    #[test]
    fn the_byte_limit_counts_payloads() {
        let out = Outbox::default();
        out.await_peer("p");
        let mut turn = out.turn();
        turn.hold("k", "k", 1, vec![0; MAX_HELD_BYTES]).unwrap();
        assert!(turn.hold("k", "k", 1, vec![0; 1]).is_err());
    }
}
