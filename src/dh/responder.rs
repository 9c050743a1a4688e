//! The responder's side: INITs (authenticated, fresh and within the rate limits before
//! anything is spent or stored), and the sealed KEY and ACK messages both sides send.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::group::GroupSecret;
use crate::crypto::handshake::{derive_keys, fingerprint, psk_salt, EphemeralKeyPair, Transcript};
use crate::dh::auth::InitKey;
use crate::dh::channel::{Channel, Origin, Slot};
use crate::dh::machine::{Action, Machine};
use crate::dh::message::{
    self, Handover, Init, Message, ACKED_LEN, FLAG_IDENTITY, FLAG_PSK, FLAG_REKEY,
};
use crate::dh::timers::*;
use crate::error::Error;

impl Machine {
    pub(super) fn on_init(&mut self, m: &Message<'_>, init: &Init, now: Now) {
        let peer = m.from;
        // 1. Which key MACs it; nothing is stored before the MAC verified.
        let (init_key, salt, psk, base_fp, origin) = if let Some(base) = &init.base {
            let Some(ch) = self
                .peers
                .get(peer)
                .and_then(|p| p.channels.confirmed(base))
            else {
                self.fail(format!(
                    "a rekey from {peer:?} names a channel this node does not hold"
                ));
                return;
            };
            let fp = ch.peer_fingerprint.clone();
            (
                InitKey::rekey(ch.chain()),
                Some(Zeroizing::new(*ch.chain())),
                ch.psk,
                Some(fp),
                Origin::Rekey,
            )
        } else {
            if !self.s.auto {
                self.fail(format!(
                    "{peer:?} asked for an automatic exchange, but this node uses \
                     key_exchange=\"manual\""
                ));
                return;
            }
            let psk = match (self.keys.has_key(), init.flags & FLAG_PSK != 0) {
                (true, true) => match self.keys.by_id(init.key_id) {
                    Some(psk) => Some(psk),
                    None => {
                        return self.fail(format!("{peer:?} uses a PSK this node does not hold"))
                    }
                },
                (false, false) => None,
                _ => return self.fail(format!("{peer:?} and this node do not both use a PSK")),
            };
            let pinned = !self.s.trusted.is_empty();
            if pinned != (init.flags & FLAG_IDENTITY != 0) {
                return self.fail(format!(
                    "{peer:?} and this node do not both use identity keys"
                ));
            }
            if pinned {
                let Some(key) = init.identity else { return };
                if self.s.pinned(peer) != Some(fingerprint(&key).as_str()) {
                    return self.fail(format!(
                        "{peer:?} is not in trusted_peers, or presented an identity key whose \
                         fingerprint is not the one pinned there"
                    ));
                }
                // At most one X25519 per pinned peer and key: cached.
                self.learn_identity(peer, key);
            }
            let ss = self
                .peers
                .get(peer)
                .and_then(|p| p.ss.as_ref())
                .filter(|_| pinned);
            if pinned && ss.is_none() {
                return;
            }
            let salt = psk.as_deref().map(psk_salt);
            let key = InitKey::first_contact(salt.as_deref(), ss, init.flags);
            (
                key,
                salt,
                psk.map(|k| k.key_id()),
                None,
                Origin::FirstContact,
            )
        };
        if !init_key.verify(m.signed, &init.mac) {
            self.fail(format!(
                "an INIT claiming to come from {peer:?} did not authenticate"
            ));
            return;
        }
        // 2. Authentic: fresh, not a replay, within the rate limits.
        let last = self.init_ts.get(peer).copied().unwrap_or(0);
        if init.timestamp_ms <= last
            || init.timestamp_ms < self.started_wall
            || init.timestamp_ms.abs_diff(now.wall_ms) > self.s.init_freshness_ms
        {
            return; // replayed, reordered behind a newer one, or stale
        }
        // Consumed from here on, answered or not: a replay of it is refused.
        self.remember_init(peer, init.timestamp_ms);
        let p = self.peers.entry(peer.to_owned()).or_default();
        p.gone_since = None;
        // Crossing exchanges: the smaller node id's wins.
        if p.pending.is_some() && self.s.node_id.as_str() < peer {
            return;
        }
        let bucket = p
            .inits
            .get_or_insert_with(|| Bucket::new(now.ms, INIT_BURST, INITS_PER_SECOND));
        if !bucket.take(now.ms) || !self.total_inits.take(now.ms) {
            self.fail(format!(
                "INITs from {peer:?} arrive faster than the rate limit; dropped"
            ));
            return;
        }
        let p = self.peers.get_mut(peer).expect("inserted above");
        p.pending = None;
        // 3. The responder's half of the exchange.
        let Some(own) = self.own.clone() else { return };
        let pair = EphemeralKeyPair::generate();
        let my_public = pair.public_key();
        let use_identity = init.flags & FLAG_IDENTITY != 0;
        let mine = self.s.identity.as_ref().filter(|_| use_identity);
        let my_static = mine.map(|k| k.public_key());
        let their_static = init.identity;
        let transcript = Transcript {
            my_id: &self.s.node_id,
            my_pub: &my_public,
            peer_id: peer,
            peer_pub: &init.ephemeral,
            statics: my_static.as_ref().zip(their_static.as_ref()),
        };
        let shared = match (mine, their_static) {
            (Some(mine), Some(theirs)) => {
                pair.agree_with_identity(&init.ephemeral, mine, &theirs, transcript.i_am_first())
            }
            _ => pair.agree(&init.ephemeral),
        };
        let shared = match shared {
            Ok(s) => s,
            Err(e) => return self.fail(format!("{peer:?} sent an unusable public key: {e}")),
        };
        let keys = derive_keys(&shared, &transcript, salt.as_deref());
        let fp = base_fp
            .unwrap_or_else(|| fingerprint(their_static.as_ref().unwrap_or(&init.ephemeral)));
        let mut channel = Channel::new(m.exchange_id, keys, fp, psk, origin);
        let handover = self.handover_for(&own, peer, now);
        let (key, counter) = channel.tx();
        let resp = message::encode_resp(
            &self.s.node_id,
            peer,
            &m.exchange_id,
            init.flags & (FLAG_PSK | FLAG_IDENTITY | FLAG_REKEY),
            &my_public,
            my_static.as_ref(),
            key,
            counter,
            &handover,
        );
        let mut resp = resp;
        resp.extend_from_slice(&init_key.mac(&resp));
        let p = self.peers.get_mut(peer).expect("inserted above");
        p.channels.offer(channel, now.ms);
        self.my_public.insert(peer.to_owned(), my_public);
        self.last_public = Some(my_public);
        self.send(peer, resp);
    }

