//! DH mode over Zenoh: X25519 exchanges (manual, as the guide shows, or automatic and
//! authenticated), the sender keys handed over the resulting pairwise channels, and
//! rekeying. Messages are in `crypto::control`; keys in `crypto::handshake` and
//! `crypto::group`.
//!
//! ```text
//! manual     A: initiate -> public key a  (shown to the user)      B: likewise, b
//!            A: complete(b) -> pairwise keys       B: complete(a) -> the same keys
//!            each side: KEY(its sender key) -> peer, until ACK(peer's sender key)
//! automatic  I -> R  INIT  (ephemeral key, PSK id and/or identity key)
//!            R -> I  RESP  (ephemeral key, R's sender key sealed: proves R derived the keys)
//!            I -> R  KEY   (I's sender key sealed: proves I did)  R -> I  ACK
//! rekey      the automatic exchange authenticated by the channel's chain key, then KEY
//!            with a new sender key; the node seals with it once peers acknowledged it
//! ```
//! INIT/RESP/KEY/ACK are Zenoh queries and replies on
//! `{namespace}/security/key_exchange/{recipient}`; a KEY is sent again until its ACK
//! comes. A responder keeps new keys tentative until the initiator's KEY proves them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::query::{Query, Queryable};
use zeroize::Zeroizing;

use crate::comm::{Monitor, RateLimitedWarning, Stats, LOG_TARGET};
use crate::config::{validate_node_id, DhConfig, KeyExchange};
use crate::crypto::control::{
    self, open_sealed, seal_into, Body, Control, Refusal, EXCHANGE_ID_LEN, FLAG_CHAIN,
    FLAG_IDENTITY, FLAG_PSK,
};
use crate::crypto::group::{GroupKeys, GroupSecret};
use crate::crypto::handshake::{
    derive_keys, fingerprint, psk_salt, EphemeralKeyPair, SessionKeys, Transcript, PUBLIC_KEY_LEN,
};
use crate::crypto::keys::{KeyId, SessionKey};
use crate::crypto::random_bytes;
use crate::crypto::replay::ReplayWindow;
use crate::crypto::session::{KeyRing, Sender};
use crate::error::{Error, Result};
use crate::transport::{QueryOutcome, Transport};

/// How long one key-exchange query waits for its reply.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the manager thread wakes when nothing asks it to.
const TICK: Duration = Duration::from_millis(50);
/// First and longest pause before sending an unacknowledged KEY again.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Longest pause between automatic attempts with a peer that refused or failed.
const HANDSHAKE_RETRY_MAX: Duration = Duration::from_secs(5);
/// The larger node id of a pair waits this long for the smaller one to start the
/// automatic exchange before starting it itself.
const SECOND_INITIATOR_DELAY: Duration = Duration::from_secs(1);
/// Attempts per peer within one rekey when the peer is busy or does not answer.
const REKEY_ATTEMPTS: u32 = 20;
/// Peers without an established channel (exchanges in progress) and peers seen through
/// liveliness are bounded, so a flood of forged node ids cannot grow memory without end.
const MAX_UNCONFIRMED_PEERS: usize = 256;
const MAX_LIVE_PEERS: usize = 4096;
const TENTATIVE_TTL: Duration = Duration::from_secs(10);

/// One direction pair of keys with a peer, from one exchange.
struct Channel {
    exchange_id: [u8; EXCHANGE_ID_LEN],
    tx: SessionKey,
    rx: SessionKey,
    chain: Zeroizing<[u8; 32]>,
    tx_counter: u64,
    rx_window: ReplayWindow,
    /// The fingerprint of the key the peer used (its identity key if it used one).
    peer_fingerprint: String,
    /// Our sender-key session the peer is known to hold.
    acked: Option<[u8; 16]>,
}

impl Channel {
    fn new(
        exchange_id: [u8; EXCHANGE_ID_LEN],
        keys: SessionKeys,
        peer_fingerprint: String,
    ) -> Self {
        Channel {
            exchange_id,
            tx: keys.tx,
            rx: keys.rx,
            chain: keys.chain,
            tx_counter: 0,
            rx_window: ReplayWindow::default(),
            peer_fingerprint,
            acked: None,
        }
    }

    fn next_counter(&mut self) -> u64 {
        let c = self.tx_counter;
        self.tx_counter += 1;
        c
    }
}

#[derive(Default)]
struct Peer {
    channel: Option<Channel>,
    /// Responder side: keys of an exchange the initiator has not yet confirmed, and since
    /// when (unconfirmed exchanges are forgotten after `TENTATIVE_TTL`).
    tentative: Option<Channel>,
    tentative_since: Option<Instant>,
    next_key_send: Option<Instant>,
    backoff: Duration,
}

impl Peer {
    /// Use `channel` from now on (an exchange completed or was confirmed) and send it our
    /// sender key at once.
    fn set_channel(&mut self, channel: Channel) {
        self.channel = Some(channel);
        self.tentative = None;
        self.tentative_since = None;
        self.next_key_send = Some(Instant::now());
        self.backoff = RETRY_MIN;
    }
}

