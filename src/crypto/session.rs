//! Per-sender sessions: sealing with a fresh key per communicator instance, and on the
//! receiving side deciding which messages to accept (key lookup, freshness, session
//! order, replay window). Replay state is per node: every consumer starts from what the
//! node already accepted (`NodeHistory`), so a subscription declared later does not
//! deliver a captured message again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::crypto::envelope::{self, Header, Kind, Mode, SESSION_ID_LEN};
use crate::crypto::group::{GroupKeys, GroupSecret};
pub use crate::crypto::keyring::KeyRing;
use crate::crypto::keys::{KeyId, SessionKey};
use crate::crypto::replay::ReplayWindow;
use crate::crypto::sender_auth::{self, recipient_id, AuthKey, RECIPIENT_ID_LEN};
use crate::crypto::{now_ms, random_bytes};
use crate::error::{Error, Result};

/// A sender opens a new session (new id, new key, counter from 0) after this many
/// messages. The counter is 64-bit, so this is not about nonce reuse but about the
/// amount of data under one GCM key (cf. the AES-GCM limits in RFC 8446 §5.5).
pub const MESSAGES_PER_SESSION: u64 = 1 << 32;
/// ... and after this many bytes sealed. RFC 8446 §5.5 bounds AES-GCM at 2^24.5 full
/// records of 2^14 bytes (about 2^38.5 bytes) per key; the CFRG AEAD-limits draft gives
/// the same order for an attacker advantage of 2^-57. 2^36 bytes (64 GiB) stays well
/// inside both.
pub const BYTES_PER_SESSION: u64 = 1 << 36;
/// At most this many sessions are remembered per sender (current + those retiring).
const SESSIONS_PER_SENDER: usize = 4;

/// Receiver tuning: the freshness window and the session grace (SECURITY.md, threat
/// model; `ZenohConfig(freshness_window=..., session_grace=...)`).
#[derive(Clone, Copy, Debug)]
pub struct ReceiverPolicy {
    /// A message sealed more than this long ago (or this far in the future, by the
    /// receiver's clock) is rejected. Assumes node clocks agree within this bound.
    pub freshness_ms: u64,
    /// After a sender starts a newer session, its older sessions stay valid this long
    /// (messages in flight), then are rejected.
    pub session_grace_ms: u64,
}

impl Default for ReceiverPolicy {
    fn default() -> Self {
        ReceiverPolicy {
            freshness_ms: 60_000,
            session_grace_ms: 5_000,
        }
    }
}

/// One sending session: a random id, a start time and a counter under one key.
struct SendSession {
    id: [u8; SESSION_ID_LEN],
    start_ms: u64,
    started: Instant,
    counter: AtomicU64,
    /// Bytes sealed under `key` so far (message lengths, headers included).
    bytes: AtomicU64,
    mode: Mode,
    key_id: KeyId,
    key: Option<SessionKey>,
    /// Mode 3: the tag keys of this epoch's recipients.
    recipients: Option<Arc<Recipients>>,
}

/// The recipients of one sender-key epoch and their tag keys (`sender_auth`).
type Recipients = RwLock<Vec<([u8; RECIPIENT_ID_LEN], AuthKey)>>;

impl SendSession {
    /// A DH-mode session sealing with the sender key `group`, from now on. Its timestamps
    /// count from this switch, not from when the key was drawn: handing a new key to every
    /// peer can take a while, and messages must not look that much older than they are.
    fn from_group(group: &GroupSecret, recipients: Option<Arc<Recipients>>) -> SendSession {
        let mode = if recipients.is_some() {
            Mode::DhAuth
        } else {
            Mode::Dh
        };
        let key = Some(group.session_key());
        SendSession::starting(group.session_id, mode, KeyId::default(), key, recipients)
    }

