//! Counters and rate-limited warnings, shared by the communicator and the key manager.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::crypto::envelope::{Header, Mode};
use crate::crypto::now_ms;
use crate::error::Error;
use crate::senders::SenderTable;

/// `log` target of every record; Python sees it as the logger `evospikenet.zenoh_comm`.
pub const LOG_TARGET: &str = "evospikenet::zenoh_comm";
/// [`LOG_TARGET`] as Python's `logging` names it (pyo3-log turns `::` into `.`); the
/// callback thread logs there directly.
pub const PYTHON_LOGGER: &str = "evospikenet.zenoh_comm";

/// Declares [`Stats`] from one list: the struct's fields, [`Stats::NAMES`] and
/// [`Stats::snapshot`] all come from it, so a counter cannot be left out of one of them.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of one communicator; all monotonic. Python's `stats()` returns them
        /// as a dict typed by the `Stats` TypedDict of `_native.pyi` (a test checks that
        /// it lists exactly [`Stats::NAMES`]).
        #[derive(Default, Debug)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// The counters' names, in the order of [`Stats::snapshot`].
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// (name, value) pairs, in a fixed order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed))),*]
            }
        }
    };
}

counters! {
    /// Messages published.
    published,
    /// Messages (and replies) that passed every check and were handed on.
    received,
    /// Bytes put on the wire (publications, requests, replies), headers included.
    bytes_sent,
    /// Bytes of the messages counted in `received`.
    bytes_received,
    /// Messages dropped for failing authentication (or encrypted with no key here).
    decrypt_failures,
    /// Authentic messages dropped as replays, too old, or from a retired session.
    replays_rejected,
    /// Authentic messages whose payload could not be decoded.
    decode_errors,
    /// Messages whose subscriber callback or request handler raised.
    dropped_by_callback_error,
    /// Messages dropped because a `MessageQueue` was full.
    dropped_queue_full,
    /// DH channels established with a peer (manual, automatic and rekeying exchanges).
    key_exchanges,
    /// Key exchange steps that failed, local (a bad key given) or remote (a refused or
    /// malformed message).
    key_exchange_failures,
    /// Times this node switched to a new sender key (`rekey()` or automatic).
    rekeys,
    /// Messages dropped by a bug of ours caught on the callback thread (a panic in
    /// decoding or dispatch), which went on with the next message.
    internal_errors,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A warning that an attacker can trigger at will is logged at most `BURST` times per
/// `PERIOD_MS`; the next one logged says how many were suppressed.
pub struct RateLimitedWarning {
    state: Mutex<(u64, u32, u64)>, // (window start ms, logged in window, suppressed)
    level: log::Level,
}

impl RateLimitedWarning {
    const BURST: u32 = 5;
    const PERIOD_MS: u64 = 10_000;

    pub fn new() -> Self {
        Self::with_level(log::Level::Warn)
    }

    /// The same limit for records of another level.
    pub fn with_level(level: log::Level) -> Self {
        RateLimitedWarning {
            state: Mutex::new((0, 0, 0)),
            level,
        }
    }

    /// Whether a record may be logged now: `Some(number suppressed since the last one)`,
    /// or `None` (this one is suppressed and counted).
    pub fn admit(&self) -> Option<u64> {
        let now = now_ms();
        let mut s = self.state.lock();
        if now.saturating_sub(s.0) >= Self::PERIOD_MS {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 >= Self::BURST {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }

    pub fn warn(&self, message: impl FnOnce() -> String) {
        let Some(suppressed) = self.admit() else {
            return;
        };
        if suppressed > 0 {
            log::log!(target: LOG_TARGET, self.level, "{} ({suppressed} similar messages suppressed)", message());
        } else {
            log::log!(target: LOG_TARGET, self.level, "{}", message());
        }
    }
}

impl Default for RateLimitedWarning {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared by every consumer of one communicator: counters and the drop warnings.
pub struct Monitor {
    pub stats: Stats,
    /// What each sender sent on each topic, accepted or not (read by audit and monitor).
    pub senders: SenderTable,
    /// Limits the error records (with tracebacks) of user callbacks that raise: their
    /// input may come from the network.
    pub callback_failed: RateLimitedWarning,
    decrypt_failed: RateLimitedWarning,
    no_session: RateLimitedWarning,
    replay: RateLimitedWarning,
    decode: RateLimitedWarning,
    internal: RateLimitedWarning,
    no_key_warned: AtomicBool,
    plaintext_warned: AtomicBool,
    /// The node these counters are of (for its log lines).
    node: String,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            stats: Stats::default(),
            senders: SenderTable::default(),
            callback_failed: RateLimitedWarning::default(),
            decrypt_failed: RateLimitedWarning::default(),
            no_session: RateLimitedWarning::default(),
            replay: RateLimitedWarning::default(),
            decode: RateLimitedWarning::default(),
            internal: RateLimitedWarning::with_level(log::Level::Error),
            no_key_warned: AtomicBool::new(false),
            plaintext_warned: AtomicBool::new(false),
            node: String::new(),
        }
    }
}

impl Monitor {
    /// The monitor of node `node`'s communicator.
    pub fn for_node(node: &str) -> Monitor {
        Monitor {
            node: node.to_owned(),
            ..Monitor::default()
        }
    }

    /// Count and report a message that did not pass `Receiver::open`. `wire` is the
    /// message as received: the warning names the sender it claims and the likely cause
    /// for its mode (only when a warning is due, so a flood costs no parsing).
    pub fn rejected(&self, topic: &str, wire: &[u8], err: &Error) {
        let failures = &self.stats.decrypt_failures;
        match err {
            Error::Replay => {
                self.drop_counted(&self.stats.replays_rejected, &self.replay, topic, |t| {
                    format!("Decryption failed for topic: {t} (replayed or stale message)")
                })
            }
            Error::NoKey => {
                Stats::add(failures, 1);
                if !self.no_key_warned.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        target: LOG_TARGET,
                        "Decryption failed for topic: {} (encrypted under a PSK by {}, but \
                         this node has no key: configure the same PSK on every node)",
                        escape_for_log(topic),
                        claimed_sender(wire)
                    );
                }
            }
            Error::NoSession(sender) => self.drop_counted(failures, &self.no_session, topic, |t| {
                format!(
                    "Decryption failed for topic: {t} (no session with {:?} yet: it sealed \
                     this under a DH key it has not handed to this node, as no key exchange \
                     between them has completed)",
                    escape_for_log(sender)
                )
            }),
            _ => self.drop_counted(failures, &self.decrypt_failed, topic, |t| {
                format!("Decryption failed for topic: {t} ({})", likely_cause(wire))
            }),
        }
    }

    /// Warn, once per communicator, when `msg` (just sealed by this node for `topic`) leaves
    /// in plaintext: no PSK is configured and no DH key exchange has completed. Said when
    /// it happens, not at start-up, so a node that enters DH mode before sending anything
    /// (the guide's manual exchange) is never told its traffic is unencrypted.
    pub fn check_plaintext(&self, topic: &str, msg: &[u8]) {
        let plain = Header::parse(msg).is_ok_and(|(h, _)| h.mode == Mode::Plain);
        if plain && !self.plaintext_warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                target: LOG_TARGET,
                "No PSK configured: traffic of node {} (here on topic {}) is NOT encrypted or \
                 authenticated, as no DH key exchange has completed (set EVOSPIKENET_PSK or \
                 ZenohConfig(psk=...))",
                escape_for_log(&self.node),
                escape_for_log(topic)
            );
        }
    }

    /// Count and report an authentic message whose payload could not be decoded.
    pub fn undecodable(&self, topic: &str, why: &str) {
        self.drop_counted(&self.stats.decode_errors, &self.decode, topic, |t| {
            format!(
                "Undecodable payload dropped for topic: {t}: {}",
                escape_for_log(why)
            )
        });
    }

    /// Count and report a bug of ours caught while a message was handled (a panic on the
    /// callback thread): that message is dropped, the next ones are handled as usual.
    pub fn internal_error(&self, topic: &str, what: &str) {
        self.drop_counted(&self.stats.internal_errors, &self.internal, topic, |t| {
            format!(
                "Internal error (a bug in evospikenet) while handling a message for topic \
                 {t}, which was dropped: {}",
                escape_for_log(what)
            )
        });
    }

    /// Count a message dropped on `topic` in `counter`, and warn through `limit`:
    /// `message` gets the topic escaped for the log, and runs only when a warning is due
    /// (a flood costs no formatting or parsing).
    fn drop_counted(
        &self,
        counter: &AtomicU64,
        limit: &RateLimitedWarning,
        topic: &str,
        message: impl FnOnce(&str) -> String,
    ) {
        Stats::add(counter, 1);
        limit.warn(|| message(&escape_for_log(topic)));
    }
}