/// A peer seen through liveliness (automatic mode).
struct Live {
    next_try: Instant,
    backoff: Duration,
}

#[derive(Default)]
struct State {
    /// Our sender key; `None` until the node enters DH mode.
    own: Option<Arc<GroupSecret>>,
    own_since: Option<Instant>,
    /// Manual exchanges initiated and not completed, by peer.
    pending: HashMap<String, EphemeralKeyPair>,
    /// The public key we used in the latest exchange with each peer, and the latest.
    my_public: HashMap<String, [u8; PUBLIC_KEY_LEN]>,
    last_public: Option<[u8; PUBLIC_KEY_LEN]>,
    peers: HashMap<String, Peer>,
    live: HashMap<String, Live>,
    initiating: HashSet<String>,
    sealing_key: Option<KeyId>,
    stop: bool,
}

/// What one automatic exchange attempt came to.
enum Attempt {
    Done,
    /// Worth retrying soon (peer busy, not answering).
    Retry(String),
    Failed(String),
}

/// Runs DH mode for one communicator.
pub struct KeyManager {
    node_id: String,
    control_prefix: String,
    liveliness_prefix: String,
    cfg: DhConfig,
    keys: Arc<KeyRing>,
    group: Arc<GroupKeys>,
    sender: Arc<Sender>,
    monitor: Arc<Monitor>,
    transport: Arc<Transport>,
    state: Mutex<State>,
    wake: Condvar,
    rekeying: Mutex<()>,
    failure_log: RateLimitedWarning,
    declarations: Mutex<Declarations>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Declarations {
    queryable: Option<Queryable<()>>,
    token: Option<LivelinessToken>,
    watcher: Option<Subscriber<()>>,
}

impl KeyManager {
    /// Start the manager: its queryable, its thread and, in automatic mode, DH mode itself
    /// with presence announcements.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        node_id: &str,
        namespace: &str,
        cfg: DhConfig,
        keys: Arc<KeyRing>,
        group: Arc<GroupKeys>,
        sender: Arc<Sender>,
        monitor: Arc<Monitor>,
        transport: Arc<Transport>,
    ) -> Result<Arc<KeyManager>> {
        let manager = Arc::new(KeyManager {
            node_id: node_id.to_owned(),
            control_prefix: format!("{namespace}/security/key_exchange/"),
            liveliness_prefix: format!("{namespace}/security/nodes/"),
            state: Mutex::new(State {
                sealing_key: keys.sealing_key().map(|p| p.key_id()),
                ..State::default()
            }),
            cfg,
            keys,
            group,
            sender,
            monitor,
            transport,
            wake: Condvar::new(),
            rekeying: Mutex::new(()),
            failure_log: RateLimitedWarning::with_level(log::Level::Error),
            declarations: Mutex::new(Declarations::default()),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&manager);
        let queryable = manager.transport.queryable(
            &format!("{}{}", manager.control_prefix, manager.node_id),
            move |query| {
                if let Some(m) = weak.upgrade() {
                    m.on_query(query);
                }
            },
        )?;
        manager.declarations.lock().queryable = Some(queryable);
        if manager.cfg.key_exchange == KeyExchange::Auto {
            manager.enter_dh_mode(&mut manager.state.lock());
            let weak = Arc::downgrade(&manager);
            let prefix = manager.liveliness_prefix.clone();
            let watcher =
                manager
                    .transport
                    .watch_liveliness(&format!("{prefix}*"), move |key, alive| {
                        if let (Some(m), Some(peer)) = (weak.upgrade(), key.strip_prefix(&prefix)) {
                            m.on_presence(peer, alive);
                        }
                    })?;
            let token = manager
                .transport
                .liveliness_token(&format!("{}{}", manager.liveliness_prefix, manager.node_id))?;
            let mut d = manager.declarations.lock();
            d.watcher = Some(watcher);
            d.token = Some(token);
        }
        let weak = Arc::downgrade(&manager);
        let handle = std::thread::Builder::new()
            .name("evospikenet-keys".into())
            .spawn(move || run(weak))
            .map_err(|e| Error::Transport(format!("could not start the key thread: {e}")))?;
        *manager.thread.lock() = Some(handle);
        Ok(manager)
    }

    /// Stop the thread and drop the declarations. Idempotent.
    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        *self.declarations.lock() = Declarations::default();
    }

    /// Wake the thread (a PSK rotation to apply, a channel to serve).
    pub fn notify(&self) {
        self.wake.notify_all();
    }

    fn enter_dh_mode(&self, st: &mut State) {
        if st.own.is_none() {
            let own = Arc::new(GroupSecret::generate());
            self.sender.use_group_key(&own);
            st.own = Some(own);
            st.own_since = Some(Instant::now());
            self.group.enable();
        }
    }

    fn control_key(&self, peer: &str) -> String {
        format!("{}{}", self.control_prefix, peer)
    }

    /// Count and log (`ERROR Key exchange failed: ...`) a failed local exchange step;
    /// returns the error to raise. `reason` must not contain key material.
    pub fn fail(&self, reason: String) -> Error {
        Stats::add(&self.monitor.stats.key_exchange_failures, 1);
        log::error!(target: LOG_TARGET, "Key exchange failed: {reason}");
        Error::InvalidArgument(reason)
    }