    fn new(node_id: &str, keys: &KeyRing) -> SendSession {
        let mut id = [0u8; SESSION_ID_LEN];
        random_bytes(&mut id);
        let psk = keys.sealing_key();
        let mode = if psk.is_some() {
            Mode::Psk
        } else {
            Mode::Plain
        };
        let key_id = psk.as_ref().map(|p| p.key_id()).unwrap_or_default();
        let key = psk.map(|p| p.sender_key(&id, node_id));
        SendSession::starting(id, mode, key_id, key, None)
    }

    /// A session that starts now, nothing sealed yet.
    fn starting(
        id: [u8; SESSION_ID_LEN],
        mode: Mode,
        key_id: KeyId,
        key: Option<SessionKey>,
        recipients: Option<Arc<Recipients>>,
    ) -> SendSession {
        SendSession {
            id,
            start_ms: now_ms(),
            started: Instant::now(),
            counter: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            mode,
            key_id,
            key,
            recipients,
        }
    }
}

/// Seals every message a node sends. Safe to use from many threads at once.
pub struct Sender {
    node_id: String,
    keys: Arc<KeyRing>,
    current: RwLock<Arc<SendSession>>,
    messages_per_session: u64,
    bytes_per_session: u64,
    /// With pinned identities: the tag keys of each sender-key epoch's recipients, by
    /// epoch (current and next); `None` without sender authentication.
    auth: Mutex<Option<HashMap<[u8; SESSION_ID_LEN], Arc<Recipients>>>>,
}

impl Sender {
    pub fn new(node_id: &str, keys: Arc<KeyRing>) -> Sender {
        Sender::with_session_limit(node_id, keys, MESSAGES_PER_SESSION)
    }

    /// A sender that opens a new session every `limit` messages (tests use small limits).
    pub fn with_session_limit(node_id: &str, keys: Arc<KeyRing>, limit: u64) -> Sender {
        Sender::with_limits(node_id, keys, limit, BYTES_PER_SESSION)
    }

    /// A sender that opens a new session every `messages` messages or `bytes` bytes.
    pub fn with_limits(node_id: &str, keys: Arc<KeyRing>, messages: u64, bytes: u64) -> Sender {
        let session = SendSession::new(node_id, &keys);
        Sender {
            node_id: node_id.to_owned(),
            current: RwLock::new(Arc::new(session)),
            keys,
            messages_per_session: messages.clamp(1, MESSAGES_PER_SESSION),
            bytes_per_session: bytes.clamp(1, BYTES_PER_SESSION),
            auth: Mutex::new(None),
        }
    }

    /// Authenticate this node as the sender of its DH-mode messages to each recipient
    /// (mode 3): pinned identities are configured.
    pub fn require_sender_auth(&self) {
        self.auth.lock().get_or_insert_with(HashMap::new);
    }

    /// Tag what is sealed under the sender key `epoch` for `peer` with `key`.
    pub fn add_auth_recipient(&self, epoch: &[u8; SESSION_ID_LEN], peer: &str, key: AuthKey) {
        let mut auth = self.auth.lock();
        let Some(epochs) = auth.as_mut() else { return };
        let recipients = epochs.entry(*epoch).or_default();
        let rid = recipient_id(peer);
        let mut list = recipients.write();
        list.retain(|(r, _)| *r != rid);
        list.push((rid, key));
    }

    /// Start a new session now (new id, new key from the current sealing PSK).
    pub fn new_session(&self) {
        *self.current.write() = Arc::new(SendSession::new(&self.node_id, &self.keys));
    }

    /// Seal from now on with the DH-mode sender key `group` (already handed to peers).
    pub fn use_group_key(&self, group: &GroupSecret) {
        // The same key again would restart its counter at 0: a nonce used twice.
        if self.current.read().id == group.session_id {
            return;
        }
        let recipients = self.auth.lock().as_mut().map(|epochs| {
            // Older epochs are sealed with no more.
            epochs.retain(|epoch, _| *epoch == group.session_id);
            epochs.entry(group.session_id).or_default().clone()
        });
        *self.current.write() = Arc::new(SendSession::from_group(group, recipients));
    }

