//! The key manager's thin driver: one thread owns the `Machine`; Zenoh callbacks and API
//! calls reach it through channels, and it carries out the actions (puts, key installs).
//! No lock is held while the machine works (X25519 included): callers read a snapshot.
//!
//! Key-exchange messages are Zenoh puts on `{namespace}/security/key_exchange/{to}`:
//! nothing waits for a reply, so a silent or lying queryable, or a slow peer, delays no
//! other exchange; the machine's timers retry what gets no answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender as ChannelSender, TryRecvError};
use parking_lot::{Condvar, Mutex};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zeroize::Zeroizing;

use crate::config::{validate_node_id, DhConfig, KeyExchange};
use crate::crypto::group::GroupKeys;
use crate::crypto::handshake::PUBLIC_KEY_LEN;
use crate::crypto::now_ms;
use crate::crypto::random_bytes;
use crate::crypto::sender_auth::{AuthKey, AUTH_KEY_LEN};
use crate::crypto::session::{KeyRing, Sender, BYTES_PER_SESSION};
use crate::dh::channel::Origin;
use crate::dh::inbox::Inbox;
use crate::dh::machine::{Action, Machine, Settings};
use crate::dh::message::PublicKey;
use crate::dh::timers::{Now, SWITCH_TIMEOUT_MS};
use crate::error::{Error, Result};
use crate::monitor::{Monitor, RateLimitedWarning, Stats, LOG_TARGET};
use crate::outbox::{Outbox, Outlet};
use crate::transport::Transport;

/// A new sender key well before `session::BYTES_PER_SESSION` forces one.
const REKEY_AFTER_BYTES: u64 = BYTES_PER_SESSION / 4;
/// How often the machine's timers are polled.
const TICK: Duration = Duration::from_millis(20);

enum Command {
    Initiate(String, ChannelSender<PublicKey>),
    Complete(Option<String>, PublicKey, ChannelSender<Result<String>>),
    Rekey(ChannelSender<Vec<String>>),
    Presence(String, bool, Option<PublicKey>),
    Stop,
}

/// What callers read without waiting for the thread.
#[derive(Default)]
struct View {
    active: bool,
    established: Vec<String>,
    my_fingerprints: HashMap<String, String>,
    latest_fingerprint: Option<String>,
    peer_fingerprints: HashMap<String, String>,
}

/// Everything the thread needs besides the machine.
struct Io {
    node_id: String,
    control_prefix: String,
    transport: Arc<Transport>,
    keys: Arc<KeyRing>,
    group: Arc<GroupKeys>,
    sender: Arc<Sender>,
    monitor: Arc<Monitor>,
    failure_log: RateLimitedWarning,
    view: Arc<(Mutex<View>, Condvar)>,
    outbox: Arc<Outbox>,
    rekey_after_messages: u64,
}

/// Runs DH mode for one communicator.
pub struct KeyManager {
    node_id: String,
    commands: ChannelSender<Command>,
    /// Woken with every command, so the thread serves it at once.
    inbox: Arc<Inbox>,
    view: Arc<(Mutex<View>, Condvar)>,
    monitor: Arc<Monitor>,
    thread: Mutex<Option<JoinHandle<()>>>,
    declarations: Mutex<Vec<Declaration>>,
}

