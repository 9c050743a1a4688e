//! The key manager as a sans-IO state machine: messages, commands and time go in,
//! actions come out (`Action`: send, install, use, retire, report). No thread, no lock,
//! no clock, no Zenoh: the driver (`driver.rs`) does the I/O, and the tests run it under
//! their own clock and network.
//!
//! ```text
//! manual     A: initiate -> public key a (shown to the user)       B: likewise, b
//!            A: complete(b) -> channel      B: complete(a) -> the same channel
//!            each side: KEY(its sender key) until ACK
//! automatic  I -> R  INIT  (ephemeral, timestamp, MAC under the PSK and/or identities)
//!            R -> I  RESP  (ephemeral; R's sender key sealed: proves R derived the keys)
//!            I -> R  ACK + KEY (I's sender key; the first message under the channel
//!                              proves I derived them: R promotes `next` to current)
//! rekey      the same with FLAG_REKEY: the INIT names its base channel, whose chain key
//!            MACs the INIT and salts the new keys; a new sender key goes to every peer
//!            and is sealed with once all acknowledged it (or after SWITCH_TIMEOUT_MS)
//! ```
//! Invariants: nothing changes before a message authenticated (a MAC or an AEAD tag);
//! an INIT's timestamp must grow per peer (no replay); crossing INITs are settled by
//! node id (the smaller id's exchange wins); a rekey that gets no answer falls back to a
//! first-contact exchange; every retry is timed by `timers`.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::group::GroupSecret;
use crate::crypto::handshake::{
    derive_keys, fingerprint, psk_salt, EphemeralKeyPair, IdentityKey, SharedSecret, Transcript,
};
use crate::crypto::keys::KeyId;
use crate::crypto::random_bytes;
use crate::crypto::session::KeyRing;
use crate::dh::auth::InitKey;
use crate::dh::channel::{Channel, Channels, Origin};
use crate::dh::message::{
    Body, ExchangeId, Handover, Message, PublicKey, ACKED_LEN, AUTH_KEY_LEN, EXCHANGE_ID_LEN,
};
use crate::dh::timers::*;
use crate::error::{Error, Result};

/// At most this many peers are tracked through presence, so a flood of forged presence
/// announcements cannot grow memory without end.
pub const MAX_LIVE_PEERS: usize = 4096;

/// What the machine is configured with.
pub struct Settings {
    pub node_id: String,
    /// Automatic exchanges with every peer that appears (else only the manual API).
    pub auto: bool,
    pub identity: Option<IdentityKey>,
    /// Pinned peers: (node id, identity-key fingerprint in canonical form).
    pub trusted: Vec<(String, String)>,
    /// Draw a new sender key this long after the last one was put to use.
    pub rekey_after_ms: u64,
    /// An INIT whose timestamp is this far from our clock is refused (replay after a
    /// restart; assumes node clocks agree within this bound).
    pub init_freshness_ms: u64,
}

impl Settings {
    pub(super) fn pinned(&self, peer: &str) -> Option<&str> {
        self.trusted
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, f)| f.as_str())
    }
}

/// What the driver is asked to do.
#[derive(Debug)]
pub enum Action {
    /// Put `bytes` on `to`'s key-exchange key.
    Send { to: String, bytes: Vec<u8> },
    /// Hold `peer`'s sender key (opens its publications sealed from the handover's time
    /// on) and the key of the tags that authenticate `peer` as their sender to this node.
    InstallSenderKey { peer: String, handover: Handover },
    /// Tag what is sealed under our sender key `epoch` for `peer` with `key` (it holds
    /// the same key, handed over with the sender key).
    AuthKey {
        epoch: [u8; ACKED_LEN],
        peer: String,
        key: Zeroizing<[u8; AUTH_KEY_LEN]>,
    },
    /// Seal this node's publications with this sender key from now on.
    UseSenderKey(Arc<GroupSecret>),
    /// Erase `peer`'s sender keys after the grace period.
    RetireSender(String),
    /// An exchange completed (count and log it).
    Established { peer: String, origin: Origin },
    /// A remote party's message was refused or an exchange failed (count it; rate-limited
    /// log). The text names no key material.
    Failure(String),
    /// A rekey ended: the new sender key is in use; `acked` of `peers` acknowledged it.
    RekeyDone { acked: Vec<String>, peers: usize },
}

pub(super) enum Kind {
    FirstContact,
    Rekey { base: ExchangeId },
}