    /// Bytes sealed under the current session's key (the key manager rekeys well before
    /// `BYTES_PER_SESSION`).
    pub fn sealed_bytes(&self) -> u64 {
        self.current.read().bytes.load(Ordering::Relaxed)
    }

    /// The current session's mode, key id, id and message count.
    pub fn current(&self) -> (Mode, KeyId, [u8; SESSION_ID_LEN], u64) {
        let s = self.current.read();
        (s.mode, s.key_id, s.id, s.counter.load(Ordering::Relaxed))
    }

    /// Seal one message. `binding` is extra associated data (the request a reply answers).
    /// Returns the wire bytes and the header's (session id, counter), which identify it.
    pub fn seal(
        &self,
        kind: Kind,
        topic: &str,
        binding: &[u8],
        format: u8,
        size_hint: usize,
        write_payload: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<(Vec<u8>, [u8; SESSION_ID_LEN], u64)> {
        let (session, counter, offset) = loop {
            let session = self.current.read().clone();
            let counter = session.counter.fetch_add(1, Ordering::Relaxed);
            // The stamp never lags this node's wall clock: receivers compare it with
            // handover times taken from that clock (`valid_from`) and with their own. A
            // monotonic clock alone falls behind after a suspend or a forward clock step,
            // and the rounding of start and elapsed time alone can lose a millisecond.
            let offset = session
                .started
                .elapsed()
                .as_millis()
                .max(u128::from(now_ms().saturating_sub(session.start_ms)));
            // Checked before use, never after: a counter or a byte count at the limit is
            // never sealed with.
            if counter < self.messages_per_session
                && session.bytes.load(Ordering::Relaxed) < self.bytes_per_session
                && offset < u128::from(u32::MAX)
            {
                break (session, counter, offset as u32);
            }
            let mut current = self.current.write();
            if Arc::ptr_eq(&current, &session) {
                *current = Arc::new(match session.mode {
                    // Peers cannot read a sender key they were not given; the key manager
                    // rekeys long before this (`rekey_after_messages`), so this is a backstop.
                    Mode::Dh | Mode::DhAuth => SendSession::from_group(
                        &GroupSecret::generate(),
                        session.recipients.clone(),
                    ),
                    _ => SendSession::new(&self.node_id, &self.keys),
                });
            }
        };
        let header = Header {
            mode: session.mode,
            kind,
            key_id: session.key_id,
            sender: &self.node_id,
            session_id: session.id,
            session_start_ms: session.start_ms,
            time_offset_ms: offset,
            counter,
        };
        let mut msg = envelope::seal(
            &header,
            topic,
            binding,
            session.key.as_ref(),
            format,
            size_hint,
            write_payload,
        )?;
        session.bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
        if let Some(recipients) = &session.recipients {
            sender_auth::append_trailer(&mut msg, topic, binding, &recipients.read());
        }
        Ok((msg, session.id, counter))
    }
}

/// A message that passed every check.
#[derive(Debug)]
pub struct Opened {
    pub sender: String,
    pub kind: Kind,
    pub session_id: [u8; SESSION_ID_LEN],
    pub counter: u64,
    pub timestamp_ms: u64,
    pub format: u8,
    /// The payload, starting at offset 0 (the format byte already removed).
    pub payload: Vec<u8>,
}

impl Opened {
    fn new(header: &Header<'_>, format: u8, payload: Vec<u8>) -> Opened {
        Opened {
            sender: header.sender.to_owned(),
            kind: header.kind,
            session_id: header.session_id,
            counter: header.counter,
            timestamp_ms: header.timestamp_ms(),
            format,
            payload,
        }
    }
}

#[derive(Clone)]
struct RecvSession {
    id: [u8; SESSION_ID_LEN],
    start_ms: u64,
    key_id: KeyId,
    /// PSK-derived keys are cached here; DH-mode keys live only in `GroupKeys`, so
    /// erasing them there erases them everywhere.
    key: Option<Arc<SessionKey>>,
    window: ReplayWindow,
    retire_at_ms: Option<u64>,
}

#[derive(Clone, Default)]
struct SenderHistory {
    newest_start_ms: u64,
    /// The latest start time of a session dropped from a full table: an unknown session
    /// that started no later may be that one, replayed, and is rejected.
    evicted_start_ms: Option<u64>,
    sessions: Vec<RecvSession>,
}

/// What a receiver remembers of the senders it accepted messages from: their sessions,
/// replay windows, and the session keys it derived from PSKs.
#[derive(Clone, Default)]
struct ReplayHistory {
    senders: HashMap<String, SenderHistory>,
    /// `KeyRing::erasures` when the cached keys were last checked against the ring.
    erasures_seen: u64,
}

impl ReplayHistory {
    /// Drop the cached session keys whose PSK the ring no longer accepts (after a
    /// rotation's grace). The sessions and their windows stay: they still reject replays.
    fn forget_revoked_keys(&mut self, keys: &KeyRing) {
        let erasures = keys.erasures.load(Ordering::Acquire);
        if erasures == self.erasures_seen {
            return;
        }
        self.erasures_seen = erasures;
        for s in self
            .senders
            .values_mut()
            .flat_map(|h| h.sessions.iter_mut())
        {
            if s.key.is_some() && !keys.accepts(s.key_id) {
                s.key = None;
            }
        }
    }