enum Declaration {
    Subscriber(#[allow(dead_code)] Subscriber<()>),
    Token(#[allow(dead_code)] LivelinessToken),
}

impl KeyManager {
    /// Start the manager: its subscriber, its thread and, in automatic mode, DH mode
    /// itself with a presence announcement (carrying the identity key, if any).
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
        outbox: Arc<Outbox>,
        init_freshness_ms: u64,
    ) -> Result<Arc<KeyManager>> {
        let auto = cfg.key_exchange == KeyExchange::Auto;
        if !cfg.trusted_peers.is_empty() {
            // Pinned identities: every DH-mode message authenticates its sender.
            sender.require_sender_auth();
            group.require_sender_auth(node_id);
        }
        let identity_public = cfg.identity.as_ref().map(|i| i.public_key());
        let settings = Settings {
            node_id: node_id.to_owned(),
            auto,
            identity: cfg.identity,
            trusted: cfg.trusted_peers,
            rekey_after_ms: cfg.rekey_after_ms,
            init_freshness_ms,
        };
        let clock = Instant::now();
        let now = move || Now {
            ms: clock.elapsed().as_millis() as u64,
            wall_ms: now_ms(),
        };
        let machine = Machine::new(settings, keys.clone(), now());
        let (commands, command_rx) = bounded::<Command>(64);
        let inbox = Arc::new(Inbox::default());
        let view = Arc::new((Mutex::new(View::default()), Condvar::new()));
        let io = Io {
            node_id: node_id.to_owned(),
            control_prefix: format!("{namespace}/security/key_exchange/"),
            transport: transport.clone(),
            keys,
            group,
            sender,
            monitor: monitor.clone(),
            failure_log: RateLimitedWarning::with_level(log::Level::Error),
            view: view.clone(),
            outbox,
            rekey_after_messages: cfg.rekey_after_messages,
        };
        let mut declarations = Vec::new();
        let own_key = format!("{}{node_id}", io.control_prefix);
        let queue = inbox.clone();
        let (counts, malformed) = (monitor.clone(), RateLimitedWarning::new());
        declarations.push(Declaration::Subscriber(transport.subscribe(
            &own_key,
            move |sample| {
                // Dropped when its sender's queue is full: the sender's timers retry.
                if queue
                    .push(sample.payload().to_bytes().into_owned())
                    .is_err()
                {
                    Stats::add(&counts.stats.key_exchange_failures, 1);
                    malformed.warn(|| {
                        "Key exchange failed: a malformed key-exchange message was dropped".into()
                    });
                }
            },
        )?));
        let presence_prefix = format!("{namespace}/security/nodes/");
        if auto {
            let presence = commands.clone();
            let wake = inbox.clone();
            let prefix = presence_prefix.clone();
            declarations.push(Declaration::Subscriber(transport.watch_liveliness(
                &format!("{prefix}**"),
                move |key, alive| {
                    if let Some((peer, identity)) =
                        key.strip_prefix(&prefix).and_then(parse_presence)
                    {
                        let _ = presence.try_send(Command::Presence(peer, alive, identity));
                        wake.wake();
                    }
                },
            )?));
            let token = match identity_public {
                Some(k) => format!("{presence_prefix}{node_id}/{}", hex::encode(k)),
                None => format!("{presence_prefix}{node_id}"),
            };
            declarations.push(Declaration::Token(transport.liveliness_token(&token)?));
        }
        let thread_inbox = inbox.clone();
        let handle = std::thread::Builder::new()
            .name("evospikenet-keys".into())
            .spawn(move || run(machine, io, command_rx, &thread_inbox, now))
            .map_err(|e| Error::Transport(format!("could not start the key thread: {e}")))?;
        let manager = Arc::new(KeyManager {
            node_id: node_id.to_owned(),
            commands,
            inbox,
            view,
            monitor,
            thread: Mutex::new(Some(handle)),
            declarations: Mutex::new(declarations),
        });
        // The thread publishes its first view at once; wait for it so `is_active` is
        // right from the start.
        manager.wait_view(|v| v.active || !auto, Duration::from_secs(5));
        Ok(manager)
    }

    /// Stop the thread and drop the declarations. Idempotent.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        self.inbox.wake();
        if let Some(handle) = self.thread.lock().take() {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        self.declarations.lock().clear();
    }

    /// Count and log (`ERROR Key exchange failed: ...`) a failed local exchange step;
    /// returns the error to raise. `reason` must not contain key material.
    pub fn fail(&self, reason: String) -> Error {
        Stats::add(&self.monitor.stats.key_exchange_failures, 1);
        log::error!(target: LOG_TARGET, "Key exchange failed: {reason}");
        Error::KeyExchange(reason)
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

    fn ask<T>(
        &self,
        make: impl FnOnce(ChannelSender<T>) -> Command,
        timeout: Duration,
    ) -> Result<T> {
        let (tx, rx) = bounded(1);
        self.commands
            .send(make(tx))
            .map_err(|_| Error::Closed("communicator"))?;
        self.inbox.wake();
        rx.recv_timeout(timeout)
            .map_err(|_| Error::Timeout("the key manager did not answer".into()))
    }

    // ----- the guide's manual API -----

    /// Start an exchange with `peer`: a fresh X25519 key pair; returns its public key.
    /// Initiating again replaces the pending exchange with that peer.
    pub fn initiate(&self, peer: &str) -> Result<[u8; PUBLIC_KEY_LEN]> {
        self.check_peer_id(peer)?;
        self.ask(
            |tx| Command::Initiate(peer.to_owned(), tx),
            Duration::from_secs(10),
        )
    }

    /// Complete the pending exchange with `peer` (or the only pending one) using the
    /// peer's public key. Returns the peer's id. From here on the node is in DH mode.
    pub fn complete(
        &self,
        peer_public: &[u8; PUBLIC_KEY_LEN],
        peer: Option<&str>,
    ) -> Result<String> {
        if let Some(p) = peer {
            self.check_peer_id(p)?;
        }
        let peer = peer.map(str::to_owned);
        self.ask(
            |tx| Command::Complete(peer, *peer_public, tx),
            Duration::from_secs(10),
        )?
        .map_err(|e| self.fail(e.to_string()))
    }

    // ----- state -----

    fn wait_view(&self, done: impl Fn(&View) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.view;
        let mut v = lock.lock();
        while !done(&v) {
            if changed.wait_until(&mut v, deadline).timed_out() {
                return done(&v);
            }
        }
        true
    }

    /// The fingerprint of our key for `peer`'s exchange (or of our identity key, or of
    /// the latest exchange's key when `peer` is `None`).
    pub fn fingerprint(&self, peer: Option<&str>) -> Result<String> {
        let v = self.view.0.lock();
        let found = match peer {
            Some(p) => v.my_fingerprints.get(p).cloned(),
            None => v.latest_fingerprint.clone(),
        };
        found.ok_or_else(|| {
            Error::InvalidArgument(match peer {
                Some(p) => format!("no key exchange with {p:?} was initiated"),
                None => "no key exchange was initiated and no identity_key is configured".into(),
            })
        })
    }

    /// The fingerprint of the key `peer` used in the exchange that set up our channel.
    pub fn peer_fingerprint(&self, peer: &str) -> Result<String> {
        self.view
            .0
            .lock()
            .peer_fingerprints
            .get(peer)
            .cloned()
            .ok_or_else(|| {
                Error::InvalidArgument(format!("no key exchange with {peer:?} has completed"))
            })
    }

    /// Whether traffic flows both ways with `peer`.
    pub fn session_established(&self, peer: &str) -> bool {
        self.view.0.lock().established.iter().any(|p| p == peer)
    }

    /// Peers with an established session, sorted.
    pub fn established_peers(&self) -> Vec<String> {
        self.view.0.lock().established.clone()
    }

    /// Wait until `session_established(peer)`, or fail with a timeout naming the peer.
    pub fn wait_established(&self, peer: &str, timeout: Duration) -> Result<()> {
        if self.wait_view(|v| v.established.iter().any(|p| p == peer), timeout) {
            return Ok(());
        }
        Err(Error::Timeout(format!(
            "no secure session with {peer:?} within {:.1} s (is it running, on the same \
             network and namespace, with the same PSK or a completed exchange?)",
            timeout.as_secs_f64()
        )))
    }

    /// Whether the node is in DH mode.
    pub fn is_active(&self) -> bool {
        self.view.0.lock().active
    }

    /// A new sender key for this node and a new exchange with every peer. Returns once
    /// every peer acknowledged the new key, or after the switch time-out, with the peers
    /// that acknowledged it; the node seals with the new key from then on.
    pub fn rekey(&self) -> Result<Vec<String>> {
        let wait = Duration::from_millis(SWITCH_TIMEOUT_MS) + Duration::from_secs(2);
        self.ask(Command::Rekey, wait)
    }
}

impl Drop for KeyManager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `peer` or `peer/identity-key-hex` (a presence token's key below the prefix).
fn parse_presence(rest: &str) -> Option<(String, Option<PublicKey>)> {
    let (peer, key) = match rest.split_once('/') {
        Some((peer, hex_key)) => {
            let mut key = [0u8; PUBLIC_KEY_LEN];
            hex::decode_to_slice(hex_key, &mut key).ok()?;
            (peer, Some(key))
        }
        None => (rest, None),
    };
    validate_node_id(peer).ok()?;
    Some((peer.to_owned(), key))
}

fn run(
    mut machine: Machine,
    io: Io,
    commands: Receiver<Command>,
    inbox: &Inbox,
    now: impl Fn() -> Now,
) {
    let mut rekey_waiters: Vec<ChannelSender<Vec<String>>> = Vec::new();
    let mut sealing_key = io.keys.sealing_key().map(|p| p.key_id());
    let mut next_poll = Instant::now();
    io.publish_view(&machine);
    loop {
        let mut actions = Vec::new();
        let mut input = false;
        let mut reply = None;
        // Commands first: a flood of network messages cannot starve the API.
        match commands.try_recv() {
            Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
            Ok(cmd) => {
                input = true;
                (actions, reply) = handle(&mut machine, cmd, now(), &mut rekey_waiters);
            }
            Err(TryRecvError::Empty) => {
                let wait = next_poll.saturating_duration_since(Instant::now());
                if let Some(msg) = inbox.pop(wait) {
                    input = true;
                    actions = machine.on_message(&msg, now());
                }
            }
        }
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + TICK;
            io.group.sweep();
            io.keys.sweep();
            let sealing = io.keys.sealing_key().map(|p| p.key_id());
            if sealing != sealing_key {
                sealing_key = sealing;
                if !machine.is_active() {
                    // PSK rotation in PSK mode: new sessions seal with the new key.
                    io.sender.new_session();
                }
            }
            if machine.is_active()
                && !machine.rekey_in_progress()
                && (io.sender.current().3 >= io.rekey_after_messages
                    || io.sender.sealed_bytes() >= REKEY_AFTER_BYTES)
            {
                actions.extend(machine.start_rekey(now()));
            }
            actions.extend(machine.poll(now()));
        }
        // A message or command may change what callers see without any action (an ACK).
        if input || !actions.is_empty() {
            io.carry_out(actions, &mut rekey_waiters);
            io.publish_view(&machine);
        }
        if let Some(reply) = reply {
            reply();
        }
    }
}

/// A reply to a command, sent once its actions are carried out and the view shows them
/// (so a caller that returns from `complete` sees the new channel at once).
type Reply = Box<dyn FnOnce() + Send>;

fn handle(
    machine: &mut Machine,
    cmd: Command,
    now: Now,
    rekey_waiters: &mut Vec<ChannelSender<Vec<String>>>,
) -> (Vec<Action>, Option<Reply>) {
    match cmd {
        Command::Initiate(peer, reply) => {
            let key = machine.initiate(&peer);
            (
                vec![],
                Some(Box::new(move || {
                    let _ = reply.send(key);
                })),
            )
        }
        Command::Complete(peer, key, reply) => {
            let result = peer
                .map_or_else(|| machine.only_pending(), Ok)
                .and_then(|peer| machine.complete(&peer, &key, now).map(|a| (peer, a)));
            let (actions, result) = match result {
                Ok((peer, actions)) => (actions, Ok(peer)),
                Err(e) => (vec![], Err(e)),
            };
            (
                actions,
                Some(Box::new(move || {
                    let _ = reply.send(result);
                })),
            )
        }
        Command::Rekey(reply) => {
            rekey_waiters.push(reply);
            (machine.start_rekey(now), None)
        }
        Command::Presence(peer, alive, identity) => {
            (machine.presence(&peer, alive, identity, now), None)
        }
        Command::Stop => (vec![], None),
    }
}

impl Io {
    fn carry_out(&self, actions: Vec<Action>, rekey_waiters: &mut Vec<ChannelSender<Vec<String>>>) {
        let stats = &self.monitor.stats;
        for action in actions {
            match action {
                Action::Send { to, bytes } => {
                    let _ = self
                        .transport
                        .put_nonblocking(&format!("{}{to}", self.control_prefix), bytes);
                }
                Action::InstallSenderKey { peer, handover } => {
                    let auth = self
                        .group
                        .sender_auth_id()
                        .map(|_| AuthKey::new(&handover.auth));
                    self.group.install_handover(
                        &peer,
                        &handover.secret,
                        auth,
                        handover.valid_from_ms,
                    );
                }
                Action::AuthKey { epoch, peer, key } => {
                    self.sender
                        .add_auth_recipient(&epoch, &peer, AuthKey::new(&key));
                }
                Action::UseSenderKey(secret) => {
                    // This node opens its own publications too, as in PSK mode (with pins,
                    // under a tag key of its own).
                    let mut raw = Zeroizing::new([0u8; AUTH_KEY_LEN]);
                    random_bytes(raw.as_mut_slice());
                    let auth = self.group.sender_auth_id().map(|_| {
                        let epoch = &secret.session_id;
                        self.sender
                            .add_auth_recipient(epoch, &self.node_id, AuthKey::new(&raw));
                        AuthKey::new(&raw)
                    });
                    self.group.install_handover(&self.node_id, &secret, auth, 0);
                    self.group.enable();
                    self.sender.use_group_key(&secret);
                }
                Action::RetireSender(peer) => {
                    self.group.retire_sender(&peer);
                    log::info!(target: LOG_TARGET, "Keys of peer {peer} are erased (it left, or its PSK was revoked)");
                }
                Action::Established { peer, origin } => {
                    Stats::add(&stats.key_exchanges, 1);
                    match origin {
                        Origin::Manual => {
                            log::info!(target: LOG_TARGET, "Key exchange with {peer} completed");
                            // Publications wait until the peer holds our key.
                            self.outbox.await_peer(&peer);
                        }
                        Origin::FirstContact => {
                            log::debug!(target: LOG_TARGET, "Automatic key exchange with {peer} completed")
                        }
                        Origin::Rekey => {
                            log::debug!(target: LOG_TARGET, "Rekeying key exchange with {peer} completed")
                        }
                    }
                }
                Action::Failure(why) => {
                    Stats::add(&stats.key_exchange_failures, 1);
                    self.failure_log
                        .warn(|| format!("Key exchange failed: {why}"));
                }
                Action::RekeyDone { acked, peers } => {
                    Stats::add(&stats.rekeys, 1);
                    log::debug!(
                        target: LOG_TARGET,
                        "New sender key of {} in use; acknowledged by {} of {peers} peer(s)",
                        self.node_id,
                        acked.len()
                    );
                    for w in rekey_waiters.drain(..) {
                        let _ = w.send(acked.clone());
                    }
                }
            }
        }
    }

    fn publish_view(&self, m: &Machine) {
        let (lock, changed) = &*self.view;
        let mut v = lock.lock();
        v.active = m.is_active();
        v.established = m.established_peers();
        v.latest_fingerprint = m.fingerprint(None);
        v.my_fingerprints = m
            .known_peers()
            .into_iter()
            .filter_map(|p| m.fingerprint(Some(&p)).map(|f| (p, f)))
            .collect();
        v.peer_fingerprints = m
            .known_peers()
            .into_iter()
            .filter_map(|p| m.peer_fingerprint(&p).map(|f| (p, f)))
            .collect();
        drop(v);
        changed.notify_all();
        if self.outbox.is_awaiting() {
            let outlet = Outlet {
                sender: &self.sender,
                transport: &self.transport,
                monitor: &self.monitor,
            };
            let sent = self.outbox.confirm(|peer| m.established(peer), &outlet);
            if sent > 0 {
                log::debug!(
                    target: LOG_TARGET,
                    "{sent} publication(s) held until the key exchange was confirmed were sent"
                );
            }
        }
    }
}
