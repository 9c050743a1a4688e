//! The key manager's inbox: key-management messages waiting for the machine, queued per
//! claimed sender and served round-robin, so a flood under one id, or under many fake
//! ids, takes its share of the machine's time and no more: a genuine peer's message
//! waits at most one round.
//!
//! Nothing here is authenticated (the machine does that); the queues are bounded per
//! sender and in the number of senders, and what does not fit is dropped (the sender's
//! timers retry).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::dh::message::Message;
use crate::error::{Error, Result};

/// Messages held per claimed sender.
pub const PER_SENDER: usize = 64;
/// Claimed senders with messages waiting.
pub const SENDERS: usize = 4096;

#[derive(Default)]
struct Queues {
    by_sender: HashMap<String, VecDeque<Vec<u8>>>,
    /// Senders with something queued, in serving order.
    turn: VecDeque<String>,
    /// Set by `wake`: the waiting `pop` returns at once.
    woken: bool,
}

/// A fair, bounded, multi-producer single-consumer queue of messages.
#[derive(Default)]
pub struct Inbox {
    queues: Mutex<Queues>,
    ready: Condvar,
}

impl Inbox {
    /// Queue `bytes` under its claimed sender; false if it was dropped (its sender's queue
    /// or the table of senders is full). `Err` if it is not a key-management message.
    pub fn push(&self, bytes: Vec<u8>) -> Result<bool> {
        let Ok(m) = Message::parse(&bytes) else {
            return Err(Error::Authentication);
        };
        let sender = m.from.to_owned();
        let mut q = self.queues.lock();
        if !q.by_sender.contains_key(&sender) && q.by_sender.len() >= SENDERS {
            return Ok(false);
        }
        let queue = q.by_sender.entry(sender.clone()).or_default();
        if queue.len() >= PER_SENDER {
            return Ok(false);
        }
        let was_empty = queue.is_empty();
        queue.push_back(bytes);
        if was_empty {
            q.turn.push_back(sender);
        }
        drop(q);
        self.ready.notify_one();
        Ok(true)
    }

    /// The next message, one sender at a time in turn; waits up to `timeout`, or until
    /// `wake`.
    pub fn pop(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut q = self.queues.lock();
        loop {
            if let Some(sender) = q.turn.pop_front() {
                let queue = q
                    .by_sender
                    .get_mut(&sender)
                    .expect("queued senders have a queue");
                let msg = queue.pop_front().expect("queued senders have a message");
                if queue.is_empty() {
                    q.by_sender.remove(&sender);
                } else {
                    q.turn.push_back(sender);
                }
                return Some(msg);
            }
            if std::mem::take(&mut q.woken) {
                return None;
            }
            if self.ready.wait_until(&mut q, deadline).timed_out() {
                return None;
            }
        }
    }

    /// Wake a waiting `pop` (the driver has commands or timers to serve).
    pub fn wake(&self) {
        self.queues.lock().woken = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::SessionKey;
    use crate::dh::message::encode_ack;

    fn msg(from: &str, n: u8) -> Vec<u8> {
        let key = SessionKey::from_key_and_iv(&[1; 32], &[2; 12]);
        encode_ack(from, "node-1", &[n; 16], &key, 0, &[0; 16])
    }

    #[test]
    fn a_flood_under_any_ids_leaves_a_genuine_sender_its_turn() {
        let inbox = Inbox::default();
        // One id floods its queue full; 1,000 fake ids queue one message each.
        let accepted = (0..1_000)
            .filter(|i| inbox.push(msg("flood", *i as u8)).unwrap())
            .count();
        assert_eq!(accepted, PER_SENDER);
        for i in 0..1_000 {
            assert!(inbox.push(msg(&format!("fake-{i}"), 0)).unwrap());
        }
        assert!(inbox.push(msg("node-2", 7)).unwrap());
        // node-2 is served within one round: after at most one message of every other id.
        let served = (0..2_000)
            .map_while(|_| inbox.pop(Duration::ZERO))
            .position(|m| Message::parse(&m).unwrap().from == "node-2")
            .expect("node-2 served");
        assert!(served <= 1_001, "node-2 waited behind {served} messages");
    }

    #[test]
    fn bounds_and_garbage() {
        let inbox = Inbox::default();
        assert!(inbox.push(b"garbage".to_vec()).is_err());
        for i in 0..SENDERS {
            assert!(inbox.push(msg(&format!("id-{i}"), 0)).unwrap());
        }
        assert!(!inbox.push(msg("one-more", 0)).unwrap());
        assert!(
            inbox.push(msg("id-0", 1)).unwrap(),
            "a known sender still queues"
        );
        assert!(inbox.pop(Duration::ZERO).is_some());
        let empty = Inbox::default();
        assert!(empty.pop(Duration::from_millis(1)).is_none());
        // A wake ends a wait that would otherwise last an hour.
        empty.wake();
        assert!(empty.pop(Duration::from_secs(3600)).is_none());
    }
}