    /// The cached key of the session `header` names, if any.
    fn cached_key(&self, header: &Header<'_>) -> Option<Arc<SessionKey>> {
        self.senders
            .get(header.sender)?
            .sessions
            .iter()
            .find(|s| s.id == header.session_id && s.key_id == header.key_id)
            .and_then(|s| s.key.clone())
    }

    /// Record the authentic, fresh message `header` unless it is a replay or comes from a
    /// session older than the sender's newest.
    fn accept(
        &mut self,
        header: &Header<'_>,
        key: Option<Arc<SessionKey>>,
        grace_ms: u64,
        now: u64,
    ) -> Result<()> {
        if !self.senders.contains_key(header.sender) {
            self.senders
                .insert(header.sender.to_owned(), SenderHistory::default());
        }
        let history = self.senders.get_mut(header.sender).expect("inserted above");
        history
            .sessions
            .retain(|s| s.retire_at_ms.is_none_or(|t| t > now));
        if let Some(s) = history
            .sessions
            .iter_mut()
            .find(|s| s.id == header.session_id)
        {
            return if s.window.accept(header.counter) {
                Ok(())
            } else {
                Err(Error::Replay)
            };
        }
        // A session we do not know: either the sender's newest, or an old one replayed.
        // Start times can tie (instances of one node id started in the same millisecond),
        // so one that ties with an evicted session is refused too: failing closed costs a
        // session only when more than `SESSIONS_PER_SENDER` start within one millisecond.
        if header.session_start_ms < history.newest_start_ms
            || history
                .evicted_start_ms
                .is_some_and(|t| header.session_start_ms <= t)
        {
            return Err(Error::Replay);
        }
        if header.session_start_ms > history.newest_start_ms {
            let retire_at = now + grace_ms;
            for s in &mut history.sessions {
                s.retire_at_ms.get_or_insert(retire_at);
            }
            history.newest_start_ms = header.session_start_ms;
        }
        if history.sessions.len() >= SESSIONS_PER_SENDER {
            let oldest = (0..history.sessions.len())
                .min_by_key(|&i| history.sessions[i].start_ms)
                .expect("not empty");
            let evicted = history.sessions.swap_remove(oldest).start_ms;
            history.evicted_start_ms = history.evicted_start_ms.max(Some(evicted));
        }
        let mut window = ReplayWindow::default();
        window.accept(header.counter);
        history.sessions.push(RecvSession {
            id: header.session_id,
            start_ms: header.session_start_ms,
            key_id: header.key_id,
            key,
            window,
            retire_at_ms: None,
        });
        Ok(())
    }
}

/// Everything a node's consumers accepted. A consumer declared later starts from a copy,
/// so it refuses what the node already delivered; consumers declared together each keep
/// their own history too, so a message that matches two subscriptions reaches both.
#[derive(Default)]
pub struct NodeHistory {
    history: Mutex<ReplayHistory>,
}

impl NodeHistory {
    /// A copy to start a new consumer's history from.
    fn snapshot(&self, keys: &KeyRing) -> ReplayHistory {
        let mut history = self.history.lock();
        history.forget_revoked_keys(keys);
        history.clone()
    }

