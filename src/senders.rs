//! Who sent what: counters per (sender, topic) of everything a node's subscriptions saw,
//! accepted or not. This is what `evospikenet audit --connect` and `evospikenet monitor`
//! read to name the nodes that publish plaintext or traffic the local key cannot open.
//!
//! The sender of a refused message is the id its cleartext header *claims*: nothing
//! authenticates it (that is why it was refused), so it names a suspect, not a culprit.
//! A message with no evospikenet header at all (a plain Zenoh publisher) has no sender
//! id; it is counted as plaintext under `None`.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::crypto::envelope::{Header, Mode};
use crate::crypto::now_ms;
use crate::error::Error;

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Opened and handed on (or, on a node without a key, accepted in the clear from a
    /// node with a header: counted as plaintext instead).
    Received,
    /// No encryption: a plaintext evospikenet message or no evospikenet header at all.
    Plaintext,
    /// Encrypted, but the local keys cannot open it (another PSK, tampered, no key here).
    Undecryptable,
    /// Authentic, but a replay, too old, or from a retired session.
    Replayed,
}

/// The counters of one (sender, topic) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderCounts {
    pub received: u64,
    pub plaintext: u64,
    pub undecryptable: u64,
    pub replayed: u64,
    /// When the last message of this pair arrived (ms since the Unix epoch).
    pub last_seen_ms: u64,
}

impl SenderCounts {
    fn add(&mut self, seen: Seen, now: u64) {
        let c = match seen {
            Seen::Received => &mut self.received,
            Seen::Plaintext => &mut self.plaintext,
            Seen::Undecryptable => &mut self.undecryptable,
            Seen::Replayed => &mut self.replayed,
        };
        *c = c.saturating_add(1);
        self.last_seen_ms = now;
    }
}

/// One row of [`SenderTable::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderRow {
    /// The sender id from the header (claimed, unauthenticated when refused); `None` for
    /// a message without an evospikenet header, and for [`OVERFLOW_TOPIC`].
    pub sender: Option<String>,
    pub topic: String,
    pub counts: SenderCounts,
}

/// The topic of the row that gathers the pairs that came after the table was full.
pub const OVERFLOW_TOPIC: &str = "<other senders and topics>";

/// The table. Bounded: anyone on the network can make up sender ids and topics, so past
/// [`SenderTable::MAX_PAIRS`] pairs new ones are counted in one overflow row.
#[derive(Default)]
pub struct SenderTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// sender (None: no header) -> topic -> counts. Nested so that the hot path looks a
    /// known pair up by `&str` without allocating.
    pairs: HashMap<Option<String>, HashMap<String, SenderCounts>>,
    len: usize,
    overflow: SenderCounts,
}

impl SenderTable {
    pub const MAX_PAIRS: usize = 4096;

    /// Count a message on `topic` whose wire bytes were `wire` and which `Receiver::open`
    /// accepted (`Ok`) or refused with the error given.
    pub fn record(&self, topic: &str, wire: &[u8], outcome: Result<(), &Error>) {
        let header = Header::parse(wire).ok().map(|(h, _)| h);
        let plain = header.as_ref().is_none_or(|h| h.mode == Mode::Plain);
        let seen = match outcome {
            Ok(()) if plain => Seen::Plaintext,
            Ok(()) => Seen::Received,
            Err(Error::Replay) => Seen::Replayed,
            Err(_) if plain => Seen::Plaintext,
            Err(_) => Seen::Undecryptable,
        };
        self.add(header.map(|h| h.sender), topic, seen, now_ms());
    }

    fn add(&self, sender: Option<&str>, topic: &str, seen: Seen, now: u64) {
        let mut inner = self.inner.lock();
        let Inner {
            pairs,
            len,
            overflow,
        } = &mut *inner;
        let by_topic = match pairs.get_mut(&sender.map(str::to_owned)) {
            Some(t) => t,
            None if *len >= Self::MAX_PAIRS => return overflow.add(seen, now),
            None => pairs.entry(sender.map(str::to_owned)).or_default(),
        };
        if let Some(c) = by_topic.get_mut(topic) {
            return c.add(seen, now);
        }
        if *len >= Self::MAX_PAIRS {
            return overflow.add(seen, now);
        }
        *len += 1;
        by_topic.entry(topic.to_owned()).or_default().add(seen, now);
    }