/// An exchange this node initiated and has not yet seen answered.
pub(super) struct Pending {
    pub(super) id: ExchangeId,
    pub(super) pair: EphemeralKeyPair,
    pub(super) kind: Kind,
    pub(super) flags: u8,
    pub(super) salt: Option<Zeroizing<[u8; 32]>>,
    pub(super) psk: Option<KeyId>,
    /// The fingerprint a rekey inherits from its base.
    pub(super) base_fingerprint: Option<String>,
    /// The INIT's key: the RESP must carry a MAC under it before anything is computed.
    pub(super) init_key: InitKey,
    pub(super) started: u64,
    pub(super) retry: Backoff,
}

#[derive(Default)]
pub(super) struct Peer {
    pub(super) channels: Channels,
    pub(super) pending: Option<Pending>,
    /// Automatic first contact: when to try next.
    pub(super) attempt: Option<Backoff>,
    /// Since when the peer's presence is gone while we still hold a channel (it is being
    /// asked whether it is still there).
    pub(super) gone_since: Option<u64>,
    pub(super) inits: Option<Bucket>,
    /// Our sender keys (session ids) this peer acknowledged.
    pub(super) acked: Vec<[u8; ACKED_LEN]>,
    /// The newest sender key we hold from this peer.
    pub(super) theirs: Option<[u8; ACKED_LEN]>,
    pub(super) key_retry: Option<Backoff>,
    /// The peer's identity key, once verified against its pin.
    pub(super) identity: Option<PublicKey>,
    pub(super) ss: Option<SharedSecret>,
}

impl Peer {
    /// A new exchange with a peer that may have restarted: what it held of ours is gone.
    pub(super) fn forget_keys(&mut self) {
        self.acked.clear();
        self.theirs = None;
    }
}

pub(super) struct Rekey {
    pub(super) next: Arc<GroupSecret>,
    pub(super) started: u64,
}

/// The state of one node's DH mode.
pub struct Machine {
    pub(super) s: Settings,
    pub(super) keys: Arc<KeyRing>,
    pub(super) own: Option<Arc<GroupSecret>>,
    pub(super) own_since: u64,
    pub(super) rekey: Option<Rekey>,
    /// Sender-auth keys handed to each peer, by our sender-key epoch (current and next).
    pub(super) auth: HashMap<[u8; ACKED_LEN], HashMap<String, Zeroizing<[u8; AUTH_KEY_LEN]>>>,
    pub(super) peers: HashMap<String, Peer>,
    pub(super) manual: HashMap<String, EphemeralKeyPair>,
    pub(super) my_public: HashMap<String, PublicKey>,
    pub(super) last_public: Option<PublicKey>,
    pub(super) live: HashMap<String, u64>,
    pub(super) total_inits: Bucket,
    pub(super) first_contacts: Bucket,
    /// The newest authentic INIT timestamp from each peer; kept when the peer's state
    /// goes, so its INITs cannot be replayed then (bounded: oldest entries go first).
    pub(super) init_ts: HashMap<String, u64>,
    pub(super) last_init_wall: u64,
    /// INITs stamped before this node started are refused: they were made for an
    /// earlier instance (replays of them would otherwise pass after a restart).
    pub(super) started_wall: u64,
    pub(super) out: Vec<Action>,
}

impl Machine {
    pub fn new(settings: Settings, keys: Arc<KeyRing>, now: Now) -> Machine {
        let mut m = Machine {
            s: settings,
            keys,
            own: None,
            own_since: now.ms,
            rekey: None,
            auth: HashMap::new(),
            peers: HashMap::new(),
            manual: HashMap::new(),
            my_public: HashMap::new(),
            last_public: None,
            live: HashMap::new(),
            total_inits: Bucket::new(now.ms, INITS_PER_SECOND_TOTAL, INITS_PER_SECOND_TOTAL),
            init_ts: HashMap::new(),
            first_contacts: Bucket::new(
                now.ms,
                FIRST_CONTACTS_PER_SECOND,
                FIRST_CONTACTS_PER_SECOND,
            ),
            last_init_wall: 0,
            started_wall: now.wall_ms,
            out: Vec::new(),
        };
        if m.s.auto {
            m.enter_dh_mode(now);
        }
        m
    }

    pub fn node_id(&self) -> &str {
        &self.s.node_id
    }

    pub(super) fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    pub(super) fn send(&mut self, to: &str, bytes: Vec<u8>) {
        self.out.push(Action::Send {
            to: to.to_owned(),
            bytes,
        });
    }

    pub(super) fn fail(&mut self, why: String) {
        self.out.push(Action::Failure(why));
    }