    /// A failure caused by a remote party: counted, logged at most a few times a second.
    fn remote_failure(&self, reason: impl FnOnce() -> String) {
        Stats::add(&self.monitor.stats.key_exchange_failures, 1);
        self.failure_log
            .warn(|| format!("Key exchange failed: {}", reason()));
    }

    fn check_peer_id(&self, peer: &str) -> Result<()> {
        validate_node_id(peer).map_err(|e| self.fail(format!("peer_id: {e}")))?;
        if peer == self.node_id {
            return Err(self.fail(format!(
                "peer_id {peer:?} is this node's own id; pass the other node's id"
            )));
        }
        Ok(())
    }

    // ----- the guide's manual API -----

    /// Start an exchange with `peer`: a fresh X25519 key pair; returns its public key.
    /// Initiating again replaces the pending exchange with that peer.
    pub fn initiate(&self, peer: &str) -> Result<[u8; PUBLIC_KEY_LEN]> {
        self.check_peer_id(peer)?;
        let pair = EphemeralKeyPair::generate();
        let public = pair.public_key();
        let mut st = self.state.lock();
        st.pending.insert(peer.to_owned(), pair);
        st.my_public.insert(peer.to_owned(), public);
        st.last_public = Some(public);
        Ok(public)
    }

    /// Complete the pending exchange with `peer` (or the only pending one) using the
    /// peer's public key. Returns the peer's id. From here on the node is in DH mode.
    pub fn complete(
        &self,
        peer_public: &[u8; PUBLIC_KEY_LEN],
        peer: Option<&str>,
    ) -> Result<String> {
        let mut st = self.state.lock();
        let peer = match peer {
            Some(p) => {
                self.check_peer_id(p)?;
                p.to_owned()
            }
            None => match st.pending.len() {
                1 => st.pending.keys().next().expect("one").clone(),
                0 => {
                    return Err(self.fail(
                        "no key exchange is pending: call initiate_key_exchange(peer_id) \
                         first (each exchange can be completed once)"
                            .into(),
                    ))
                }
                _ => {
                    let mut ids: Vec<&String> = st.pending.keys().collect();
                    ids.sort();
                    return Err(self.fail(format!(
                        "exchanges with {ids:?} are pending: pass peer_id to say which one \
                         this key completes"
                    )));
                }
            },
        };
        let Some(pair) = st.pending.get(&peer) else {
            return Err(self.fail(format!(
                "no key exchange with {peer:?} is pending: call \
                 initiate_key_exchange({peer:?}) first (each exchange can be completed once)"
            )));
        };
        let shared = pair
            .agree(peer_public)
            .map_err(|e| self.fail(e.to_string()))?;
        let my_public = pair.public_key();
        let transcript = Transcript {
            my_id: &self.node_id,
            my_pub: &my_public,
            peer_id: &peer,
            peer_pub: peer_public,
            statics: None,
        };
        let psk = self.keys.sealing_key();
        let salt = psk.as_deref().map(psk_salt);
        let keys = derive_keys(&shared, &transcript, salt.as_deref());
        st.pending.remove(&peer);
        let exchange_id = manual_exchange_id(&my_public, peer_public);
        self.enter_dh_mode(&mut st);
        let entry = st.peers.entry(peer.clone()).or_default();
        entry.set_channel(Channel::new(exchange_id, keys, fingerprint(peer_public)));
        Stats::add(&self.monitor.stats.key_exchanges, 1);
        drop(st);
        log::info!(
            target: LOG_TARGET,
            "Key exchange with {peer} completed (peer key fingerprint {})",
            fingerprint(peer_public)
        );
        self.wake.notify_all();
        Ok(peer)
    }

    /// The fingerprint of our key for `peer`'s exchange (or of our identity key, or of
    /// the latest exchange's key when `peer` is `None`).
    pub fn fingerprint(&self, peer: Option<&str>) -> Result<String> {
        let st = self.state.lock();
        let key = match peer {
            Some(p) => st.my_public.get(p).copied(),
            None => self
                .cfg
                .identity
                .as_ref()
                .map(|i| i.public_key())
                .or(st.last_public),
        };
        key.map(|k| fingerprint(&k)).ok_or_else(|| {
            Error::InvalidArgument(match peer {
                Some(p) => format!("no key exchange with {p:?} was initiated"),
                None => "no key exchange was initiated and no identity_key is configured".into(),
            })
        })
    }