    /// A KEY or ACK: authentic under one of the peer's channels, or dropped.
    pub(super) fn on_sealed(&mut self, m: &Message<'_>, sealed: &[u8], is_key: bool, now: Now) {
        let peer = m.from;
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Some((slot, channel)) = p.channels.find_mut(&m.exchange_id) else {
            return; // no such channel: a late message of an erased one, or forged
        };
        let plain = match channel.open(m.signed, sealed) {
            Ok(plain) => plain,
            Err(Error::Replay) => return,
            Err(_) => {
                self.fail(format!(
                    "a key from {peer:?} did not authenticate (the two sides derived different \
                     keys: a mistyped public key, a different PSK, or a man in the middle)"
                ));
                return;
            }
        };
        // Authentic from here on.
        p.gone_since = None;
        let channel_id = channel.id;
        let origin = channel.origin;
        let promoted = slot == Slot::Next;
        if promoted {
            p.channels.promote(now.ms);
            p.attempt = None;
            if origin == Origin::FirstContact {
                p.forget_keys();
            }
            self.out.push(Action::Established {
                peer: peer.to_owned(),
                origin,
            });
        }
        if is_key {
            let Ok(handover) = Handover::parse(&plain) else {
                return;
            };
            let acked = handover.secret.session_id;
            self.accept_sender_key(peer, handover);
            let p = self.peers.get_mut(peer).expect("present");
            if let Some((_, ch)) = p.channels.find_mut(&channel_id) {
                let (key, counter) = ch.tx();
                let ack =
                    message::encode_ack(&self.s.node_id, peer, &channel_id, key, counter, &acked);
                self.send(peer, ack);
            }
            // The peer holds the channel (and may have restarted): what it lacks of ours
            // goes at once.
            self.send_keys(peer, now, true);
        } else {
            let Ok(acked) = <[u8; ACKED_LEN]>::try_from(&plain[..]) else {
                return;
            };
            let ours = [self.own.as_ref(), self.rekey.as_ref().map(|r| &r.next)];
            if ours.iter().flatten().any(|g| g.session_id == acked) {
                let p = self.peers.get_mut(peer).expect("present");
                if !p.acked.contains(&acked) {
                    p.acked.push(acked);
                }
            }
            if promoted {
                // The rekey's new sender key waited for this channel.
                self.send_keys(peer, now, true);
            }
        }
        self.maybe_switch(now);
    }

    pub(super) fn accept_sender_key(&mut self, peer: &str, handover: Handover) {
        let p = self.peers.get_mut(peer).expect("caller checked");
        p.theirs = Some(handover.secret.session_id);
        self.out.push(Action::InstallSenderKey {
            peer: peer.to_owned(),
            handover,
        });
    }

    /// Send `peer` every sender key of ours it has not acknowledged (our current one, and
    /// the next one during a rekey), over the current channel. `now_or_timer`: at once,
    /// else when the retry timer says so.
    pub(super) fn send_keys(&mut self, peer: &str, now: Now, at_once: bool) {
        let ours: Vec<Arc<GroupSecret>> = [
            self.own.clone(),
            self.rekey.as_ref().map(|r| r.next.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let me = self.s.node_id.clone();
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        // A new sender key travels over the new channel of its rekey, not the old one:
        // while an exchange with the peer is open, it waits (at most REKEY_KEY_WAIT_MS).
        let next = self
            .rekey
            .as_ref()
            .filter(|r| now.ms.saturating_sub(r.started) < REKEY_KEY_WAIT_MS)
            .map(|r| r.next.session_id);
        let exchanging = p.pending.is_some() || p.channels.has_next();
        let missing: Vec<Arc<GroupSecret>> = ours
            .into_iter()
            .filter(|g| !p.acked.contains(&g.session_id))
            .filter(|g| !(exchanging && Some(g.session_id) == next))
            .collect();
        if missing.is_empty() {
            p.key_retry = None;
            return;
        }
        let retry = p
            .key_retry
            .get_or_insert_with(|| Backoff::new(now.ms, KEY_RETRY_MIN_MS, KEY_RETRY_MAX_MS));
        if at_once {
            retry.reset(now.ms);
        }
        if !retry.due(now.ms) || p.channels.current().is_none() {
            return;
        }
        retry.fired(now.ms);
        let handovers: Vec<_> = missing
            .iter()
            .map(|g| self.handover_for(g, peer, now))
            .collect();
        let p = self.peers.get_mut(peer).expect("present");
        let ch = p.channels.current_mut().expect("checked");
        let id = ch.id;
        let mut msgs = Vec::new();
        for h in handovers {
            let (key, counter) = ch.tx();
            msgs.push(message::encode_key(&me, peer, &id, key, counter, &h));
        }
        for bytes in msgs {
            self.send(peer, bytes);
        }
    }
}
