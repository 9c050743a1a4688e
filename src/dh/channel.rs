//! Pairwise channels: the keys one X25519 exchange gave two nodes, and the three slots a
//! node keeps per peer, as WireGuard keeps previous, current and next sessions.
//!
//! - `next`: the responder's keys of an exchange whose initiator has not yet proven it
//!   derived them; promoted to `current` by the first authentic message under them.
//! - `current`: what this node sends with.
//! - `previous`: the channel `current` replaced, still accepted for a while, so messages
//!   in flight and a peer that switched later than we did lose nothing.
//!
//! A KEY or ACK is accepted under any of the three, and a rekey may name any confirmed
//! one as its base: two nodes that disagree for a moment on which channel is current
//! (crossing exchanges) still hold each other's.

use zeroize::Zeroizing;

use crate::crypto::handshake::SessionKeys;
use crate::crypto::keys::{KeyId, SessionKey};
use crate::crypto::replay::ReplayWindow;
use crate::dh::message::{self, ExchangeId};
use crate::error::{Error, Result};

/// How the exchange that made a channel was authenticated (rekeys inherit it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Keys typed in by the user (the guide's manual exchange).
    Manual,
    /// A first-contact exchange authenticated by the PSK with this key id and/or by
    /// pinned identity keys.
    FirstContact,
    /// A rekey of an earlier channel.
    Rekey,
}

/// One direction pair of keys with a peer.
pub struct Channel {
    pub id: ExchangeId,
    tx: SessionKey,
    rx: SessionKey,
    chain: Zeroizing<[u8; 32]>,
    tx_counter: u64,
    rx_window: ReplayWindow,
    /// The fingerprint of the key the peer used (its identity key if it used one).
    pub peer_fingerprint: String,
    /// The PSK that authenticated this channel's lineage; when it is revoked, so is the
    /// channel.
    pub psk: Option<KeyId>,
    pub origin: Origin,
}

impl Channel {
    pub fn new(
        id: ExchangeId,
        keys: SessionKeys,
        peer_fingerprint: String,
        psk: Option<KeyId>,
        origin: Origin,
    ) -> Channel {
        Channel {
            id,
            tx: keys.tx,
            rx: keys.rx,
            chain: keys.chain,
            tx_counter: 0,
            rx_window: ReplayWindow::default(),
            peer_fingerprint,
            psk,
            origin,
        }
    }

    pub fn chain(&self) -> &[u8; 32] {
        &self.chain
    }

    /// The sending key and the next counter for it (each counter used once).
    pub fn tx(&mut self) -> (&SessionKey, u64) {
        let c = self.tx_counter;
        self.tx_counter += 1;
        (&self.tx, c)
    }

    /// Open a sealed part received under this channel: tag first, then the replay check.
    /// Nothing changes unless the tag verified.
    pub fn open(&mut self, signed: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (counter, plain) = message::open_sealed(&self.rx, signed, sealed)?;
        if !self.rx_window.accept(counter) {
            return Err(Error::Replay);
        }
        Ok(plain)
    }
}

/// Which slot a channel sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Previous,
    Current,
    Next,
}

/// The channels a node holds with one peer, with the time each slot was filled (ms).
#[derive(Default)]
pub struct Channels {
    previous: Option<(Channel, u64)>,
    current: Option<Channel>,
    next: Option<(Channel, u64)>,
}

impl Channels {
    pub fn current(&self) -> Option<&Channel> {
        self.current.as_ref()
    }

    pub fn current_mut(&mut self) -> Option<&mut Channel> {
        self.current.as_mut()
    }

    /// Whether an unconfirmed channel waits for the initiator's first message.
    pub fn has_next(&self) -> bool {
        self.next.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.previous.is_none() && self.current.is_none() && self.next.is_none()
    }

    /// The channel `id` and its slot, in any slot.
    pub fn find_mut(&mut self, id: &ExchangeId) -> Option<(Slot, &mut Channel)> {
        if let Some(c) = self.current.as_mut().filter(|c| &c.id == id) {
            return Some((Slot::Current, c));
        }
        if let Some((c, _)) = self.next.as_mut().filter(|(c, _)| &c.id == id) {
            return Some((Slot::Next, c));
        }
        if let Some((c, _)) = self.previous.as_mut().filter(|(c, _)| &c.id == id) {
            return Some((Slot::Previous, c));
        }
        None
    }