    /// The fingerprint of the key `peer` used in the exchange that set up our channel.
    pub fn peer_fingerprint(&self, peer: &str) -> Result<String> {
        let st = self.state.lock();
        st.peers
            .get(peer)
            .and_then(|p| p.channel.as_ref())
            .map(|c| c.peer_fingerprint.clone())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("no key exchange with {peer:?} has completed"))
            })
    }

    /// Whether traffic flows both ways with `peer`: our channel is set up, the peer holds
    /// our sender key and we hold its.
    pub fn session_established(&self, peer: &str) -> bool {
        let st = self.state.lock();
        let ours = st
            .peers
            .get(peer)
            .and_then(|p| p.channel.as_ref())
            .is_some_and(|c| c.acked.is_some());
        ours && self.group.has_sender(peer)
    }

    /// Peers with an established session, sorted.
    pub fn established_peers(&self) -> Vec<String> {
        let ids: Vec<String> = self.state.lock().peers.keys().cloned().collect();
        let mut out: Vec<String> = ids
            .into_iter()
            .filter(|p| self.session_established(p))
            .collect();
        out.sort();
        out
    }

    /// Wait until `session_established(peer)`, or fail with a timeout naming the peer.
    pub fn wait_established(&self, peer: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.session_established(peer) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no secure session with {peer:?} within {:.1} s (is it running, on the \
                     same network and namespace, with the same PSK or a completed exchange?)",
                    timeout.as_secs_f64()
                )));
            }
            let mut st = self.state.lock();
            self.wake.wait_for(&mut st, Duration::from_millis(5));
        }
    }

    /// Whether the node is in DH mode.
    pub fn is_active(&self) -> bool {
        self.state.lock().own.is_some()
    }

    // ----- rekeying and PSK rotation -----

    /// A new sender key for this node and a new exchange with every peer; the old keys
    /// are erased a grace period after the new ones are in use. Returns the peers that
    /// received the new key.
    pub fn rekey(&self) -> Result<Vec<String>> {
        let _one_at_a_time = self.rekeying.lock();
        let peers: Vec<String> = {
            let mut st = self.state.lock();
            self.enter_dh_mode(&mut st);
            let mut p: Vec<String> = st
                .peers
                .iter()
                .filter(|(_, p)| p.channel.is_some())
                .map(|(id, _)| id.clone())
                .collect();
            p.sort();
            p
        };
        let new = Arc::new(GroupSecret::generate());
        let mut done = Vec::new();
        for peer in &peers {
            let mut outcome = Attempt::Retry(String::new());
            for attempt in 0..REKEY_ATTEMPTS {
                outcome = self.handshake(peer, true);
                if !matches!(outcome, Attempt::Retry(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5 + 10 * u64::from(attempt)));
            }
            match outcome {
                Attempt::Done => {}
                Attempt::Retry(why) | Attempt::Failed(why) => {
                    self.remote_failure(|| format!("rekey with {peer:?}: {why}"));
                }
            }
            // Whatever the exchange did, the peer must get the new sender key before we
            // seal with it; the old channel carries it if no new one came about.
            for attempt in 0..REKEY_ATTEMPTS {
                if self.send_key(peer, &new) {
                    done.push(peer.clone());
                    break;
                }
                std::thread::sleep(Duration::from_millis(5 + 10 * u64::from(attempt)));
            }
        }
        {
            let mut st = self.state.lock();
            self.sender.use_group_key(&new);
            st.own = Some(new);
            st.own_since = Some(Instant::now());
        }
        Stats::add(&self.monitor.stats.rekeys, 1);
        log::debug!(
            target: LOG_TARGET,
            "New sender key in use; handed to {} of {} peer(s)",
            done.len(),
            peers.len()
        );
        self.wake.notify_all();
        Ok(done)
    }

    // ----- the automatic exchange, initiator side -----

    /// One automatic exchange with `peer` (first contact, or a rekey of our channel).
    fn handshake(&self, peer: &str, rekey: bool) -> Attempt {
        let mut exchange_id = [0u8; EXCHANGE_ID_LEN];
        random_bytes(&mut exchange_id);
        let pair = EphemeralKeyPair::generate();
        let my_public = pair.public_key();
        let identity = self
            .cfg
            .identity
            .as_ref()
            .filter(|_| !self.cfg.trusted_peers.is_empty());
        let (msg, flags, salt) = {
            let mut st = self.state.lock();
            if st.initiating.contains(peer) {
                return Attempt::Retry("an exchange with it is already running".into());
            }
            let mut flags = 0u8;
            let mut key_id = KeyId::default();
            let salt: Option<Zeroizing<[u8; 32]>> = if rekey {
                let Some(ch) = st.peers.get(peer).and_then(|p| p.channel.as_ref()) else {
                    return Attempt::Failed("no channel to rekey".into());
                };
                flags |= FLAG_CHAIN;
                Some(ch.chain.clone())
            } else {
                let psk = self.keys.sealing_key();
                if let Some(psk) = &psk {
                    flags |= FLAG_PSK;
                    key_id = psk.key_id();
                }
                psk.as_deref().map(psk_salt)
            };
            if identity.is_some() && !rekey {
                flags |= FLAG_IDENTITY;
            }
            let mut msg = control::begin(1, &self.node_id, peer, &exchange_id);
            msg.push(flags);
            msg.extend_from_slice(&key_id.0);
            msg.extend_from_slice(&my_public);
            if flags & FLAG_IDENTITY != 0 {
                msg.extend_from_slice(&identity.expect("flag set").public_key());
            }
            st.initiating.insert(peer.to_owned());
            (msg, flags, salt)
        };
        let mut why = None;
        let outcome =
            self.transport
                .query_all(
                    &self.control_key(peer),
                    msg,
                    QUERY_TIMEOUT,
                    |_, bytes| match self.accept_resp(
                        bytes,
                        peer,
                        &exchange_id,
                        &pair,
                        flags,
                        salt.as_ref(),
                    ) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            why = Some(e);
                            None
                        }
                    },
                );
        self.state.lock().initiating.remove(peer);
        let (keys, theirs, peer_fp) = match outcome {
            Ok(QueryOutcome::Accepted(v)) => v,
            Ok(QueryOutcome::NoReply) => return Attempt::Retry(format!("{peer:?} did not answer")),
            Ok(QueryOutcome::Rejected) => {
                return match why {
                    Some(HandshakeError::Busy) => Attempt::Retry(format!("{peer:?} is busy")),
                    Some(HandshakeError::Refused(r)) => Attempt::Failed(r),
                    Some(HandshakeError::Auth(r)) => Attempt::Failed(r),
                    None => Attempt::Failed(format!("{peer:?} sent no usable reply")),
                }
            }
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        drop(pair);
        let mut st = self.state.lock();
        st.my_public.insert(peer.to_owned(), my_public);
        st.last_public = Some(my_public);
        let entry = st.peers.entry(peer.to_owned()).or_default();
        entry.set_channel(Channel::new(exchange_id, keys, peer_fp));
        drop(st);
        self.group.install(peer, &theirs);
        Stats::add(&self.monitor.stats.key_exchanges, 1);
        log::debug!(
            target: LOG_TARGET,
            "{} key exchange with {peer} completed",
            if rekey { "Rekeying" } else { "Automatic" }
        );
        Attempt::Done
    }

    /// Check a RESP: ours, authentic, from the pinned identity if one is pinned.
    fn accept_resp(
        &self,
        bytes: &[u8],
        peer: &str,
        exchange_id: &[u8; EXCHANGE_ID_LEN],
        pair: &EphemeralKeyPair,
        flags: u8,
        salt: Option<&Zeroizing<[u8; 32]>>,
    ) -> std::result::Result<(SessionKeys, GroupSecret, String), HandshakeError> {
        let forged = || {
            HandshakeError::Auth(format!(
                "the reply of {peer:?} did not authenticate (a different PSK, or a man in the \
             middle substituting keys)"
            ))
        };
        let c = Control::parse(bytes).map_err(|_| forged())?;
        if c.from != peer || c.to != self.node_id || &c.exchange_id != exchange_id {
            return Err(forged());
        }
        let (eph, identity, sealed) = match c.body {
            Body::Resp {
                ephemeral,
                identity,
                sealed,
                ..
            } => (ephemeral, identity, sealed),
            Body::Refused(Refusal::Busy) => return Err(HandshakeError::Busy),
            Body::Refused(r) => {
                return Err(HandshakeError::Refused(format!(
                    "{peer:?} refused the exchange ({})",
                    refusal_text(r)
                )))
            }
            _ => return Err(forged()),
        };
        // Identity keys: ours and the peer's, the peer's checked against its pin.
        let identities = if flags & FLAG_IDENTITY != 0 {
            let (Some(mine), Some(theirs)) = (self.cfg.identity.as_ref(), identity) else {
                return Err(forged());
            };
            let fp = fingerprint(&theirs);
            if self.cfg.trusted(peer) != Some(fp.as_str()) {
                return Err(HandshakeError::Auth(format!(
                    "{peer:?} presented identity key {fp}, which is not its fingerprint in \
                     trusted_peers"
                )));
            }
            Some((mine, theirs))
        } else {
            None
        };
        let my_public = pair.public_key();
        let my_static = identities.map(|(mine, _)| mine.public_key());
        let transcript = Transcript {
            my_id: &self.node_id,
            my_pub: &my_public,
            peer_id: peer,
            peer_pub: &eph,
            statics: my_static.as_ref().zip(identities.as_ref().map(|(_, t)| t)),
        };
        let shared = match identities {
            Some((mine, theirs)) => {
                pair.agree_with_identity(&eph, mine, &theirs, transcript.i_am_first())
            }
            None => pair.agree(&eph),
        }
        .map_err(|e| HandshakeError::Auth(e.to_string()))?;
        let keys = derive_keys(&shared, &transcript, salt.map(|s| &**s));
        let (_, announcement) = open_sealed(&keys.rx, c.aad, sealed).map_err(|_| forged())?;
        let theirs = GroupSecret::from_announcement(&announcement).map_err(|_| forged())?;
        let fp = fingerprint(&identities.map_or(eph, |(_, theirs)| theirs));
        Ok((keys, theirs, fp))
    }

    /// Send our sender key `secret` to `peer` over the channel; true once acknowledged.
    fn send_key(&self, peer: &str, secret: &GroupSecret) -> bool {
        let (msg, exchange_id) = {
            let mut st = self.state.lock();
            let Some(ch) = st.peers.get_mut(peer).and_then(|p| p.channel.as_mut()) else {
                return false;
            };
            let mut msg = control::begin(3, &self.node_id, peer, &ch.exchange_id);
            let counter = ch.next_counter();
            seal_into(&mut msg, &ch.tx, counter, &secret.announcement());
            (msg, ch.exchange_id)
        };
        let outcome =
            self.transport
                .query_all(&self.control_key(peer), msg, QUERY_TIMEOUT, |_, bytes| {
                    self.accept_ack(bytes, peer, &exchange_id, secret)
                });
        matches!(outcome, Ok(QueryOutcome::Accepted(())))
    }

    fn accept_ack(
        &self,
        bytes: &[u8],
        peer: &str,
        exchange_id: &[u8; EXCHANGE_ID_LEN],
        secret: &GroupSecret,
    ) -> Option<()> {
        let c = Control::parse(bytes).ok()?;
        if c.from != peer || c.to != self.node_id || &c.exchange_id != exchange_id {
            return None;
        }
        let Body::Ack { acked, sealed } = c.body else {
            return None;
        };
        let theirs = {
            let mut st = self.state.lock();
            let ch = st.peers.get_mut(peer)?.channel.as_mut()?;
            if &ch.exchange_id != exchange_id {
                return None;
            }
            let Ok((counter, announcement)) = open_sealed(&ch.rx, c.aad, sealed) else {
                drop(st);
                self.remote_failure(|| {
                    format!("an acknowledgement from {peer:?} did not authenticate")
                });
                return None;
            };
            if acked != secret.session_id || !ch.rx_window.accept(counter) {
                return None;
            }
            ch.acked = Some(acked);
            GroupSecret::from_announcement(&announcement).ok()?
        };
        self.group.install(peer, &theirs);
        Some(())
    }

    // ----- responder side -----

    fn on_query(&self, query: Query) {
        let Some(payload) = query.payload() else {
            return;
        };
        let bytes = payload.to_bytes();
        let Ok(c) = Control::parse(&bytes) else {
            self.remote_failure(|| "a malformed key-exchange message was dropped".into());
            return;
        };
        if c.to != self.node_id || c.from == self.node_id || validate_node_id(c.from).is_err() {
            return;
        }
        let reply = match c.body {
            Body::Init {
                flags,
                key_id,
                ephemeral,
                identity,
            } => Some(self.respond_init(&c, flags, key_id, &ephemeral, identity)),
            Body::Key { sealed } => self.respond_key(&c, sealed),
            _ => None,
        };
        if let Some(reply) = reply {
            let _ = Transport::reply(&query, reply);
        }
    }

    fn refuse(&self, c: &Control<'_>, why: Refusal) -> Vec<u8> {
        control::refused(&self.node_id, c.from, &c.exchange_id, why)
    }

    fn respond_init(
        &self,
        c: &Control<'_>,
        flags: u8,
        key_id: KeyId,
        eph: &[u8; PUBLIC_KEY_LEN],
        identity: Option<[u8; PUBLIC_KEY_LEN]>,
    ) -> Vec<u8> {
        let peer = c.from;
        let mut st = self.state.lock();
        if st.initiating.contains(peer) && self.node_id.as_str() < peer {
            return self.refuse(c, Refusal::Busy);
        }
        if !st.peers.contains_key(peer)
            && st.peers.values().filter(|p| p.channel.is_none()).count() >= MAX_UNCONFIRMED_PEERS
        {
            return self.refuse(c, Refusal::Busy);
        }
        let salt: Option<Zeroizing<[u8; 32]>> = if flags & FLAG_CHAIN != 0 {
            match st.peers.get(peer).and_then(|p| p.channel.as_ref()) {
                Some(ch) => Some(ch.chain.clone()),
                None => return self.refuse(c, Refusal::NoSession),
            }
        } else {
            if self.cfg.key_exchange != KeyExchange::Auto {
                drop(st);
                self.remote_failure(|| {
                    format!(
                        "{peer:?} asked for an automatic exchange, but this node uses \
                         key_exchange=\"manual\""
                    )
                });
                return self.refuse(c, Refusal::NotAllowed);
            }
            match (self.keys.has_key(), flags & FLAG_PSK != 0) {
                (true, true) => match self.keys.by_id(key_id) {
                    Some(psk) => Some(psk_salt(&psk)),
                    None => {
                        drop(st);
                        self.remote_failure(|| {
                            format!("{peer:?} uses a PSK this node does not hold")
                        });
                        return self.refuse(c, Refusal::NotAllowed);
                    }
                },
                (true, false) | (false, true) => {
                    drop(st);
                    self.remote_failure(|| format!("{peer:?} and this node do not both use a PSK"));
                    return self.refuse(c, Refusal::NotAllowed);
                }
                (false, false) => None,
            }
        };
        let use_identity = flags & FLAG_IDENTITY != 0 && flags & FLAG_CHAIN == 0;
        if !self.cfg.trusted_peers.is_empty() && flags & FLAG_CHAIN == 0 {
            let fp = identity.map(|k| fingerprint(&k));
            let pinned = self.cfg.trusted(peer);
            if !use_identity || pinned.is_none() || fp.as_deref() != pinned {
                drop(st);
                self.remote_failure(|| match pinned {
                    None => format!("{peer:?} is not in trusted_peers"),
                    Some(_) => format!(
                        "{peer:?} presented an identity key whose fingerprint is not the one \
                         pinned in trusted_peers"
                    ),
                });
                return self.refuse(c, Refusal::NotAllowed);
            }
        }
        let mine = self.cfg.identity.as_ref();
        if use_identity && mine.is_none() {
            return self.refuse(c, Refusal::NotAllowed);
        }
        self.enter_dh_mode(&mut st);
        let own = st.own.clone().expect("DH mode");
        let pair = EphemeralKeyPair::generate();
        let my_public = pair.public_key();
        let my_static = mine.map(|m| m.public_key()).unwrap_or_default();
        let their_static = identity.unwrap_or_default();
        let transcript = Transcript {
            my_id: &self.node_id,
            my_pub: &my_public,
            peer_id: peer,
            peer_pub: eph,
            statics: use_identity.then_some((&my_static, &their_static)),
        };
        let shared = if use_identity {
            pair.agree_with_identity(
                eph,
                mine.expect("checked"),
                &their_static,
                transcript.i_am_first(),
            )
        } else {
            pair.agree(eph)
        };
        let shared = match shared {
            Ok(s) => s,
            Err(e) => {
                drop(st);
                self.remote_failure(|| format!("{peer:?} sent an unusable public key: {e}"));
                return self.refuse(c, Refusal::NotAllowed);
            }
        };
        let keys = derive_keys(&shared, &transcript, salt.as_deref());
        let mut msg = control::begin(2, &self.node_id, peer, &c.exchange_id);
        let resp_flags =
            flags & (FLAG_PSK | FLAG_CHAIN) | if use_identity { FLAG_IDENTITY } else { 0 };
        msg.push(resp_flags);
        msg.extend_from_slice(&my_public);
        if use_identity {
            msg.extend_from_slice(&my_static);
        }
        let peer_fp = fingerprint(if use_identity { &their_static } else { eph });
        let mut channel = Channel::new(c.exchange_id, keys, peer_fp);
        let counter = channel.next_counter();
        seal_into(&mut msg, &channel.tx, counter, &own.announcement());
        channel.acked = Some(own.session_id);
        st.my_public.insert(peer.to_owned(), my_public);
        st.last_public = Some(my_public);
        let entry = st.peers.entry(peer.to_owned()).or_default();
        entry.tentative = Some(channel);
        entry.tentative_since = Some(Instant::now());
        msg
    }

    fn respond_key(&self, c: &Control<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        let peer = c.from;
        let mut st = self.state.lock();
        let Some(own) = st.own.clone() else {
            return Some(self.refuse(c, Refusal::NoSession));
        };
        let Some(entry) = st.peers.get_mut(peer) else {
            return Some(self.refuse(c, Refusal::NoSession));
        };
        let committed = entry
            .channel
            .as_ref()
            .is_some_and(|ch| ch.exchange_id == c.exchange_id);
        let tentative = entry
            .tentative
            .as_ref()
            .is_some_and(|ch| ch.exchange_id == c.exchange_id);
        if !committed && !tentative {
            return Some(self.refuse(c, Refusal::NoSession));
        }
        let ch = if committed {
            entry.channel.as_mut()
        } else {
            entry.tentative.as_mut()
        }
        .expect("checked");
        let Ok((counter, announcement)) = open_sealed(&ch.rx, c.aad, sealed) else {
            drop(st);
            self.remote_failure(|| {
                format!(
                    "a key from {peer:?} did not authenticate (the two sides derived different \
                     keys: a mistyped public key, a different PSK, or a man in the middle)"
                )
            });
            return Some(self.refuse(c, Refusal::NotAllowed));
        };
        if !ch.rx_window.accept(counter) {
            return None;
        }
        let theirs = GroupSecret::from_announcement(&announcement).ok()?;
        if tentative {
            // The initiator proved it derived the same keys: the new channel replaces the old.
            let confirmed = entry.tentative.take().expect("checked");
            entry.set_channel(confirmed);
            log::debug!(target: LOG_TARGET, "Key exchange with {peer} confirmed");
            Stats::add(&self.monitor.stats.key_exchanges, 1);
        }
        let ch = entry.channel.as_mut().expect("committed");
        let mut msg = control::begin(4, &self.node_id, peer, &c.exchange_id);
        msg.extend_from_slice(&theirs.session_id);
        let counter = ch.next_counter();
        seal_into(&mut msg, &ch.tx, counter, &own.announcement());
        drop(st);
        self.group.install(peer, &theirs);
        self.wake.notify_all();
        Some(msg)
    }

    // ----- presence (automatic mode) -----

    fn on_presence(&self, peer: &str, alive: bool) {
        if peer == self.node_id || validate_node_id(peer).is_err() {
            return;
        }
        let mut st = self.state.lock();
        if alive && !st.live.contains_key(peer) && st.live.len() >= MAX_LIVE_PEERS {
            return;
        }
        if alive {
            let delay = if self.node_id.as_str() < peer {
                Duration::ZERO
            } else {
                SECOND_INITIATOR_DELAY
            };
            st.live.insert(
                peer.to_owned(),
                Live {
                    next_try: Instant::now() + delay,
                    backoff: Duration::from_millis(200),
                },
            );
        } else {
            st.live.remove(peer);
            if let Some(p) = st.peers.remove(peer) {
                drop(p);
                self.group.retire_sender(peer);
                log::info!(target: LOG_TARGET, "Peer {peer} left; its keys are erased");
            }
        }
        drop(st);
        self.wake.notify_all();
    }

    // ----- the background thread -----

    fn tick(&self) {
        self.group.sweep();
        self.keys.sweep();
        let now = Instant::now();
        let (own, rekey_due, key_sends, handshakes) = {
            let mut st = self.state.lock();
            for p in st.peers.values_mut() {
                if p.tentative_since
                    .is_some_and(|t| t.elapsed() > TENTATIVE_TTL)
                {
                    p.tentative = None;
                    p.tentative_since = None;
                }
            }
            st.peers
                .retain(|_, p| p.channel.is_some() || p.tentative.is_some());
            let sealing = self.keys.sealing_key().map(|p| p.key_id());
            if sealing != st.sealing_key {
                st.sealing_key = sealing;
                if st.own.is_none() {
                    // PSK rotation: new sessions seal with the new key.
                    self.sender.new_session();
                }
            }
            let own = st.own.clone();
            let rekey_due = own.is_some()
                && (st.own_since.is_some_and(|t| {
                    t.elapsed() >= Duration::from_millis(self.cfg.rekey_after_ms)
                }) || self.sender.current().3 >= self.cfg.rekey_after_messages);
            let own_id = own.as_ref().map(|o| o.session_id);
            let key_sends: Vec<String> = st
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.channel.as_ref().is_some_and(|c| c.acked != own_id)
                        && p.next_key_send.is_some_and(|t| t <= now)
                })
                .map(|(id, _)| id.clone())
                .collect();
            let handshakes: Vec<String> = st
                .live
                .iter()
                .filter(|(id, l)| {
                    l.next_try <= now && st.peers.get(*id).is_none_or(|p| p.channel.is_none())
                })
                .map(|(id, _)| id.clone())
                .collect();
            (own, rekey_due, key_sends, handshakes)
        };
        if rekey_due {
            let _ = self.rekey();
        }
        // A rekey in progress sends its own keys; the retransmissions wait for it.
        if let (Some(own), false) = (own, self.rekeying.is_locked()) {
            for peer in key_sends {
                let acked = self.send_key(&peer, &own);
                let mut st = self.state.lock();
                if let Some(p) = st.peers.get_mut(&peer) {
                    if acked {
                        p.next_key_send = None;
                    } else {
                        p.backoff = (p.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
                        p.next_key_send = Some(Instant::now() + p.backoff);
                    }
                }
            }
        }
        for peer in handshakes {
            let outcome = self.handshake(&peer, false);
            if let Attempt::Done = outcome {
                let own = self.state.lock().own.clone();
                if let Some(own) = own {
                    self.send_key_now(&peer, &own);
                }
            }
            let mut st = self.state.lock();
            if let Some(l) = st.live.get_mut(&peer) {
                match &outcome {
                    Attempt::Done => l.backoff = Duration::from_millis(200),
                    Attempt::Retry(_) | Attempt::Failed(_) => {
                        l.next_try = Instant::now() + l.backoff;
                        l.backoff = (l.backoff * 2).min(HANDSHAKE_RETRY_MAX);
                    }
                }
            }
            drop(st);
            if let Attempt::Failed(why) = outcome {
                self.remote_failure(|| why);
            }
        }
    }

    fn send_key_now(&self, peer: &str, own: &GroupSecret) {
        let acked = self.send_key(peer, own);
        let mut st = self.state.lock();
        if let Some(p) = st.peers.get_mut(peer) {
            p.next_key_send = if acked {
                None
            } else {
                Some(Instant::now() + RETRY_MIN)
            };
        }
    }
}

