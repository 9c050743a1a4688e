//! DH mode's one-to-many keys. Each node seals its publications with a random *sender
//! key* of its own (one encryption per publish, whatever the number of subscribers) and
//! hands it to every peer over the pairwise channel of an X25519 exchange. A rekey draws a
//! new sender key; receivers erase a sender's older keys a grace period after a message
//! under the newer one first authenticates, so an erased epoch cannot be opened from the
//! node's state.
//!
//! ```text
//! announcement = session id [16] || session start ms u64be || AES key [32] || IV [12]
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use zeroize::Zeroizing;

use crate::crypto::aead::{KEY_LEN, NONCE_LEN};
use crate::crypto::envelope::SESSION_ID_LEN;
use crate::crypto::keys::SessionKey;
use crate::crypto::sender_auth::{recipient_id, AuthKey, RECIPIENT_ID_LEN};
use crate::crypto::{now_ms, random_bytes};
use crate::error::{Error, Result};

/// Length of a sender-key announcement.
pub const ANNOUNCEMENT_LEN: usize = SESSION_ID_LEN + 8 + KEY_LEN + NONCE_LEN;
/// Keys remembered per sender: the current one and those still in their grace period.
const KEYS_PER_SENDER: usize = 4;

/// One epoch of a node's sender key. Zeroized on drop; `Debug` never shows the key.
pub struct GroupSecret {
    pub session_id: [u8; SESSION_ID_LEN],
    /// When the key was drawn: orders a sender's epochs (the newer retires the older). The
    /// messages sealed with it count their time from when the sender switched to it.
    pub start_ms: u64,
    material: Zeroizing<[u8; KEY_LEN + NONCE_LEN]>,
}

impl std::fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GroupSecret(session={}, <redacted>)",
            hex::encode(self.session_id)
        )
    }
}

impl GroupSecret {
    /// A fresh random sender key with a fresh session id.
    pub fn generate() -> GroupSecret {
        let mut session_id = [0u8; SESSION_ID_LEN];
        random_bytes(&mut session_id);
        let mut material = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
        random_bytes(material.as_mut_slice());
        GroupSecret {
            session_id,
            start_ms: now_ms(),
            material,
        }
    }

    /// The AEAD key this epoch seals with.
    pub fn session_key(&self) -> SessionKey {
        SessionKey::from_key_and_iv(&self.material[..KEY_LEN], &self.material[KEY_LEN..])
    }

    /// The announcement to send (encrypted) to a peer.
    pub fn announcement(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(ANNOUNCEMENT_LEN));
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.start_ms.to_be_bytes());
        out.extend_from_slice(self.material.as_slice());
        out
    }

    /// Parse an announcement (already authenticated by the pairwise channel).
    pub fn from_announcement(bytes: &[u8]) -> Result<GroupSecret> {
        if bytes.len() != ANNOUNCEMENT_LEN {
            return Err(Error::Authentication);
        }
        let mut session_id = [0u8; SESSION_ID_LEN];
        session_id.copy_from_slice(&bytes[..SESSION_ID_LEN]);
        let start_ms = u64::from_be_bytes(
            bytes[SESSION_ID_LEN..SESSION_ID_LEN + 8]
                .try_into()
                .expect("8 bytes"),
        );
        let mut material = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
        material.copy_from_slice(&bytes[SESSION_ID_LEN + 8..]);
        Ok(GroupSecret {
            session_id,
            start_ms,
            material,
        })
    }
}

struct Entry {
    session_id: [u8; SESSION_ID_LEN],
    start_ms: u64,
    key: Arc<SessionKey>,
    /// Set the first time a message under this key authenticates: the sender has
    /// switched to it.
    used: AtomicBool,
    /// When this key is erased (ms since the epoch); 0 while it has no end.
    retire_at_ms: AtomicU64,
    /// The key of the sender's tags for this node under this epoch (`sender_auth`).
    auth: Option<Arc<AuthKey>>,
    /// Messages sealed before this (sender's clock) were not sealed for this node: they
    /// are refused, so a copy recorded before this node held the key cannot be replayed
    /// to it (0: no bound).
    valid_from_ms: u64,
}

