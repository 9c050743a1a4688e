//! The communicator: transport + crypto + codec. The Rust API the Python layer wraps,
//! testable on its own with `cargo test`.
//!
//! publish: payload bytes -> envelope seal (header, AAD = header + topic) -> zenoh put
//! receive: zenoh sample -> envelope open (tag, then replay) -> handler

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use zenoh::pubsub::Subscriber;
use zenoh::query::{Query, Queryable};
use zenoh::Wait;

use crate::codec::Format;
use crate::compress::{self, Compression};
use crate::config::{validate_node_id, Config};
use crate::crypto::envelope::Kind;
use crate::crypto::group::GroupKeys;
use crate::crypto::keys::Psk;
use crate::crypto::session::{KeyRing, NodeHistory, Opened, Receiver, ReceiverPolicy, Sender};
use crate::dh::KeyManager;
use crate::error::{Error, Result};
use crate::monitor::{escape_for_log, Monitor, Stats};
use crate::outbox::{Outbox, Outlet};
use crate::transport::{QueryOutcome, Transport};

/// User topics may not start with this: the key exchange lives there.
pub const RESERVED_TOPIC_PREFIX: &str = "security/";

/// Pause before re-sending a request that no service answered.
const REQUEST_RETRY: Duration = Duration::from_millis(50);

/// One message that passed every check.
#[derive(Debug)]
pub struct Message {
    /// The topic without the namespace prefix.
    pub topic: String,
    pub sender: String,
    pub format: Format,
    pub payload: Vec<u8>,
    /// When the sender sealed it (ms since the Unix epoch, sender's clock).
    pub timestamp_ms: u64,
}

/// Something declared on the Zenoh session that can be withdrawn.
pub trait Declaration: Send + 'static {
    /// Withdraw it. Errors mean the session is closed already, which withdrew it.
    fn undeclare(self);
}

impl Declaration for Subscriber<()> {
    fn undeclare(self) {
        let _ = Subscriber::undeclare(self).wait();
    }
}

impl Declaration for Queryable<()> {
    fn undeclare(self) {
        let _ = Queryable::undeclare(self).wait();
    }
}

/// A declaration the caller holds a handle to: active until `undeclare()` or until the
/// communicator closes, whichever comes first; both are idempotent.
pub struct Declared<D: Declaration> {
    inner: Mutex<Option<D>>,
}

/// A subscription (`Communicator::subscribe`).
pub type Subscription = Declared<Subscriber<()>>;
/// A served topic (`Communicator::serve`).
pub type Service = Declared<Queryable<()>>;

impl<D: Declaration> Declared<D> {
    fn new(declaration: D) -> Arc<Self> {
        Arc::new(Declared {
            inner: Mutex::new(Some(declaration)),
        })
    }

    pub fn undeclare(&self) -> Result<()> {
        if let Some(d) = self.inner.lock().take() {
            d.undeclare();
        }
        Ok(())
    }

    pub fn is_active(&self) -> bool {
        self.inner.lock().is_some()
    }
}

/// Any declared handle, whatever it declares: what the communicator tracks and the
/// binding layer's `Handle` class wraps.
pub trait Handle: Send + Sync {
    fn undeclare(&self) -> Result<()>;
    fn is_active(&self) -> bool;
    /// Forget the declaration without withdrawing it: the closed session did.
    fn release(&self);
}

impl<D: Declaration> Handle for Declared<D> {
    fn undeclare(&self) -> Result<()> {
        Declared::undeclare(self)
    }

    fn is_active(&self) -> bool {
        Declared::is_active(self)
    }

    fn release(&self) {
        drop(self.inner.lock().take());
    }
}

/// An authenticated request waiting for its reply; can be answered from any thread.
pub struct Responder {
    query: Query,
    /// The request's topic without the namespace (for the warnings).
    topic: String,
    binding: Vec<u8>,
    sender: Arc<Sender>,
    monitor: Arc<Monitor>,
}