    pub(super) fn enter_dh_mode(&mut self, now: Now) {
        if self.own.is_none() {
            let own = Arc::new(GroupSecret::generate());
            self.out.push(Action::UseSenderKey(own.clone()));
            self.own = Some(own);
            self.own_since = now.ms;
        }
    }

    // ----- queries -----

    /// Whether the node is in DH mode.
    pub fn is_active(&self) -> bool {
        self.own.is_some()
    }

    /// Whether traffic flows both ways with `peer`: a channel, the peer holds the sender
    /// key we seal with, and we hold its.
    pub fn established(&self, peer: &str) -> bool {
        let (Some(p), Some(own)) = (self.peers.get(peer), self.own.as_ref()) else {
            return false;
        };
        p.channels.current().is_some() && p.acked.contains(&own.session_id) && p.theirs.is_some()
    }

    pub fn established_peers(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .peers
            .keys()
            .filter(|p| self.established(p))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// The fingerprint of our key for `peer`'s exchange, or of our identity key, or of
    /// the latest exchange's key.
    pub fn fingerprint(&self, peer: Option<&str>) -> Option<String> {
        let key = match peer {
            Some(p) => self.my_public.get(p).copied(),
            None => self
                .s
                .identity
                .as_ref()
                .map(|i| i.public_key())
                .or(self.last_public),
        };
        key.map(|k| fingerprint(&k))
    }

    /// The fingerprint of the key `peer` used in the exchange of our current channel.
    pub fn peer_fingerprint(&self, peer: &str) -> Option<String> {
        self.peers
            .get(peer)?
            .channels
            .current()
            .map(|c| c.peer_fingerprint.clone())
    }

    /// Every peer this node has exchanged with or started to.
    pub fn known_peers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers
            .keys()
            .chain(self.my_public.keys())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The channel ids held with `peer` (previous, current, next): for tests.
    pub fn channel_ids(&self, peer: &str) -> [Option<ExchangeId>; 3] {
        self.peers
            .get(peer)
            .map(|p| p.channels.ids())
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub fn identity_and_pins(&self) -> (Option<IdentityKey>, Vec<(String, String)>) {
        (self.s.identity.clone(), self.s.trusted.clone())
    }

    /// Whether a rekey is waiting for acknowledgements.
    pub fn rekey_in_progress(&self) -> bool {
        self.rekey.is_some()
    }

    // ----- the guide's manual API -----

    /// Start a manual exchange with `peer`: a fresh key pair; returns its public key.
    pub fn initiate(&mut self, peer: &str) -> PublicKey {
        let pair = EphemeralKeyPair::generate();
        let public = pair.public_key();
        self.manual.insert(peer.to_owned(), pair);
        self.my_public.insert(peer.to_owned(), public);
        self.last_public = Some(public);
        public
    }

    /// The peer a `complete` without a peer id means: the only pending one.
    pub fn only_pending(&self) -> Result<String> {
        match self.manual.len() {
            1 => Ok(self.manual.keys().next().expect("one").clone()),
            0 => Err(Error::InvalidArgument(
                "no key exchange is pending: call initiate_key_exchange(peer_id) first (each \
                 exchange can be completed once)"
                    .into(),
            )),
            _ => {
                let mut ids: Vec<&String> = self.manual.keys().collect();
                ids.sort();
                Err(Error::InvalidArgument(format!(
                    "exchanges with {ids:?} are pending: pass peer_id to say which one this \
                     key completes"
                )))
            }
        }
    }

    /// Complete the manual exchange with `peer`. From here on the node is in DH mode.
    pub fn complete(
        &mut self,
        peer: &str,
        peer_public: &PublicKey,
        now: Now,
    ) -> Result<Vec<Action>> {
        let Some(pair) = self.manual.get(peer) else {
            return Err(Error::InvalidArgument(format!(
                "no key exchange with {peer:?} is pending: call initiate_key_exchange({peer:?}) \
                 first (each exchange can be completed once)"
            )));
        };
        let shared = pair.agree(peer_public)?;
        let my_public = pair.public_key();
        let transcript = Transcript {
            my_id: &self.s.node_id,
            my_pub: &my_public,
            peer_id: peer,
            peer_pub: peer_public,
            statics: None,
        };
        let psk = self.keys.sealing_key();
        let salt = psk.as_deref().map(psk_salt);
        let keys = derive_keys(&shared, &transcript, salt.as_deref());
        self.manual.remove(peer);
        let id = manual_exchange_id(&my_public, peer_public);
        let channel = Channel::new(
            id,
            keys,
            fingerprint(peer_public),
            psk.map(|p| p.key_id()),
            Origin::Manual,
        );
        self.enter_dh_mode(now);
        let p = self.peers.entry(peer.to_owned()).or_default();
        p.channels.install(channel, now.ms);
        p.forget_keys();
        self.out.push(Action::Established {
            peer: peer.to_owned(),
            origin: Origin::Manual,
        });
        self.send_keys(peer, now, true);
        Ok(self.take())
    }

    // ----- rekeying -----

    /// Start a rekey: a new sender key for every peer and a new exchange with each. Does
    /// nothing if one is in progress. `RekeyDone` reports its end.
    pub fn start_rekey(&mut self, now: Now) -> Vec<Action> {
        self.enter_dh_mode(now);
        if self.rekey.is_none() {
            self.rekey = Some(Rekey {
                next: Arc::new(GroupSecret::generate()),
                started: now.ms,
            });
            let peers: Vec<String> = self.with_channel();
            for peer in &peers {
                let base = self.peers[peer].channels.current().map(|c| c.id);
                if let (Some(base), true) = (base, self.peers[peer].pending.is_none()) {
                    self.initiate_exchange(peer, Kind::Rekey { base }, now);
                }
                self.send_keys(peer, now, true);
            }
            self.maybe_switch(now);
        }
        self.take()
    }

    pub(super) fn with_channel(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.channels.current().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }

    /// Switch to the new sender key once every peer holds it, or at the time-out.
    pub(super) fn maybe_switch(&mut self, now: Now) {
        let Some(rekey) = &self.rekey else { return };
        let peers = self.with_channel();
        let acked: Vec<String> = peers
            .iter()
            .filter(|p| self.peers[*p].acked.contains(&rekey.next.session_id))
            .cloned()
            .collect();
        if acked.len() < peers.len() && now.ms.saturating_sub(rekey.started) < SWITCH_TIMEOUT_MS {
            return;
        }
        let next = self.rekey.take().expect("checked").next;
        self.auth.retain(|epoch, _| *epoch == next.session_id);
        self.out.push(Action::UseSenderKey(next.clone()));
        for p in self.peers.values_mut() {
            p.acked.retain(|s| *s == next.session_id);
        }
        self.own = Some(next);
        self.own_since = now.ms;
        self.out.push(Action::RekeyDone {
            acked,
            peers: peers.len(),
        });
    }

    /// Record the newest authentic INIT timestamp of `peer`.
    pub(super) fn remember_init(&mut self, peer: &str, timestamp_ms: u64) {
        if !self.init_ts.contains_key(peer) && self.init_ts.len() >= MAX_LIVE_PEERS {
            let oldest = self
                .init_ts
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.init_ts.remove(&id);
            }
        }
        self.init_ts.insert(peer.to_owned(), timestamp_ms);
    }

    /// The handover of our sender key `epoch` to `peer`: the key and `peer`'s sender-auth
    /// key for it (drawn on first use, and announced to the driver).
    pub(super) fn handover_for(
        &mut self,
        epoch: &GroupSecret,
        peer: &str,
        now: Now,
    ) -> Zeroizing<Vec<u8>> {
        let keys = self.auth.entry(epoch.session_id).or_default();
        if !keys.contains_key(peer) {
            let mut key = Zeroizing::new([0u8; AUTH_KEY_LEN]);
            random_bytes(key.as_mut_slice());
            keys.insert(peer.to_owned(), key.clone());
            self.out.push(Action::AuthKey {
                epoch: epoch.session_id,
                peer: peer.to_owned(),
                key,
            });
        }
        let auth = self.auth[&epoch.session_id][peer].clone();
        let secret = GroupSecret::from_announcement(&epoch.announcement()).expect("own key");
        let valid_from_ms = now.wall_ms.saturating_sub(HANDOVER_SLACK_MS);
        Handover {
            secret,
            auth,
            valid_from_ms,
        }
        .encode()
    }

    // ----- presence (automatic mode) -----

    /// A peer's presence appeared (with the identity key it announces) or went away.
    pub fn presence(
        &mut self,
        peer: &str,
        alive: bool,
        identity: Option<PublicKey>,
        now: Now,
    ) -> Vec<Action> {
        if peer == self.s.node_id {
            return Vec::new();
        }
        if !alive {
            // A token going away proves nothing: anyone can declare one under any name and
            // drop it. So the peer is asked, with a rekey of our channel, and forgotten
            // only if it does not answer within PEER_GONE_MS.
            self.live.remove(peer);
            let Some(p) = self.peers.get_mut(peer) else {
                return Vec::new();
            };
            let Some(base) = p.channels.current().map(|c| c.id) else {
                self.peers.remove(peer);
                return Vec::new();
            };
            p.gone_since.get_or_insert(now.ms);
            if p.pending.is_none() {
                self.initiate_exchange(peer, Kind::Rekey { base }, now);
            }
            return self.take();
        }
        if !self.live.contains_key(peer) && self.live.len() >= MAX_LIVE_PEERS {
            return Vec::new();
        }
        self.live.insert(peer.to_owned(), now.ms);
        if let Some(p) = self.peers.get_mut(peer) {
            p.gone_since = None;
        }
        if let Some(key) = identity {
            self.learn_identity(peer, key);
        }
        if self.s.auto {
            // A fresh start of the attempts (poll schedules the first one).
            self.peers.entry(peer.to_owned()).or_default().attempt = None;
        }
        self.poll(now)
    }

    /// Remember `peer`'s identity key if it matches its pin (a public key: an attacker
    /// announcing a wrong one is ignored, announcing the right one changes nothing).
    pub(super) fn learn_identity(&mut self, peer: &str, key: PublicKey) {
        if self.s.pinned(peer) != Some(fingerprint(&key).as_str()) {
            return;
        }
        let Some(mine) = &self.s.identity else { return };
        let Ok(ss) = mine.agree_static(&key) else {
            return;
        };
        let p = self.peers.entry(peer.to_owned()).or_default();
        if p.identity != Some(key) {
            p.identity = Some(key);
            p.ss = Some(ss);
        }
    }

    // ----- the initiator side -----

    // ----- the responder side -----

    // ----- input -----

    /// One message from the network.
    pub fn on_message(&mut self, bytes: &[u8], now: Now) -> Vec<Action> {
        let Ok(m) = Message::parse(bytes) else {
            self.fail("a malformed key-exchange message was dropped".into());
            return self.take();
        };
        if m.to != self.s.node_id || m.from == self.s.node_id || !valid_id(m.from) {
            return self.take();
        }
        match &m.body {
            Body::Init(init) => self.on_init(&m, init, now),
            Body::Resp { .. } => self.on_resp(&m, now),
            Body::Key { sealed } => self.on_sealed(&m, sealed, true, now),
            Body::Ack { sealed } => self.on_sealed(&m, sealed, false, now),
        }
        self.take()
    }

    /// Timers: retries, fall-backs, expiry, the rekey deadline, revocation.
    pub fn poll(&mut self, now: Now) -> Vec<Action> {
        let ids: Vec<String> = self.peers.keys().cloned().collect();
        for peer in &ids {
            let keys = self.keys.clone();
            let p = self.peers.get_mut(peer).expect("listed");
            p.channels.expire(now.ms, NEXT_TTL_MS, PREVIOUS_TTL_MS);
            if p.channels.revoke(|id| keys.by_id(id).is_some()) {
                p.forget_keys();
                self.out.push(Action::RetireSender(peer.clone()));
                self.fail(format!(
                    "the PSK of the channel with {peer:?} was revoked; a new exchange follows"
                ));
            }
            self.poll_pending(peer, now);
            self.send_keys(peer, now, false);
        }
        // Peers whose presence went away and that did not answer are forgotten.
        let gone: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.gone_since
                    .is_some_and(|t| now.ms.saturating_sub(t) >= PEER_GONE_MS)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for peer in gone {
            self.peers.remove(&peer);
            self.out.push(Action::RetireSender(peer));
        }
        // Peers with nothing left and no presence are forgotten.
        let live = &self.live;
        self.peers
            .retain(|id, p| !p.channels.is_empty() || p.pending.is_some() || live.contains_key(id));
        let (peers, manual) = (&self.peers, &self.manual);
        self.my_public
            .retain(|id, _| peers.contains_key(id) || manual.contains_key(id));
        self.maybe_switch(now);
        if self.own.is_some()
            && self.rekey.is_none()
            && now.ms.saturating_sub(self.own_since) >= self.s.rekey_after_ms
        {
            let more = self.start_rekey(now);
            self.out.extend(more);
        }
        self.take()
    }
}

/// Node ids on the wire: what `config::validate_node_id` accepts (checked again here so
/// the machine stands alone).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Both sides of a manual exchange name it the same way: a hash of the two public keys
/// in a fixed order.
pub fn manual_exchange_id(a: &PublicKey, b: &PublicKey) -> ExchangeId {
    use sha2::{Digest, Sha256};
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(b"evospikenet/v1/manual-exchange")
        .chain_update(lo)
        .chain_update(hi)
        .finalize();
    digest[..EXCHANGE_ID_LEN].try_into().expect("16 bytes")
}