    /// Add a message that one of the node's consumers accepted (another may have already).
    fn record(
        &self,
        header: &Header<'_>,
        key: Option<Arc<SessionKey>>,
        keys: &KeyRing,
        grace_ms: u64,
        now: u64,
    ) {
        let mut history = self.history.lock();
        history.forget_revoked_keys(keys);
        let _ = history.accept(header, key, grace_ms, now);
    }
}

/// Decides which messages one consumer (a subscription, a queryable) accepts.
pub struct Receiver {
    keys: Arc<KeyRing>,
    group: Option<Arc<GroupKeys>>,
    policy: ReceiverPolicy,
    history: Mutex<ReplayHistory>,
    /// The node's history, which this consumer started from and adds to.
    node: Option<Arc<NodeHistory>>,
}

impl Receiver {
    pub fn new(keys: Arc<KeyRing>, policy: ReceiverPolicy) -> Receiver {
        Receiver {
            keys,
            group: None,
            policy,
            history: Mutex::new(ReplayHistory::default()),
            node: None,
        }
    }

    /// A receiver that also accepts DH-mode messages under the sender keys in `group`
    /// once `group` is enabled (the node entered DH mode).
    pub fn with_group(
        keys: Arc<KeyRing>,
        group: Arc<GroupKeys>,
        policy: ReceiverPolicy,
    ) -> Receiver {
        Receiver {
            group: Some(group),
            ..Receiver::new(keys, policy)
        }
    }

    /// A consumer of a node whose accepted messages are in `node`: it refuses those as
    /// replays, and adds what it accepts.
    pub fn for_node(
        keys: Arc<KeyRing>,
        group: Arc<GroupKeys>,
        policy: ReceiverPolicy,
        node: &Arc<NodeHistory>,
    ) -> Receiver {
        Receiver {
            history: Mutex::new(node.snapshot(&keys)),
            node: Some(node.clone()),
            ..Receiver::with_group(keys, group, policy)
        }
    }