impl Responder {
    /// Seal and send the reply (bound to the request it answers).
    pub fn reply_with(
        self,
        format: Format,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let key = self.query.key_expr().as_str().to_owned();
        let (msg, _, _) = self.sender.seal(
            Kind::Reply,
            &key,
            &self.binding,
            format as u8,
            size_hint,
            write,
        )?;
        self.monitor.check_plaintext(&self.topic, &msg);
        Stats::add(&self.monitor.stats.bytes_sent, msg.len() as u64);
        Transport::reply(&self.query, msg)
    }

    /// Tell the requester that the request could not be handled (it raises at once
    /// instead of waiting for its timeout). `why` must not contain secrets.
    pub fn reply_error(self, why: &str) -> Result<()> {
        self.reply_with(Format::RemoteError, why.len(), |buf| {
            buf.extend_from_slice(why.as_bytes());
            Ok(())
        })
    }
}

/// The binding of a reply to its request: requester id, session and counter.
fn request_binding(sender: &str, session_id: &[u8], counter: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(sender.len() + 1 + session_id.len() + 8);
    b.push(sender.len() as u8);
    b.extend_from_slice(sender.as_bytes());
    b.extend_from_slice(session_id);
    b.extend_from_slice(&counter.to_be_bytes());
    b
}

/// An encrypted Zenoh communicator for one node.
pub struct Communicator {
    node_id: String,
    prefix: String,
    transport: Arc<Transport>,
    keys: Arc<KeyRing>,
    group: Arc<GroupKeys>,
    key_manager: Arc<KeyManager>,
    sender: Arc<Sender>,
    policy: ReceiverPolicy,
    /// What this node's subscriptions and services accepted: each new one starts from
    /// it, so a replay is refused node-wide, not only by the consumer that saw the
    /// original.
    history: Arc<NodeHistory>,
    replies: Receiver,
    monitor: Arc<Monitor>,
    /// Every live subscription and service, so they keep running when the caller drops
    /// its handle (as `comm.subscribe("t", print)` does); emptied on close.
    handles: Mutex<Vec<Arc<dyn Handle>>>,
    closed: AtomicBool,
    /// Publications in counter order, and those held for a manual key exchange.
    outbox: Arc<Outbox>,
    compression: Option<Compression>,
}