/// The sender keys this node received from its peers, by sender node id.
#[derive(Default)]
pub struct GroupKeys {
    senders: RwLock<HashMap<String, Vec<Entry>>>,
    grace_ms: AtomicU64,
    /// Set when the node enters DH mode: from then on it refuses plaintext.
    enabled: AtomicBool,
    /// With pinned identities: this node's recipient id; every DH-mode message must then
    /// carry a valid tag for it.
    sender_auth: OnceLock<[u8; RECIPIENT_ID_LEN]>,
}

impl GroupKeys {
    pub fn new(grace_ms: u64) -> GroupKeys {
        GroupKeys {
            senders: RwLock::new(HashMap::new()),
            grace_ms: AtomicU64::new(grace_ms),
            enabled: AtomicBool::new(false),
            sender_auth: OnceLock::new(),
        }
    }

    /// Require every DH-mode message to authenticate its sender to this node, `me`.
    pub fn require_sender_auth(&self, me: &str) {
        let _ = self.sender_auth.set(recipient_id(me));
    }

    /// This node's recipient id when sender authentication is required.
    pub fn sender_auth_id(&self) -> Option<[u8; RECIPIENT_ID_LEN]> {
        self.sender_auth.get().copied()
    }

    /// Enter DH mode (irreversible for this communicator).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Remember `sender`'s key `secret`. Returns false if it was already known.
    pub fn install(&self, sender: &str, secret: &GroupSecret) -> bool {
        self.install_handover(sender, secret, None, 0)
    }

    /// `install`, with the key of the sender's tags for this node under `secret` and the
    /// time (sender's clock) from which its messages under `secret` are accepted.
    pub fn install_handover(
        &self,
        sender: &str,
        secret: &GroupSecret,
        auth: Option<AuthKey>,
        valid_from_ms: u64,
    ) -> bool {
        let mut senders = self.senders.write();
        let entries = senders.entry(sender.to_owned()).or_default();
        if entries.iter().any(|e| e.session_id == secret.session_id) {
            return false;
        }
        if entries.len() >= KEYS_PER_SENDER {
            let oldest = (0..entries.len())
                .min_by_key(|&i| entries[i].start_ms)
                .expect("not empty");
            entries.swap_remove(oldest);
        }
        entries.push(Entry {
            session_id: secret.session_id,
            start_ms: secret.start_ms,
            key: Arc::new(secret.session_key()),
            used: AtomicBool::new(false),
            retire_at_ms: AtomicU64::new(0),
            auth: auth.map(Arc::new),
            valid_from_ms,
        });
        true
    }

    /// From when (sender's clock) messages under `sender`'s key `session_id` are accepted.
    pub fn valid_from(&self, sender: &str, session_id: &[u8; SESSION_ID_LEN]) -> u64 {
        self.senders
            .read()
            .get(sender)
            .and_then(|e| e.iter().find(|e| &e.session_id == session_id))
            .map_or(0, |e| e.valid_from_ms)
    }

    /// The key of `sender`'s tags for this node under its session `session_id`.
    pub fn auth_key(
        &self,
        sender: &str,
        session_id: &[u8; SESSION_ID_LEN],
    ) -> Option<Arc<AuthKey>> {
        self.senders
            .read()
            .get(sender)?
            .iter()
            .find(|e| &e.session_id == session_id)?
            .auth
            .clone()
    }

    /// The key of `sender`'s session `session_id`, unless unknown or erased. Changes
    /// nothing: the message it is asked for has not authenticated yet.
    pub fn lookup(
        &self,
        sender: &str,
        session_id: &[u8; SESSION_ID_LEN],
    ) -> Option<Arc<SessionKey>> {
        let senders = self.senders.read();
        let entry = senders
            .get(sender)?
            .iter()
            .find(|e| &e.session_id == session_id)?;
        let retire = entry.retire_at_ms.load(Ordering::Relaxed);
        if retire != 0 && retire <= now_ms() {
            return None;
        }
        Some(entry.key.clone())
    }