    /// Check and open one message received on `topic`.
    ///
    /// Errors: `Authentication` (malformed, wrong key, tampered, wrong kind, plaintext
    /// while we hold a key, PSK mode while in DH mode, under a PSK no longer accepted),
    /// `NoKey` (encrypted under a PSK while we hold none), `NoSession` (sealed under DH
    /// keys by a sender, as it claims, we hold no key of: for logs only), `Replay` (authentic but already seen, too
    /// old, or from a retired session). Nothing changes before the tag verified.
    pub fn open(&self, msg: &[u8], topic: &str, binding: &[u8], kind: Kind) -> Result<Opened> {
        let (header, header_len) = Header::parse(msg)?;
        if header.kind != kind {
            return Err(Error::Authentication);
        }
        let (msg, trailer) = match header.mode {
            Mode::DhAuth => sender_auth::split_trailer(msg)?,
            _ => (msg, &[][..]),
        };
        let group = self.group.as_ref().filter(|g| g.is_enabled());
        let has_key = self.keys.has_key() || group.is_some();
        let (key, cache) = match (header.mode, has_key) {
            (Mode::Plain, false) => return plain(&header, msg, header_len),
            (Mode::Plain, true) => return Err(Error::Authentication),
            (Mode::Dh | Mode::DhAuth, false) => return Err(no_session(&header)),
            (_, false) => return Err(Error::NoKey),
            // SECURITY.md: a node in DH mode accepts no PSK-mode data. Any holder of the
            // PSK could seal such a message under any node id.
            (Mode::Psk, true) if group.is_some() => return Err(Error::Authentication),
            (Mode::Dh | Mode::DhAuth, true) => {
                // No key: this sender has no session with us (or its epoch was erased).
                let group = group.ok_or_else(|| no_session(&header))?;
                if !group.has_sender(header.sender) {
                    return Err(no_session(&header));
                }
                // With pinned identities, sender keys prove membership only: every message
                // must also carry the sender's tag for this node.
                if group.sender_auth_id().is_some() && header.mode != Mode::DhAuth {
                    return Err(Error::Authentication);
                }
                let key = group
                    .lookup(header.sender, &header.session_id)
                    .ok_or(Error::Authentication)?;
                (key, false)
            }
            (Mode::Psk, true) => {
                // A key cached before a rotation opens nothing once its PSK is revoked.
                if !self.keys.accepts(header.key_id) {
                    return Err(Error::Authentication);
                }
                let cached = self.history.lock().cached_key(&header);
                match cached {
                    Some(key) => (key, true),
                    None => {
                        let psk = self
                            .keys
                            .by_id(header.key_id)
                            .ok_or(Error::Authentication)?;
                        (
                            Arc::new(psk.sender_key(&header.session_id, header.sender)),
                            true,
                        )
                    }
                }
            }
        };
        let mut plaintext = envelope::open(msg, header_len, header.counter, topic, binding, &key)?;
        if let Some((group, me)) = group.and_then(|g| Some((g, g.sender_auth_id()?))) {
            let auth = group
                .auth_key(header.sender, &header.session_id)
                .ok_or(Error::Authentication)?;
            if !sender_auth::verify(msg, trailer, topic, binding, &me, &auth) {
                return Err(Error::Authentication);
            }
        }
        if let Some(group) = group.filter(|_| matches!(header.mode, Mode::Dh | Mode::DhAuth)) {
            // Sealed before this node was handed the key: not for it (a recorded copy).
            if header.timestamp_ms() < group.valid_from(header.sender, &header.session_id) {
                return Err(Error::Replay);
            }
        }
        // Authentic from here on: only now may the replay state change.
        self.accept(&header, cache.then_some(key))?;
        if matches!(header.mode, Mode::Dh | Mode::DhAuth) {
            if let Some(group) = group {
                group.mark_used(header.sender, &header.session_id);
            }
        }
        let (format, len) = envelope::split_format(&plaintext)?;
        plaintext.truncate(len);
        Ok(Opened::new(&header, format, plaintext))
    }

    fn accept(&self, header: &Header<'_>, key: Option<Arc<SessionKey>>) -> Result<()> {
        let now = now_ms();
        let ts = header.timestamp_ms();
        if ts.saturating_add(self.policy.freshness_ms) < now
            || ts > now.saturating_add(self.policy.freshness_ms)
        {
            return Err(Error::Replay);
        }
        let grace = self.policy.session_grace_ms;
        {
            let mut history = self.history.lock();
            history.forget_revoked_keys(&self.keys);
            history.accept(header, key.clone(), grace, now)?;
        }
        if let Some(node) = &self.node {
            node.record(header, key, &self.keys, grace, now);
        }
        Ok(())
    }
}

fn no_session(header: &Header<'_>) -> Error {
    Error::NoSession(header.sender.to_owned())
}

fn plain(header: &Header<'_>, msg: &[u8], header_len: usize) -> Result<Opened> {
    let body = &msg[header_len..];
    let (format, len) = envelope::split_format(body)?;
    Ok(Opened::new(header, format, body[..len].to_vec()))
}

#[cfg(test)]
mod tests;