impl Communicator {
    /// Open a Zenoh session for `node_id` with `config`.
    pub fn open(node_id: &str, config: &Config) -> Result<Communicator> {
        validate_node_id(node_id)?;
        config.validate()?;
        let keys = Arc::new(KeyRing::new(config.psk.clone()));
        let group = Arc::new(GroupKeys::new(config.policy.session_grace_ms));
        let transport = Arc::new(Transport::open(config)?);
        let sender = Arc::new(Sender::new(node_id, keys.clone()));
        let monitor = Arc::new(Monitor::for_node(node_id));
        let outbox = Arc::new(Outbox::default());
        let key_manager = KeyManager::start(
            node_id,
            &config.namespace,
            config.dh.clone(),
            keys.clone(),
            group.clone(),
            sender.clone(),
            monitor.clone(),
            transport.clone(),
            outbox.clone(),
            config.policy.freshness_ms,
        )
        .inspect_err(|_| {
            let _ = transport.close();
        })?;
        Ok(Communicator {
            node_id: node_id.to_owned(),
            prefix: format!("{}/", config.namespace),
            sender,
            replies: Receiver::with_group(keys.clone(), group.clone(), config.policy),
            policy: config.policy,
            history: Arc::new(NodeHistory::default()),
            keys,
            group,
            key_manager,
            transport,
            monitor,
            handles: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            outbox,
            compression: config.compression,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether traffic is encrypted: a PSK is configured or the node is in DH mode.
    pub fn is_encrypted(&self) -> bool {
        self.keys.has_key() || self.group.is_enabled()
    }

    /// DH mode: exchanges, fingerprints, rekeying.
    pub fn key_manager(&self) -> &KeyManager {
        &self.key_manager
    }

    /// Rotate the PSK: `new` is accepted at once and sealed with after `seal_after`;
    /// older keys stay accepted for `grace` after that. Nodes that all rotate within
    /// `seal_after` of each other lose no message.
    pub fn rotate_psk(&self, new: Psk, seal_after: Duration, grace: Duration) -> Result<()> {
        self.check_open()?;
        if !self.keys.has_key() {
            return Err(Error::InvalidArgument(
                "rotate_psk needs a communicator configured with a psk".into(),
            ));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.keys.rotate(new, ms(seal_after), ms(grace));
        Ok(())
    }

    pub fn stats(&self) -> &Stats {
        &self.monitor.stats
    }

    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The node ids whose presence tokens (`{namespace}/security/nodes/{id}`, declared by
    /// nodes in automatic DH mode) answer within `timeout`, sorted, without duplicates.
    /// Tokens are not authenticated: this is who *claims* to be present.
    pub fn present_nodes(&self, timeout: Duration) -> Result<Vec<String>> {
        self.check_open()?;
        let prefix = format!("{}security/nodes/", self.prefix);
        let keys = self
            .transport
            .liveliness_keys(&format!("{prefix}**"), timeout)?;
        let mut nodes: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.split('/').next())
            .filter(|id| validate_node_id(id).is_ok())
            .map(str::to_owned)
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// Listening endpoints (real ports).
    pub fn locators(&self) -> Vec<String> {
        self.transport.locators()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed("communicator"))
        } else {
            Ok(())
        }
    }

    /// The full key expression of a user topic. Publishing needs a concrete key
    /// (`wildcards = false`); subscribing may use `*` and `**`.
    pub fn key_expr(&self, topic: &str, wildcards: bool) -> Result<String> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid topic {topic:?}: {why}"));
        if topic.is_empty() {
            return Err(bad("it is empty"));
        }
        if topic.starts_with('/') || topic.ends_with('/') || topic.contains("//") {
            return Err(bad("no leading, trailing or double '/' allowed"));
        }
        if topic.contains(['$', '?', '#']) {
            return Err(bad("'$', '?' and '#' are not allowed"));
        }
        if topic.starts_with(RESERVED_TOPIC_PREFIX) {
            return Err(bad(
                "topics under 'security/' are reserved for the key exchange",
            ));
        }
        let has_wild = topic.split('/').any(|c| c.contains('*'));
        if has_wild && !wildcards {
            return Err(bad("wildcards are only allowed when subscribing"));
        }
        let key = format!("{}{}", self.prefix, topic);
        zenoh::key_expr::KeyExpr::try_from(key.as_str()).map_err(|_| {
            bad("not a valid key expression (use '*' and '**' only as whole chunks)")
        })?;
        Ok(key)
    }

    fn user_topic<'a>(&self, key: &'a str) -> &'a str {
        key.strip_prefix(&self.prefix).unwrap_or(key)
    }

    /// Seal a payload written by `write` straight into the message buffer, then put it,
    /// compressed as the configuration says. While a manual key exchange awaits its
    /// peer's confirmation, the payload is held and sent once it confirms (see `outbox`).
    pub fn publish_with(
        &self,
        topic: &str,
        format: Format,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.publish_compressed_with(topic, format, self.compression, size_hint, write)
    }

    /// The compression publications use unless told otherwise (`Config::compression`).
    pub fn default_compression(&self) -> Option<Compression> {
        self.compression
    }

    /// As `publish_with`, compressed with `compression` (none with `None`) before sealing.
    /// The flag and the algorithm travel inside the sealed plaintext (`compress`).
    pub fn publish_compressed_with(
        &self,
        topic: &str,
        format: Format,
        compression: Option<Compression>,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.check_open()?;
        let key = self.key_expr(topic, false)?;
        // Compressed outside the send-order lock: it is the slow part.
        let mut write = Some(write);
        let compressed = match (compression, write.take_if(|_| compression.is_some())) {
            (Some(algorithm), Some(write)) => {
                let mut raw = Vec::with_capacity(size_hint);
                write(&mut raw)?;
                let mut out = Vec::new();
                // What does not shrink goes as it is, flag clear.
                if compress::compress_if_smaller(algorithm, &raw, &mut out)? {
                    Some((out, format as u8 | compress::COMPRESSED_FLAG))
                } else {
                    Some((raw, format as u8))
                }
            }
            _ => None,
        };
        let mut in_order = self.outbox.turn();
        if in_order.must_hold() {
            let (body, format_byte) = match compressed {
                Some(c) => c,
                None => {
                    let mut raw = Vec::with_capacity(size_hint);
                    write.expect("an uncompressed publication keeps its writer")(&mut raw)?;
                    (raw, format as u8)
                }
            };
            return in_order.hold(&key, topic, format_byte, body);
        }
        let outlet = self.outlet();
        let put = match compressed {
            Some((body, format_byte)) => {
                outlet.seal_and_put(&key, topic, format_byte, body.len(), |buf| {
                    buf.extend_from_slice(&body);
                    Ok(())
                })
            }
            None => {
                let write = write.expect("an uncompressed publication keeps its writer");
                outlet.seal_and_put(&key, topic, format as u8, size_hint, write)
            }
        };
        drop(in_order);
        put
    }

