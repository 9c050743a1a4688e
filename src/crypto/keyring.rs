//! The pre-shared keys a node holds, and PSK rotation: which key seals new sessions,
//! which keys are still accepted, and when an old one is erased.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::crypto::keys::{KeyId, Psk};
use crate::crypto::now_ms;

/// One PSK of a `KeyRing` and when it may be used.
#[derive(Debug)]
struct RingEntry {
    psk: Arc<Psk>,
    /// New sessions seal with the newest key whose `seal_from_ms` has come.
    seal_from_ms: u64,
    /// Messages under this key are accepted until then (`u64::MAX`: no end).
    accept_until_ms: u64,
}

/// The pre-shared keys a node holds: one seals, all of them open (so a rotation can keep
/// the previous key valid for a while).
#[derive(Default, Debug)]
pub struct KeyRing {
    psks: RwLock<Vec<RingEntry>>,
    /// How many times `sweep` erased keys: receivers compare it with what they last saw
    /// to know when to drop the session keys they derived from erased PSKs.
    pub(super) erasures: AtomicU64,
}

impl KeyRing {
    pub fn new(psk: Option<Psk>) -> KeyRing {
        KeyRing {
            psks: RwLock::new(
                psk.into_iter()
                    .map(|p| RingEntry {
                        psk: Arc::new(p),
                        seal_from_ms: 0,
                        accept_until_ms: u64::MAX,
                    })
                    .collect(),
            ),
            erasures: AtomicU64::new(0),
        }
    }

    pub fn has_key(&self) -> bool {
        !self.psks.read().is_empty()
    }

    /// The key new sessions seal with.
    pub fn sealing_key(&self) -> Option<Arc<Psk>> {
        let now = now_ms();
        self.psks
            .read()
            .iter()
            .filter(|e| e.seal_from_ms <= now)
            .max_by_key(|e| e.seal_from_ms)
            .map(|e| e.psk.clone())
    }

    /// The key with identifier `id`, while it is accepted.
    pub fn by_id(&self, id: KeyId) -> Option<Arc<Psk>> {
        let now = now_ms();
        self.psks
            .read()
            .iter()
            .find(|e| e.psk.key_id() == id && e.accept_until_ms > now)
            .map(|e| e.psk.clone())
    }

    /// Whether messages under the key `id` are accepted now (`by_id` without the key).
    pub fn accepts(&self, id: KeyId) -> bool {
        let now = now_ms();
        self.psks
            .read()
            .iter()
            .any(|e| e.psk.key_id() == id && e.accept_until_ms > now)
    }

    /// Rotate to `new`: accepted at once, sealed with from `seal_after_ms` on; every older
    /// key stays accepted until `grace_ms` after that, then is erased by `sweep`.
    /// Rotating to a key already held only changes those times.
    pub fn rotate(&self, new: Psk, seal_after_ms: u64, grace_ms: u64) {
        let now = now_ms();
        let seal_from = now.saturating_add(seal_after_ms);
        let old_until = seal_from.saturating_add(grace_ms);
        let mut psks = self.psks.write();
        psks.retain(|e| e.psk.key_id() != new.key_id());
        for e in psks.iter_mut() {
            e.accept_until_ms = e.accept_until_ms.min(old_until);
        }
        psks.push(RingEntry {
            psk: Arc::new(new),
            seal_from_ms: seal_from,
            accept_until_ms: u64::MAX,
        });
    }

    /// Erase the keys whose acceptance period is over.
    pub fn sweep(&self) {
        let now = now_ms();
        let mut psks = self.psks.write();
        if psks.iter().any(|e| e.accept_until_ms <= now) {
            psks.retain(|e| e.accept_until_ms > now);
            self.erasures.fetch_add(1, Ordering::Release);
        }
    }

    /// Identifiers of the keys currently accepted, sealing key first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        let sealing = self.sealing_key().map(|p| p.key_id());
        let mut ids: Vec<KeyId> = sealing.into_iter().collect();
        let now = now_ms();
        for e in self.psks.read().iter() {
            if e.accept_until_ms > now && Some(e.psk.key_id()) != sealing {
                ids.push(e.psk.key_id());
            }
        }
        ids
    }
}
