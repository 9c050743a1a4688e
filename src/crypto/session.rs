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
mod tests {
    use super::*;
    use crate::crypto::keys::Psk;

    const PSK: &str = "8f1a7b3c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn ring(hex: Option<&str>) -> Arc<KeyRing> {
        Arc::new(KeyRing::new(hex.map(|h| Psk::from_hex(h).unwrap())))
    }

    /// A publication as a subscription on `topic` opens it.
    fn open(rx: &Receiver, msg: &[u8], topic: &str) -> Result<Opened> {
        rx.open(msg, topic, b"", Kind::Publish)
    }

    fn seal(s: &Sender, topic: &str, body: &[u8]) -> Vec<u8> {
        s.seal(Kind::Publish, topic, b"", 2, body.len(), |b| {
            b.extend_from_slice(body);
            Ok(())
        })
        .unwrap()
        .0
    }

    #[test]
    fn round_trip_and_replay() {
        let keys = ring(Some(PSK));
        let tx = Sender::new("node-1", keys.clone());
        let rx = Receiver::new(keys, ReceiverPolicy::default());
        let m = seal(&tx, "ns/t", b"abc");
        let o = open(&rx, &m, "ns/t").unwrap();
        assert_eq!(
            (o.sender.as_str(), o.format, &o.payload[..]),
            ("node-1", 2, &b"abc"[..])
        );
        assert!(matches!(open(&rx, &m, "ns/t"), Err(Error::Replay)));
        assert!(matches!(
            open(&rx, &m, "ns/other"),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            rx.open(&m, "ns/t", b"", Kind::Request),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn reordered_messages_are_accepted() {
        let keys = ring(Some(PSK));
        let tx = Sender::new("n", keys.clone());
        let rx = Receiver::new(keys, ReceiverPolicy::default());
        let msgs: Vec<_> = (0..100).map(|_| seal(&tx, "t", b"x")).collect();
        for m in msgs.iter().rev() {
            open(&rx, m, "t").unwrap();
        }
        for m in &msgs {
            assert!(matches!(open(&rx, m, "t"), Err(Error::Replay)));
        }
    }

    #[test]
    fn wrong_psk_plaintext_and_missing_key() {
        let tx = Sender::new("n", ring(Some(PSK)));
        let other = Receiver::new(
            ring(Some(&PSK.replace("8", "9"))),
            ReceiverPolicy::default(),
        );
        let m = seal(&tx, "t", b"x");
        assert!(matches!(open(&other, &m, "t"), Err(Error::Authentication)));
        let keyless = Receiver::new(ring(None), ReceiverPolicy::default());
        assert!(matches!(open(&keyless, &m, "t"), Err(Error::NoKey)));

        let plain_tx = Sender::new("p", ring(None));
        let pm = seal(&plain_tx, "t", b"clear");
        let o = open(&keyless, &pm, "t").unwrap();
        assert_eq!(o.payload, b"clear");
        let keyed = Receiver::new(ring(Some(PSK)), ReceiverPolicy::default());
        assert!(matches!(open(&keyed, &pm, "t"), Err(Error::Authentication)));
    }

    #[test]
    fn restarted_sender_is_accepted_and_its_old_session_rejected() {
        let keys = ring(Some(PSK));
        let policy = ReceiverPolicy {
            freshness_ms: 60_000,
            session_grace_ms: 0,
        };
        let rx = Receiver::new(keys.clone(), policy);
        let first = Sender::new("n", keys.clone());
        let old: Vec<_> = (0..3).map(|_| seal(&first, "t", b"old")).collect();
        open(&rx, &old[0], "t").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let restarted = Sender::new("n", keys);
        // The new session's counter starts again at 0: no false replay.
        open(&rx, &seal(&restarted, "t", b"new"), "t").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        // Unseen messages of the retired session (grace 0) are now rejected.
        assert!(matches!(open(&rx, &old[1], "t"), Err(Error::Replay)));
        // A receiver that never saw the new session would still reject it after seeing it.
        let fresh = Receiver::new(ring(Some(PSK)), policy);
        open(&fresh, &seal(&restarted, "t", b"n2"), "t").unwrap();
        assert!(matches!(open(&fresh, &old[2], "t"), Err(Error::Replay)));
    }

    #[test]
    fn stale_messages_are_rejected() {
        let keys = ring(Some(PSK));
        let tx = Sender::new("n", keys.clone());
        let m = seal(&tx, "t", b"x");
        let strict = Receiver::new(
            keys,
            ReceiverPolicy {
                freshness_ms: 0,
                session_grace_ms: 0,
            },
        );
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(matches!(open(&strict, &m, "t"), Err(Error::Replay)));
    }

    #[test]
    fn many_senders_sharing_a_psk_never_share_a_nonce_stream() {
        let keys = ring(Some(PSK));
        let a = Sender::new("n", keys.clone());
        let b = Sender::new("n", keys);
        // Same node id, same counter, same plaintext: different ciphertexts.
        let ma = seal(&a, "t", b"same");
        let mb = seal(&b, "t", b"same");
        let (ha, la) = Header::parse(&ma).unwrap();
        let (hb, _) = Header::parse(&mb).unwrap();
        assert_eq!(ha.counter, hb.counter);
        assert_ne!(ha.session_id, hb.session_id);
        assert_ne!(ma[la..], mb[la..]);
    }

    #[test]
    fn session_is_renewed_at_the_message_limit_and_receivers_follow() {
        let keys = ring(Some(PSK));
        let tx = Sender::with_session_limit("n", keys.clone(), 3);
        let rx = Receiver::new(keys, ReceiverPolicy::default());
        let headers: Vec<_> = (0..7)
            .map(|i| {
                let m = seal(&tx, "t", &[i]);
                assert_eq!(open(&rx, &m, "t").unwrap().payload, [i]);
                let (h, _) = Header::parse(&m).unwrap();
                (h.session_id, h.counter)
            })
            .collect();
        let counters: Vec<u64> = headers.iter().map(|h| h.1).collect();
        assert_eq!(counters, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(headers[0].0, headers[2].0);
        assert_ne!(headers[2].0, headers[3].0);
        assert_ne!(headers[3].0, headers[6].0);
    }

    #[test]
    fn psk_rotation_accepts_both_keys_for_the_grace_period_only() {
        let old = Psk::from_hex(PSK).unwrap();
        let new = Psk::from_hex(&PSK.replace('8', "7")).unwrap();
        let (old_id, new_id) = (old.key_id(), new.key_id());
        let ring = KeyRing::new(Some(old));
        ring.rotate(new.clone(), 50, 30);
        // Accepted at once, sealed with only after `seal_after`.
        assert_eq!(ring.sealing_key().unwrap().key_id(), old_id);
        assert!(ring.by_id(new_id).is_some() && ring.by_id(old_id).is_some());
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(ring.sealing_key().unwrap().key_id(), new_id);
        assert_eq!(ring.key_ids(), vec![new_id, old_id]);
        std::thread::sleep(std::time::Duration::from_millis(30));
        ring.sweep();
        assert!(ring.by_id(old_id).is_none());
        assert_eq!(ring.key_ids(), vec![new_id]);
        // Rotating to the key already held changes nothing else.
        ring.rotate(new, 0, 0);
        assert_eq!(ring.key_ids(), vec![new_id]);
    }

    #[test]
    fn dh_mode_opens_only_announced_sender_keys_and_refuses_plaintext() {
        let keys = ring(None);
        let group = Arc::new(GroupKeys::new(5_000));
        let rx = Receiver::with_group(keys.clone(), group.clone(), ReceiverPolicy::default());
        let plain = seal(&Sender::new("p", keys.clone()), "t", b"clear");
        assert!(open(&rx, &plain, "t").is_ok());
        group.enable();
        assert!(matches!(open(&rx, &plain, "t"), Err(Error::Authentication)));
        let tx = Sender::new("n", keys);
        let secret = GroupSecret::generate();
        tx.use_group_key(&secret);
        let m = seal(&tx, "t", b"dh");
        assert_eq!(Header::parse(&m).unwrap().0.mode, Mode::Dh);
        // Not announced yet: no session with this sender (named for the log).
        assert!(matches!(open(&rx, &m, "t"), Err(Error::NoSession(s)) if s == "n"));
        group.install("n", &secret);
        assert_eq!(open(&rx, &m, "t").unwrap().payload, b"dh");
        // Another node cannot claim the key announced for "n".
        let impostor = Sender::new("x", ring(None));
        impostor.use_group_key(&secret);
        assert!(open(&rx, &seal(&impostor, "t", b"i"), "t").is_err());
        // Nor can another key be passed off under the name "n": that fails its tag.
        let forger = Sender::new("n", ring(None));
        forger.use_group_key(&GroupSecret::generate());
        assert!(matches!(
            open(&rx, &seal(&forger, "t", b"f"), "t"),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn a_session_evicted_from_a_full_table_is_not_accepted_again() {
        // Several instances of one node id can start in the same millisecond; their
        // sessions then tie on start time. Once more of them are seen than the table
        // holds, the evicted one must stay rejected: it is not a newer session.
        let psk = Psk::from_hex(PSK).unwrap();
        let rx = Receiver::new(ring(Some(PSK)), ReceiverPolicy::default());
        let start = now_ms();
        let msg = |session: u8, counter: u64| {
            let header = Header {
                mode: Mode::Psk,
                kind: Kind::Publish,
                key_id: psk.key_id(),
                sender: "n",
                session_id: [session; SESSION_ID_LEN],
                session_start_ms: start,
                time_offset_ms: 0,
                counter,
            };
            let key = psk.sender_key(&header.session_id, "n");
            envelope::seal(&header, "t", b"", Some(&key), 2, 1, |b| {
                b.push(session);
                Ok(())
            })
            .unwrap()
        };
        let first = msg(0, 0);
        open(&rx, &first, "t").unwrap();
        for session in 1..=SESSIONS_PER_SENDER as u8 {
            open(&rx, &msg(session, 0), "t").unwrap();
        }
        assert!(matches!(open(&rx, &first, "t"), Err(Error::Replay)));
        assert!(matches!(open(&rx, &msg(0, 1), "t"), Err(Error::Replay)));
        // The sessions still held keep working.
        for session in 1..=SESSIONS_PER_SENDER as u8 {
            open(&rx, &msg(session, 1), "t").unwrap();
        }
    }

    /// Two DH sender keys of "n", `old` drawn first, both installed in an enabled table.
    fn two_epochs(grace_ms: u64) -> (Arc<GroupKeys>, GroupSecret, GroupSecret) {
        let group = Arc::new(GroupKeys::new(grace_ms));
        group.enable();
        let old = GroupSecret::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let new = GroupSecret::generate();
        assert!(group.install("n", &old) && group.install("n", &new));
        (group, old, new)
    }

    fn dh_sender(secret: &GroupSecret) -> Sender {
        let tx = Sender::new("n", ring(None));
        tx.use_group_key(secret);
        tx
    }

    #[test]
    fn a_forged_packet_naming_a_newer_sender_key_retires_nothing() {
        let (group, old, new) = two_epochs(0);
        let rx = Receiver::with_group(ring(None), group.clone(), ReceiverPolicy::default());
        let (old_tx, new_tx) = (dh_sender(&old), dh_sender(&new));
        open(&rx, &seal(&old_tx, "t", b"1"), "t").unwrap();
        let genuine = seal(&new_tx, "t", b"new");
        let mut junk = genuine.clone();
        *junk.last_mut().unwrap() ^= 1; // the tag no longer verifies
        assert!(matches!(open(&rx, &junk, "t"), Err(Error::Authentication)));
        std::thread::sleep(std::time::Duration::from_millis(3));
        group.sweep();
        assert_eq!(group.sessions_of("n").len(), 2);
        open(&rx, &seal(&old_tx, "t", b"2"), "t").unwrap();
        // The genuine message under the newer key does start the older key's grace (0).
        open(&rx, &genuine, "t").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(matches!(
            open(&rx, &seal(&old_tx, "t", b"3"), "t"),
            Err(Error::Authentication)
        ));
        group.sweep();
        assert_eq!(group.sessions_of("n"), vec![new.session_id]);
    }

    #[test]
    fn a_sender_key_drawn_long_before_its_use_is_fresh_when_used() {
        // As after a slow rekey: the key was drawn ten minutes before the switch to it.
        let mut announcement = GroupSecret::generate().announcement().to_vec();
        let drawn = now_ms() - 600_000;
        announcement[SESSION_ID_LEN..SESSION_ID_LEN + 8].copy_from_slice(&drawn.to_be_bytes());
        let secret = GroupSecret::from_announcement(&announcement).unwrap();
        let group = Arc::new(GroupKeys::new(5_000));
        group.enable();
        group.install("n", &secret);
        let policy = ReceiverPolicy {
            freshness_ms: 1_000,
            session_grace_ms: 5_000,
        };
        let rx = Receiver::with_group(ring(None), group, policy);
        let tx = dh_sender(&secret);
        let m = seal(&tx, "t", b"now");
        let (header, _) = Header::parse(&m).unwrap();
        assert!(header.session_start_ms >= drawn + 600_000);
        assert_eq!(open(&rx, &m, "t").unwrap().payload, b"now");
    }

    #[test]
    fn a_rotated_out_psk_opens_nothing_after_the_grace_cached_keys_included() {
        let (psk1, psk2) = (PSK, PSK.replace('8', "7"));
        let keys = ring(Some(psk1));
        let node = Arc::new(NodeHistory::default());
        let rx = Receiver::for_node(
            keys.clone(),
            Arc::new(GroupKeys::new(5_000)),
            ReceiverPolicy::default(),
            &node,
        );
        // `c` keeps the old key; its session key is cached on first sight.
        let c = Sender::new("c", ring(Some(psk1)));
        open(&rx, &seal(&c, "t", b"1"), "t").unwrap();
        keys.rotate(Psk::from_hex(&psk2).unwrap(), 0, 20);
        open(&rx, &seal(&c, "t", b"2"), "t").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(matches!(
            open(&rx, &seal(&c, "t", b"3"), "t"),
            Err(Error::Authentication)
        ));
        // Once the ring erased the old PSK, the keys derived from it go on the next
        // authentic message, from the consumer's history and the node's alike.
        keys.sweep();
        let b = Sender::new("b", ring(Some(&psk2)));
        open(&rx, &seal(&b, "t", b"new"), "t").unwrap();
        let cached = |h: &ReplayHistory| h.senders["c"].sessions.iter().any(|s| s.key.is_some());
        assert!(!cached(&rx.history.lock()));
        assert!(!cached(&node.history.lock()));
        assert!(matches!(
            open(&rx, &seal(&c, "t", b"4"), "t"),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn a_node_in_dh_mode_accepts_no_psk_mode_data() {
        // The node holds the PSK too (a PSK-authenticated DH setup), as does the forger.
        let keys = ring(Some(PSK));
        let group = Arc::new(GroupKeys::new(5_000));
        let forger = Sender::new("node-1", ring(Some(PSK)));
        let before = Receiver::with_group(keys.clone(), group.clone(), ReceiverPolicy::default());
        open(&before, &seal(&forger, "t", b"psk"), "t").unwrap();
        group.enable();
        let rx = Receiver::with_group(keys, group, ReceiverPolicy::default());
        for kind in [Kind::Publish, Kind::Request] {
            let m = forger
                .seal(kind, "t", b"", 2, 1, |b| {
                    b.push(1);
                    Ok(())
                })
                .unwrap()
                .0;
            assert!(matches!(
                rx.open(&m, "t", b"", kind),
                Err(Error::Authentication)
            ));
            assert!(matches!(
                before.open(&m, "t", b"", kind),
                Err(Error::Authentication)
            ));
        }
        // Refused before any state changed.
        assert!(rx.history.lock().senders.is_empty());
        assert_eq!(
            before.history.lock().senders["node-1"].sessions[0]
                .window
                .newest(),
            0
        );
    }

    #[test]
    fn a_consumer_started_later_refuses_what_the_node_already_accepted() {
        let keys = ring(Some(PSK));
        let group = Arc::new(GroupKeys::new(5_000));
        let node = Arc::new(NodeHistory::default());
        let consumer = || {
            Receiver::for_node(
                keys.clone(),
                group.clone(),
                ReceiverPolicy::default(),
                &node,
            )
        };
        let tx = Sender::new("n", keys.clone());
        let first = consumer();
        let m1 = seal(&tx, "t", b"1");
        open(&first, &m1, "t").unwrap();
        let second = consumer();
        assert!(matches!(open(&second, &m1, "t"), Err(Error::Replay)));
        // A message both match reaches each once.
        let m2 = seal(&tx, "t", b"2");
        open(&first, &m2, "t").unwrap();
        open(&second, &m2, "t").unwrap();
        for rx in [&first, &second, &consumer()] {
            assert!(matches!(open(rx, &m2, "t"), Err(Error::Replay)));
        }
        // Receivers of their own (`Receiver::new`) know nothing of the node.
        Receiver::new(keys.clone(), ReceiverPolicy::default())
            .open(&m1, "t", b"", Kind::Publish)
            .unwrap();
    }

    /// With pinned identities, holding a sender's key (every member does) is not enough
    /// to pass as that sender: node-c seals "from node-a" under a's sender key, and
    /// node-b, which requires sender tags, refuses it; a's own messages pass.
    #[test]
    fn a_member_cannot_make_another_accept_a_message_as_coming_from_a_third() {
        use zeroize::Zeroizing;
        let a_key = GroupSecret::generate();
        let tag_key = |b: u8| AuthKey::new(&Zeroizing::new([b; 32]));
        // node-a hands node-b its sender key and the key of its tags for b (0x0b), and
        // node-c the same sender key with another tag key (0x0c).
        let a = Sender::new("node-a", ring(None));
        a.require_sender_auth();
        a.add_auth_recipient(&a_key.session_id, "node-b", tag_key(0x0b));
        a.add_auth_recipient(&a_key.session_id, "node-c", tag_key(0x0c));
        a.use_group_key(&a_key);
        let b_group = Arc::new(GroupKeys::new(5_000));
        b_group.enable();
        b_group.require_sender_auth("node-b");
        b_group.install_handover("node-a", &a_key, Some(tag_key(0x0b)), 0);
        let b = Receiver::with_group(ring(None), b_group.clone(), ReceiverPolicy::default());
        let genuine = seal(&a, "t", b"from a");
        assert_eq!(Header::parse(&genuine).unwrap().0.mode, Mode::DhAuth);
        assert_eq!(open(&b, &genuine, "t").unwrap().payload, b"from a");

        // node-c: a's sender key, its own tag key for b (it does not hold a's).
        let forger = Sender::new("node-a", ring(None));
        forger.require_sender_auth();
        forger.add_auth_recipient(&a_key.session_id, "node-b", tag_key(0x0c));
        forger.use_group_key(&a_key);
        let forged = seal(&forger, "t", b"forged");
        assert!(matches!(open(&b, &forged, "t"), Err(Error::Authentication)));
        // Without any tag (mode 2), or with b's entry removed, it is refused too.
        let untagged = seal(&dh_sender(&a_key), "t", b"untagged");
        assert!(open(&b, &untagged, "t").is_err());
        let mut stripped = genuine.clone();
        let (sealed, _) = sender_auth::split_trailer(&genuine).unwrap();
        stripped.truncate(sealed.len());
        stripped.push(0);
        assert!(open(&b, &stripped, "t").is_err());
        // A genuine message moved to another topic fails its tag as well as its AEAD.
        assert!(open(&b, &seal(&a, "t", b"x"), "u").is_err());
    }

    #[test]
    fn session_is_renewed_at_the_byte_limit_too() {
        let keys = ring(Some(PSK));
        let tx = Sender::with_limits("n", keys.clone(), u64::MAX, 200);
        let rx = Receiver::new(keys, ReceiverPolicy::default());
        let sessions: Vec<_> = (0..6)
            .map(|_| {
                let m = seal(&tx, "t", &[7; 90]);
                open(&rx, &m, "t").unwrap();
                Header::parse(&m).unwrap().0.session_id
            })
            .collect();
        // About 150 bytes a message: a new key after every two.
        assert_eq!(sessions[0], sessions[1]);
        assert_ne!(sessions[1], sessions[2]);
        assert_eq!(sessions[2], sessions[3]);
        assert_ne!(sessions[3], sessions[4]);
    }

    #[test]
    fn using_the_same_sender_key_twice_never_restarts_its_counter() {
        let secret = GroupSecret::generate();
        let tx = dh_sender(&secret);
        let first = Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter;
        tx.use_group_key(&secret);
        let second = Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter;
        assert_eq!((first, second), (0, 1));
    }

    /// A node handed a sender key refuses what was sealed under it before the handover: a
    /// copy recorded then (sent to other nodes, or to this node's previous run) is not
    /// replayed to it.
    #[test]
    fn a_message_is_never_stamped_before_the_wall_clock_time_it_was_sealed_at() {
        // A handover's `valid_from` is taken from the wall clock: a message sealed after
        // it must never carry an earlier stamp (it would be refused as recorded).
        let tx = dh_sender(&GroupSecret::generate());
        for _ in 0..5_000 {
            let before = now_ms();
            let stamp = Header::parse(&seal(&tx, "t", b"x"))
                .unwrap()
                .0
                .timestamp_ms();
            assert!(
                stamp >= before,
                "stamped {stamp}, sealed at {before} or later"
            );
        }
    }

    #[test]
    fn messages_sealed_before_the_handover_are_refused() {
        let key = GroupSecret::generate();
        let tx = dh_sender(&key);
        let recorded = seal(&tx, "t", b"old");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let group = Arc::new(GroupKeys::new(5_000));
        group.enable();
        group.install_handover("n", &key, None, now_ms());
        let rx = Receiver::with_group(ring(None), group, ReceiverPolicy::default());
        assert!(matches!(
            rx.open(&recorded, "t", b"", Kind::Publish),
            Err(Error::Replay)
        ));
        let fresh = seal(&tx, "t", b"new");
        assert_eq!(
            rx.open(&fresh, "t", b"", Kind::Publish).unwrap().payload,
            b"new"
        );
    }

    #[test]
    fn concurrent_sealing_uses_each_counter_once() {
        let keys = ring(Some(PSK));
        let tx = Arc::new(Sender::new("n", keys));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    (0..2000)
                        .map(|_| Header::parse(&seal(&tx, "t", b"x")).unwrap().0.counter)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8000);
    }
}
