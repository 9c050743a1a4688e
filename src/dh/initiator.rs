//! The initiator's side of an exchange: sending INITs (first contact or rekey), retrying
//! them, falling back from a rekey to a first contact, and accepting the RESP.

use zeroize::Zeroizing;

use crate::crypto::handshake::{derive_keys, fingerprint, psk_salt, EphemeralKeyPair, Transcript};
use crate::crypto::keys::KeyId;
use crate::crypto::random_bytes;
use crate::dh::auth::InitKey;
use crate::dh::channel::{Channel, Origin};
use crate::dh::machine::{Action, Kind, Machine, Pending};
use crate::dh::message::{
    self, Body, Handover, Init, Message, EXCHANGE_ID_LEN, FLAG_IDENTITY, FLAG_PSK, FLAG_REKEY,
};
use crate::dh::timers::*;

impl Machine {
    pub(super) fn initiate_exchange(&mut self, peer: &str, kind: Kind, now: Now) {
        // First contacts are capped in all: fake presence tokens cannot keep this node
        // busy (a real newcomer also initiates towards us, uncapped).
        if matches!(kind, Kind::FirstContact) && !self.first_contacts.take(now.ms) {
            return;
        }
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        // A retry of the same exchange keeps its key pair (one X25519 less per retry);
        // it is dropped with the exchange.
        let retry_of_same = |old: &Pending| {
            matches!(
                (&old.kind, &kind),
                (Kind::Rekey { .. }, Kind::Rekey { .. }) | (Kind::FirstContact, Kind::FirstContact)
            )
        };
        let (pair, started, mut retry) = match p.pending.take() {
            Some(old) if retry_of_same(&old) => (old.pair, old.started, old.retry),
            _ => (
                EphemeralKeyPair::generate(),
                now.ms,
                Backoff::new(now.ms, INIT_RETRY_MIN_MS, INIT_RETRY_MAX_MS),
            ),
        };
        let ephemeral = pair.public_key();
        let mut id = [0u8; EXCHANGE_ID_LEN];
        random_bytes(&mut id);
        let timestamp_ms = now.wall_ms.max(self.last_init_wall + 1);
        self.last_init_wall = timestamp_ms;
        let p = self.peers.get_mut(peer).expect("looked up above");
        let (flags, key_id, identity, base, init_key, salt, psk, base_fp) = match &kind {
            Kind::Rekey { base } => {
                let Some(ch) = p.channels.confirmed(base) else {
                    return;
                };
                let salt = Zeroizing::new(*ch.chain());
                let key = InitKey::rekey(ch.chain());
                let fp = ch.peer_fingerprint.clone();
                (
                    FLAG_REKEY,
                    KeyId::default(),
                    None,
                    Some(*base),
                    key,
                    Some(salt),
                    ch.psk,
                    Some(fp),
                )
            }
            Kind::FirstContact => {
                let psk = self.keys.sealing_key();
                let mut flags = if psk.is_some() { FLAG_PSK } else { 0 };
                let pinned = !self.s.trusted.is_empty();
                let mut identity = None;
                if pinned {
                    // Without the peer's identity key we cannot MAC the INIT: wait for its
                    // presence announcement (or a RESP) to tell it.
                    let (Some(mine), Some(_)) = (&self.s.identity, &p.ss) else {
                        return;
                    };
                    flags |= FLAG_IDENTITY;
                    identity = Some(mine.public_key());
                }
                let salt = psk.as_deref().map(psk_salt);
                let key = InitKey::first_contact(
                    salt.as_deref(),
                    p.ss.as_ref().filter(|_| pinned),
                    flags,
                );
                let key_id = psk.as_ref().map(|k| k.key_id()).unwrap_or_default();
                (
                    flags,
                    key_id,
                    identity,
                    None,
                    key,
                    salt,
                    psk.map(|k| k.key_id()),
                    None,
                )
            }
        };
        let mac_key = init_key.clone();
        let mut init = Init {
            flags,
            key_id,
            timestamp_ms,
            ephemeral,
            identity,
            base,
            mac: [0; message::MAC_LEN],
        };
        let mut bytes = message::encode_init_unsigned(&self.s.node_id, peer, &id, &init);
        init.mac = init_key.mac(&bytes);
        bytes.extend_from_slice(&init.mac);
        retry.fired(now.ms);
        p.pending = Some(Pending {
            id,
            pair,
            kind,
            flags,
            salt,
            psk,
            base_fingerprint: base_fp,
            init_key: mac_key,
            started,
            retry,
        });
        self.send(peer, bytes);
    }