    /// Every pair seen, sorted by sender then topic; the overflow row last, if used.
    pub fn snapshot(&self) -> Vec<SenderRow> {
        let inner = self.inner.lock();
        let mut rows: Vec<SenderRow> = inner
            .pairs
            .iter()
            .flat_map(|(sender, topics)| {
                topics.iter().map(move |(topic, counts)| SenderRow {
                    sender: sender.clone(),
                    topic: topic.clone(),
                    counts: *counts,
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.sender, &a.topic).cmp(&(&b.sender, &b.topic)));
        if inner.overflow != SenderCounts::default() {
            rows.push(SenderRow {
                sender: None,
                topic: OVERFLOW_TOPIC.to_owned(),
                counts: inner.overflow,
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::envelope::Kind;
    use crate::crypto::keys::KeyId;

    fn wire(mode: Mode, sender: &str) -> Vec<u8> {
        let mut out = Vec::new();
        Header {
            mode,
            kind: Kind::Publish,
            key_id: KeyId([1, 2, 3, 4]),
            sender,
            session_id: [7; 16],
            session_start_ms: 1,
            time_offset_ms: 0,
            counter: 0,
        }
        .write(&mut out);
        out.extend_from_slice(b"payload and tag");
        out
    }

    fn counts(table: &SenderTable, sender: Option<&str>, topic: &str) -> SenderCounts {
        table
            .snapshot()
            .into_iter()
            .find(|r| r.sender.as_deref() == sender && r.topic == topic)
            .map(|r| r.counts)
            .unwrap_or_default()
    }

    #[test]
    fn each_outcome_is_counted_under_the_claimed_sender() {
        let t = SenderTable::default();
        let psk = wire(Mode::Psk, "good");
        t.record("spikes/a", &psk, Ok(()));
        t.record("spikes/a", &psk, Ok(()));
        t.record("spikes/a", &psk, Err(&Error::Replay));
        t.record(
            "spikes/a",
            &wire(Mode::Psk, "wrong-key"),
            Err(&Error::Authentication),
        );
        t.record(
            "spikes/b",
            &wire(Mode::Plain, "no-key"),
            Err(&Error::Authentication),
        );
        t.record("spikes/b", b"just some bytes", Err(&Error::Authentication));
        t.record("spikes/c", &wire(Mode::Plain, "no-key"), Ok(()));
        let good = counts(&t, Some("good"), "spikes/a");
        assert_eq!(
            (good.received, good.replayed, good.undecryptable),
            (2, 1, 0)
        );
        assert!(good.last_seen_ms > 0);
        assert_eq!(counts(&t, Some("wrong-key"), "spikes/a").undecryptable, 1);
        assert_eq!(counts(&t, Some("no-key"), "spikes/b").plaintext, 1);
        assert_eq!(counts(&t, Some("no-key"), "spikes/c").plaintext, 1);
        assert_eq!(counts(&t, None, "spikes/b").plaintext, 1);
        let order: Vec<_> = t.snapshot().into_iter().map(|r| r.sender).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    #[test]
    fn made_up_senders_and_topics_end_in_one_overflow_row() {
        let t = SenderTable::default();
        for i in 0..SenderTable::MAX_PAIRS + 10 {
            t.record(&format!("t/{i}"), &wire(Mode::Psk, "x"), Ok(()));
        }
        t.record("t/0", &wire(Mode::Psk, "x"), Ok(()));
        t.record("t/new", &wire(Mode::Psk, "y"), Ok(()));
        let rows = t.snapshot();
        assert_eq!(rows.len(), SenderTable::MAX_PAIRS + 1);
        let last = rows.last().unwrap();
        assert_eq!(
            (last.sender.as_deref(), last.topic.as_str()),
            (None, OVERFLOW_TOPIC)
        );
        assert_eq!(last.counts.received, 11);
        assert_eq!(counts(&t, Some("x"), "t/0").received, 2);
    }
}