fn run(manager: Weak<KeyManager>) {
    loop {
        let Some(m) = manager.upgrade() else { return };
        {
            let mut st = m.state.lock();
            if st.stop {
                return;
            }
            m.wake.wait_for(&mut st, TICK);
            if st.stop {
                return;
            }
        }
        m.tick();
    }
}

enum HandshakeError {
    Busy,
    Refused(String),
    Auth(String),
}

fn refusal_text(r: Refusal) -> &'static str {
    match r {
        Refusal::NoSession => "it has no channel with this node",
        Refusal::Busy => "busy",
        Refusal::NotAllowed => {
            "not allowed: a different PSK, an identity not in its trusted_peers, or it \
             does not run automatic exchanges"
        }
    }
}

/// Both sides of a manual exchange name it the same way: a hash of the two public keys
/// in a fixed order.
fn manual_exchange_id(a: &[u8; PUBLIC_KEY_LEN], b: &[u8; PUBLIC_KEY_LEN]) -> [u8; EXCHANGE_ID_LEN] {
    use sha2::{Digest, Sha256};
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(b"evospikenet/v1/manual-exchange")
        .chain_update(lo)
        .chain_update(hi)
        .finalize();
    digest[..EXCHANGE_ID_LEN].try_into().expect("16 bytes")
}