    /// A confirmed channel (current or previous) with id `id`: what a rekey may build on.
    pub fn confirmed(&self, id: &ExchangeId) -> Option<&Channel> {
        self.current
            .iter()
            .chain(self.previous.iter().map(|(c, _)| c))
            .find(|c| &c.id == id)
    }

    /// Send with `channel` from now on (an exchange we initiated, or a manual one,
    /// completed); the current one becomes previous.
    pub fn install(&mut self, channel: Channel, now: u64) {
        if let Some(old) = self.current.replace(channel) {
            self.previous = Some((old, now));
        }
    }

    /// Hold `channel` until the initiator proves it (replaces an older unconfirmed one).
    pub fn offer(&mut self, channel: Channel, now: u64) {
        self.next = Some((channel, now));
    }

    /// The initiator proved the `next` channel: it becomes current.
    pub fn promote(&mut self, now: u64) -> Option<&Channel> {
        let (next, _) = self.next.take()?;
        self.install(next, now);
        self.current.as_ref()
    }

    /// Drop an unconfirmed `next` older than `next_ttl` and a `previous` older than
    /// `previous_ttl`.
    pub fn expire(&mut self, now: u64, next_ttl: u64, previous_ttl: u64) {
        if self
            .next
            .as_ref()
            .is_some_and(|(_, t)| now.saturating_sub(*t) >= next_ttl)
        {
            self.next = None;
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, t)| now.saturating_sub(*t) >= previous_ttl)
        {
            self.previous = None;
        }
    }

    /// Drop every channel whose PSK `accepted` no longer accepts.
    pub fn revoke(&mut self, accepted: impl Fn(KeyId) -> bool) -> bool {
        let revoked = |c: &Channel| c.psk.is_some_and(|id| !accepted(id));
        let mut any = false;
        if self.current.as_ref().is_some_and(revoked) {
            self.current = None;
            any = true;
        }
        if self.previous.as_ref().is_some_and(|(c, _)| revoked(c)) {
            self.previous = None;
            any = true;
        }
        if self.next.as_ref().is_some_and(|(c, _)| revoked(c)) {
            self.next = None;
            any = true;
        }
        any
    }

    /// The ids of the channels held, for tests and diagnostics (not secret).
    pub fn ids(&self) -> [Option<ExchangeId>; 3] {
        [
            self.previous.as_ref().map(|(c, _)| c.id),
            self.current.as_ref().map(|c| c.id),
            self.next.as_ref().map(|(c, _)| c.id),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: u8) -> Channel {
        let k = || SessionKey::from_key_and_iv(&[id; 32], &[id; 12]);
        let keys = SessionKeys {
            tx: k(),
            rx: k(),
            chain: Zeroizing::new([id; 32]),
        };
        Channel::new([id; 16], keys, String::new(), None, Origin::Manual)
    }

    #[test]
    fn slots_rotate_as_previous_current_next() {
        let mut c = Channels::default();
        c.install(channel(1), 0);
        c.offer(channel(2), 0);
        assert_eq!(c.ids(), [None, Some([1; 16]), Some([2; 16])]);
        // An unconfirmed offer is replaced by a newer one; current stays.
        c.offer(channel(3), 1);
        assert!(c.find_mut(&[2; 16]).is_none());
        c.promote(2);
        assert_eq!(c.ids(), [Some([1; 16]), Some([3; 16]), None]);
        assert!(c.confirmed(&[1; 16]).is_some() && c.confirmed(&[3; 16]).is_some());
        c.offer(channel(4), 3);
        assert!(c.confirmed(&[4; 16]).is_none());
        c.expire(100, 50, 1000);
        assert_eq!(c.ids(), [Some([1; 16]), Some([3; 16]), None]);
        c.expire(2000, 50, 1000);
        assert_eq!(c.ids(), [None, Some([3; 16]), None]);
    }

    #[test]
    fn a_failed_tag_changes_no_window() {
        let mut a = channel(1);
        let mut b = channel(1);
        let (key, counter) = a.tx();
        let mut msg = b"hdr".to_vec();
        let mut body = b"x".to_vec();
        let tag = key.seal(counter, &msg, &mut body);
        let mut sealed = counter.to_be_bytes().to_vec();
        sealed.extend_from_slice(&body);
        sealed.extend_from_slice(&tag);
        msg[0] ^= 1;
        assert!(b.open(&msg, &sealed).is_err());
        msg[0] ^= 1;
        assert!(b.open(&msg, &sealed).is_ok());
        assert!(matches!(b.open(&msg, &sealed), Err(Error::Replay)));
    }
}