    pub(super) fn on_resp(&mut self, m: &Message<'_>, now: Now) {
        let Body::Resp {
            flags,
            ephemeral: ref eph,
            identity,
            sealed,
            ref mac,
            mac_signed,
        } = m.body
        else {
            return;
        };
        let peer = m.from;
        let me = self.s.node_id.clone();
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Some(pending) = p.pending.as_ref().filter(|x| x.id == m.exchange_id) else {
            return; // not an exchange of ours (any more): a late or forged reply
        };
        // Checked before any X25519: a RESP forged for an exchange id read on the wire
        // costs one HMAC.
        if flags != pending.flags & (FLAG_PSK | FLAG_IDENTITY | FLAG_REKEY)
            || !pending.init_key.verify(mac_signed, mac)
        {
            return;
        }
        let my_public = pending.pair.public_key();
        let statics = if pending.flags & FLAG_IDENTITY != 0 {
            let (Some(mine), Some(theirs)) = (self.s.identity.as_ref(), identity) else {
                return;
            };
            if p.identity != Some(theirs) {
                return;
            }
            Some((mine, theirs))
        } else {
            None
        };
        let my_static = statics.map(|(mine, _)| mine.public_key());
        let transcript = Transcript {
            my_id: &me,
            my_pub: &my_public,
            peer_id: peer,
            peer_pub: eph,
            statics: my_static.as_ref().zip(statics.as_ref().map(|(_, t)| t)),
        };
        let shared = match statics {
            Some((mine, theirs)) => {
                pending
                    .pair
                    .agree_with_identity(eph, mine, &theirs, transcript.i_am_first())
            }
            None => pending.pair.agree(eph),
        };
        let Ok(shared) = shared else { return };
        let keys = derive_keys(&shared, &transcript, pending.salt.as_deref());
        let fp = match (&pending.base_fingerprint, statics) {
            (Some(fp), _) => fp.clone(),
            (None, Some((_, theirs))) => fingerprint(&theirs),
            (None, None) => fingerprint(eph),
        };
        let origin = match pending.kind {
            Kind::FirstContact => Origin::FirstContact,
            Kind::Rekey { .. } => Origin::Rekey,
        };
        let mut channel = Channel::new(m.exchange_id, keys, fp, pending.psk, origin);
        let Ok(announcement) = channel.open(m.signed, sealed) else {
            self.fail(format!(
                "the reply of {peer:?} did not authenticate (a different PSK, or a man in the \
                 middle substituting keys)"
            ));
            return;
        };
        let Ok(handover) = Handover::parse(&announcement) else {
            return;
        };
        // Authentic from here on.
        let p = self.peers.get_mut(peer).expect("looked up above");
        p.pending = None;
        p.attempt = None;
        p.gone_since = None;
        p.channels.install(channel, now.ms);
        if origin == Origin::FirstContact {
            p.forget_keys();
        }
        self.out.push(Action::Established {
            peer: peer.to_owned(),
            origin,
        });
        let acked = handover.secret.session_id;
        self.accept_sender_key(peer, handover);
        // The first message under the new channel: it proves to the responder that we
        // derived the keys, and acknowledges its sender key.
        let p = self.peers.get_mut(peer).expect("looked up above");
        let ch = p.channels.current_mut().expect("installed above");
        let (key, counter) = ch.tx();
        let ack = message::encode_ack(&me, peer, &m.exchange_id, key, counter, &acked);
        self.send(peer, ack);
        self.send_keys(peer, now, true);
        self.maybe_switch(now);
    }

    pub(super) fn poll_pending(&mut self, peer: &str, now: Now) {
        let p = self.peers.get_mut(peer).expect("listed");
        let can_fall_back = self.s.auto && self.live.contains_key(peer);
        match &p.pending {
            Some(pending) if pending.retry.due(now.ms) => {
                let age = now.ms.saturating_sub(pending.started);
                match pending.kind {
                    Kind::Rekey { .. } if age >= REKEY_FALLBACK_MS && can_fall_back => {
                        p.pending = None;
                        self.initiate_exchange(peer, Kind::FirstContact, now);
                    }
                    Kind::Rekey { .. } if age >= REKEY_GIVE_UP_MS => {
                        p.pending = None;
                        self.fail(format!(
                            "rekey with {peer:?}: no answer; the current channel stays"
                        ));
                    }
                    Kind::Rekey { base } => {
                        if p.channels.confirmed(&base).is_some() {
                            self.initiate_exchange(peer, Kind::Rekey { base }, now);
                        } else {
                            p.pending = None;
                        }
                    }
                    Kind::FirstContact if can_fall_back => {
                        self.initiate_exchange(peer, Kind::FirstContact, now);
                    }
                    Kind::FirstContact => p.pending = None,
                }
            }
            Some(_) => {}
            None if p.channels.current().is_none() && can_fall_back => {
                // A live peer without a channel (never had one, or it was revoked): the
                // smaller id starts at once, the larger a moment later.
                let delay = if self.s.node_id.as_str() < peer {
                    0
                } else {
                    SECOND_INITIATOR_DELAY_MS
                };
                let attempt = p.attempt.get_or_insert_with(|| {
                    Backoff::new(now.ms + delay, 200, HANDSHAKE_RETRY_MAX_MS)
                });
                if attempt.due(now.ms) {
                    attempt.fired(now.ms);
                    self.initiate_exchange(peer, Kind::FirstContact, now);
                }
            }
            None => p.attempt = None,
        }
    }
}