    /// Record that a message under `sender`'s key `session_id` authenticated: the sender
    /// has switched to it, so the first such call starts the grace period of that
    /// sender's older keys. Call only after the tag verified, or a forged packet naming a
    /// newer session would erase keys still in use.
    pub fn mark_used(&self, sender: &str, session_id: &[u8; SESSION_ID_LEN]) {
        let senders = self.senders.read();
        let Some(entries) = senders.get(sender) else {
            return;
        };
        let Some(entry) = entries.iter().find(|e| &e.session_id == session_id) else {
            return;
        };
        if !entry.used.swap(true, Ordering::Relaxed) {
            let at = now_ms() + self.grace_ms.load(Ordering::Relaxed);
            for older in entries.iter().filter(|e| e.start_ms < entry.start_ms) {
                let _ = older.retire_at_ms.compare_exchange(
                    0,
                    at.max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Erase every key whose grace period is over.
    pub fn sweep(&self) {
        let now = now_ms();
        let mut senders = self.senders.write();
        for entries in senders.values_mut() {
            entries.retain(|e| {
                let t = e.retire_at_ms.load(Ordering::Relaxed);
                t == 0 || t > now
            });
        }
        senders.retain(|_, entries| !entries.is_empty());
    }

    /// Schedule every key of `sender` for erasure after the grace period (the peer left
    /// or its channel was reset).
    pub fn retire_sender(&self, sender: &str) {
        let at = now_ms() + self.grace_ms.load(Ordering::Relaxed);
        if let Some(entries) = self.senders.read().get(sender) {
            for e in entries {
                let _ = e.retire_at_ms.compare_exchange(
                    0,
                    at.max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Whether any unexpired key of `sender` is held.
    pub fn has_sender(&self, sender: &str) -> bool {
        let now = now_ms();
        self.senders.read().get(sender).is_some_and(|entries| {
            entries.iter().any(|e| {
                let t = e.retire_at_ms.load(Ordering::Relaxed);
                t == 0 || t > now
            })
        })
    }

    /// Session ids currently held for `sender` (for tests and diagnostics; not secret).
    pub fn sessions_of(&self, sender: &str) -> Vec<[u8; SESSION_ID_LEN]> {
        self.senders
            .read()
            .get(sender)
            .map(|entries| entries.iter().map(|e| e.session_id).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_keys_are_erased_from_memory_when_dropped() {
        let g = GroupSecret::generate();
        let material = g.material.to_vec();
        assert!(crate::crypto::drop_leaves_no_trace(g, &material[..32]));
    }

    #[test]
    fn announcement_round_trip_carries_the_same_key() {
        let g = GroupSecret::generate();
        let parsed = GroupSecret::from_announcement(&g.announcement()).unwrap();
        assert_eq!(parsed.session_id, g.session_id);
        assert_eq!(parsed.start_ms, g.start_ms);
        let mut buf = *b"spikes";
        let tag = g.session_key().seal(7, b"aad", &mut buf);
        parsed
            .session_key()
            .open(7, b"aad", &mut buf, &tag)
            .unwrap();
        assert_eq!(&buf, b"spikes");
        assert!(GroupSecret::from_announcement(&g.announcement()[1..]).is_err());
        assert!(!format!("{g:?}").contains(&hex::encode(&g.material[..8])));
    }

    #[test]
    fn older_keys_are_erased_a_grace_period_after_the_newer_is_used() {
        let table = GroupKeys::new(0);
        let old = GroupSecret::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let new = GroupSecret::generate();
        assert!(table.install("n", &old));
        assert!(!table.install("n", &old));
        assert!(table.install("n", &new));
        assert!(table.lookup("n", &old.session_id).is_some());
        table.mark_used("n", &old.session_id);
        // Installing alone retires nothing: the sender may still seal with the old key.
        table.sweep();
        assert_eq!(table.sessions_of("n").len(), 2);
        // Nor does looking the newer key up (the message asking has not authenticated).
        assert!(table.lookup("n", &new.session_id).is_some());
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(table.lookup("n", &old.session_id).is_some());
        table.mark_used("n", &new.session_id);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(table.lookup("n", &old.session_id).is_none());
        table.sweep();
        assert_eq!(table.sessions_of("n"), vec![new.session_id]);
        assert!(table.lookup("m", &new.session_id).is_none());
        // Unknown senders and sessions are ignored.
        table.mark_used("m", &new.session_id);
        table.mark_used("n", &old.session_id);
        assert_eq!(table.sessions_of("n"), vec![new.session_id]);
    }

    #[test]
    fn retired_sender_keys_go_away() {
        let table = GroupKeys::new(0);
        let g = GroupSecret::generate();
        table.install("n", &g);
        assert!(table.has_sender("n"));
        table.retire_sender("n");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(!table.has_sender("n"));
        table.sweep();
        assert!(table.sessions_of("n").is_empty());
    }
}