    fn outlet(&self) -> Outlet<'_> {
        Outlet {
            sender: &self.sender,
            transport: &self.transport,
            monitor: &self.monitor,
        }
    }

    /// Publish `payload` as `format`.
    pub fn publish(&self, topic: &str, format: Format, payload: &[u8]) -> Result<()> {
        self.publish_with(topic, format, payload.len(), |buf| {
            buf.extend_from_slice(payload);
            Ok(())
        })
    }

    /// Subscribe to `topic` (wildcards allowed). `handler` runs on Zenoh's receive threads
    /// with every message that authenticated, was not a replay, and has a known format.
    pub fn subscribe(
        &self,
        topic: &str,
        handler: impl Fn(Message) + Send + Sync + 'static,
    ) -> Result<Arc<Subscription>> {
        let (key, receiver) = self.consumer(topic)?;
        let monitor = self.monitor.clone();
        let prefix = self.prefix.clone();
        let subscriber = self.transport.subscribe(&key, move |sample| {
            let key = sample.key_expr().as_str();
            let topic = key.strip_prefix(&prefix).unwrap_or(key);
            let bytes = sample.payload().to_bytes();
            let opened = receiver.open(&bytes, key, b"", Kind::Publish);
            if let Some(msg) = accept(&monitor, topic, &bytes, opened) {
                handler(msg);
            }
        })?;
        Ok(self.track(Declared::new(subscriber)))
    }

    /// Answer requests on `topic`: `handler` gets each authenticated request and a
    /// `Responder` to answer it with (now or later, from any thread).
    pub fn serve(
        &self,
        topic: &str,
        handler: impl Fn(Message, Responder) + Send + Sync + 'static,
    ) -> Result<Arc<Service>> {
        let (key, receiver) = self.consumer(topic)?;
        let monitor = self.monitor.clone();
        let sender = self.sender.clone();
        let prefix = self.prefix.clone();
        let queryable = self.transport.queryable(&key, move |query| {
            let key = query.key_expr().as_str().to_owned();
            let topic = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
            if topic.starts_with(RESERVED_TOPIC_PREFIX) {
                return; // a key exchange reaching a wildcard service: not for it
            }
            let Some(payload) = query.payload() else {
                monitor.rejected(&topic, &[], &Error::Authentication);
                return;
            };
            let bytes = payload.to_bytes();
            let opened = receiver.open(&bytes, &key, b"", Kind::Request);
            // The reply is bound to the request: requester, session, counter.
            let binding = opened
                .as_ref()
                .ok()
                .map(|o| request_binding(&o.sender, &o.session_id, o.counter));
            if let (Some(msg), Some(binding)) = (accept(&monitor, &topic, &bytes, opened), binding)
            {
                let responder = Responder {
                    query,
                    topic,
                    binding,
                    sender: sender.clone(),
                    monitor: monitor.clone(),
                };
                handler(msg, responder);
            }
        })?;
        Ok(self.track(Declared::new(queryable)))
    }

    /// The key expression of a new subscription or service on `topic`, and its receiver,
    /// which starts from what the node already accepted.
    fn consumer(&self, topic: &str) -> Result<(String, Receiver)> {
        self.check_open()?;
        let key = self.key_expr(topic, true)?;
        let receiver = Receiver::for_node(
            self.keys.clone(),
            self.group.clone(),
            self.policy,
            &self.history,
        );
        Ok((key, receiver))
    }

    /// Keep `handle` alive until it is undeclared or the communicator closes.
    fn track<D: Declaration>(&self, handle: Arc<Declared<D>>) -> Arc<Declared<D>> {
        let mut all = self.handles.lock();
        all.retain(|h| h.is_active());
        all.push(handle.clone());
        handle
    }

    /// Send a request and wait up to `timeout` for the first authentic reply.
    ///
    /// The request goes to every service on the key (its responder set), each of which
    /// accepts it once: a captured request replayed to any of them is refused by that
    /// node's replay state. Each reply is bound to the request it answers.
    ///
    /// While no service answers at all (none declared yet, or its declaration has not
    /// reached us), the request is sent again until the timeout: a service that exists
    /// but did not answer acceptably is never asked twice.
    pub fn request_with(
        &self,
        topic: &str,
        format: Format,
        size_hint: usize,
        write: impl Fn(&mut Vec<u8>) -> Result<()>,
        timeout: Duration,
    ) -> Result<Message> {
        self.check_open()?;
        let key = self.key_expr(topic, false)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (msg, session_id, counter) =
                self.sender
                    .seal(Kind::Request, &key, b"", format as u8, size_hint, &write)?;
            self.monitor.check_plaintext(topic, &msg);
            Stats::add(&self.monitor.stats.bytes_sent, msg.len() as u64);
            let binding = request_binding(&self.node_id, &session_id, counter);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let outcome = self.transport.query(&key, msg, left, |reply_key, bytes| {
                let opened = self.replies.open(bytes, reply_key, &binding, Kind::Reply);
                accept(&self.monitor, self.user_topic(reply_key), bytes, opened)
            })?;
            match outcome {
                QueryOutcome::Accepted(m) if m.format == Format::RemoteError => {
                    return Err(Error::Remote(format!(
                        "the service on topic {topic:?} ({}) failed: {}",
                        escape_for_log(&m.sender),
                        escape_for_log(&String::from_utf8_lossy(&m.payload))
                    )))
                }
                QueryOutcome::Accepted(m) => return Ok(m),
                QueryOutcome::NoReply if std::time::Instant::now() + REQUEST_RETRY < deadline => {
                    std::thread::sleep(REQUEST_RETRY);
                }
                _ => {
                    return Err(Error::Timeout(format!(
                        "no reply to request on topic {topic:?} within {:.3} s",
                        timeout.as_secs_f64()
                    )))
                }
            }
        }
    }

    /// Close the session. Idempotent; subscriptions and services stop with it.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.key_manager.stop();
        self.outbox.abandon();
        let result = self.transport.close();
        // The session undeclared them; dropping the declarations releases the callbacks.
        for h in self.handles.lock().drain(..) {
            h.release();
        }
        result
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The message `opened` holds, or `None` for a message refused by `Receiver::open` or with
/// a payload format it cannot have (both counted and logged). `wire` is the message as
/// received; its header names the sender in the per-sender table and the drop warning.
fn accept(monitor: &Monitor, topic: &str, wire: &[u8], opened: Result<Opened>) -> Option<Message> {
    if !topic.starts_with(RESERVED_TOPIC_PREFIX) {
        monitor
            .senders
            .record(topic, wire, opened.as_ref().map(|_| ()));
    }
    let wire_len = wire.len();
    let mut opened = opened.map_err(|e| monitor.rejected(topic, wire, &e)).ok()?;
    if opened.format & compress::COMPRESSED_FLAG != 0 {
        match compress::decompress(&opened.payload) {
            Ok(payload) => opened.payload = payload,
            Err(e) => {
                monitor.undecodable(topic, &e.to_string());
                return None;
            }
        }
        opened.format &= !compress::COMPRESSED_FLAG;
    }
    match Format::from_byte(opened.format) {
        Ok(Format::RemoteError) if opened.kind != Kind::Reply => {
            monitor.undecodable(topic, "an error payload outside a reply");
            None
        }
        Ok(format) => {
            Stats::add(&monitor.stats.received, 1);
            Stats::add(&monitor.stats.bytes_received, wire_len as u64);
            Some(Message {
                topic: topic.to_owned(),
                sender: opened.sender,
                format,
                payload: opened.payload,
                timestamp_ms: opened.timestamp_ms,
            })
        }
        Err(e) => {
            monitor.undecodable(topic, &e.to_string());
            None
        }
    }
}