/// `text` with its control and other non-printable characters escaped as Rust's
/// `escape_debug` writes them (`\n`, `\u{1b}`, `\u{2028}`), for every log line that
/// carries a value from the network (topics, sender ids): Zenoh accepts any character in
/// a key expression, and a raw newline would let a sender forge log lines. Printable text,
/// quotes and backslashes included, comes back unchanged and borrowed.
pub fn escape_for_log(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(|c: char| !is_printable(c)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if is_printable(c) {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    Cow::Owned(out)
}

/// Whether `str::escape_debug` leaves `c` as it is (quotes and backslash aside). It is
/// asked with a base letter in front: a combining mark is printable there, although
/// `char::escape_debug` on its own would escape it.
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    let mut buf = [b'a'; 5];
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    let pair = std::str::from_utf8(&buf[..len]).expect("a letter and one encoded char");
    pair.escape_debug().nth(1) == Some(c)
}

/// `"name"` as the message's header claims it (unauthenticated, escaped), for logs.
fn claimed_sender(wire: &[u8]) -> String {
    match Header::parse(wire) {
        Ok((h, _)) => format!("{:?}", escape_for_log(h.sender)),
        Err(_) => "an unknown sender".into(),
    }
}

/// Why a message that failed authentication most likely did, from its (unauthenticated)
/// header: the advice differs by mode.
fn likely_cause(wire: &[u8]) -> String {
    let Ok((h, _)) = Header::parse(wire) else {
        return "malformed: not an evospikenet message".into();
    };
    let who = escape_for_log(h.sender);
    match h.mode {
        Mode::Plain => {
            format!("plaintext from {who:?}, refused: this node only accepts encrypted traffic")
        }
        Mode::Psk => format!(
            "sealed under a PSK by {who:?}: its PSK probably differs from this node's, the \
             message was altered, or this node is in DH mode and refuses PSK-mode data"
        ),
        Mode::Dh | Mode::DhAuth => format!(
            "sealed under a DH key of {who:?} that this node does not hold: the message was \
             altered, or that key was retired"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stats()` is typed by the `Stats` TypedDict of the stub: it must list exactly these
    /// counters, in this order.
    #[test]
    fn the_stub_types_every_counter() {
        let stub = include_str!("../python/evospikenet/_native.pyi");
        let (_, body) = stub
            .split_once("class Stats(TypedDict):")
            .expect("the stub declares Stats");
        let fields: Vec<&str> = body
            .lines()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter_map(|l| l.strip_prefix("    ")?.strip_suffix(": int"))
            .filter(|name| name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        assert_eq!(fields, Stats::NAMES);
        assert_eq!(Stats::default().snapshot().len(), Stats::NAMES.len());
    }

    #[test]
    fn only_a_plaintext_header_is_warned_about() {
        let header = |mode| {
            let mut msg = Vec::new();
            Header {
                mode,
                kind: crate::crypto::envelope::Kind::Publish,
                key_id: crate::crypto::keys::KeyId([0; 4]),
                sender: "node-1",
                session_id: [0; 16],
                session_start_ms: 0,
                time_offset_ms: 0,
                counter: 0,
            }
            .write(&mut msg);
            msg
        };
        let m = Monitor::for_node("node-1");
        m.check_plaintext("t", &header(Mode::Psk));
        // A buffer whose second byte reads "plaintext" but that is no header.
        m.check_plaintext("t", &[0, Mode::Plain as u8, 0]);
        assert!(!m.plaintext_warned.load(Ordering::Relaxed));
        m.check_plaintext("t", &header(Mode::Plain));
        assert!(m.plaintext_warned.load(Ordering::Relaxed));
    }

    #[test]
    fn records_from_rust_and_from_python_reach_one_logger() {
        assert_eq!(PYTHON_LOGGER, LOG_TARGET.replace("::", "."));
    }

    #[test]
    fn ordinary_topics_and_ids_are_logged_unchanged() {
        for text in [
            "spikes/pfc/v1",
            "heartbeat/*",
            "node-1_a.b",
            "région/脳/e\u{301}",
            r#"back\slash "quoted" 'single'"#,
            "",
        ] {
            assert!(matches!(escape_for_log(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        let cases = [
            ("t/x\nWARNING forged line", r"t/x\nWARNING forged line"),
            ("a\r\n\tb", r"a\r\n\tb"),
            ("\u{1b}[31mred", r"\u{1b}[31mred"),
            ("nul\0", r"nul\0"),
            ("del\u{7f}", r"del\u{7f}"),
            // Line breaks to Unicode-aware readers, and text direction overrides.
            ("next\u{85}line", r"next\u{85}line"),
            ("ls\u{2028}ps\u{2029}", r"ls\u{2028}ps\u{2029}"),
            ("rlo\u{202e}txt", r"rlo\u{202e}txt"),
            ("zw\u{200b}sp", r"zw\u{200b}sp"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_for_log(raw), escaped, "{raw:?}");
            assert!(!escape_for_log(raw).chars().any(|c| !is_printable(c)));
        }
    }
}
