//! What the fuzz targets check, as plain functions on a byte slice.
//!
//! Each function feeds its input to one family of parsers of network bytes and asserts
//! properties that must hold for *any* input: no panic, and where a parse succeeds, that
//! the result is consistent (it re-encodes to the same bytes, an accepted message is never
//! accepted twice, an error never echoes key material). The libFuzzer targets in
//! `fuzz_targets/` call them; so does `tests/fuzz_corpus.rs` (stable Rust, CI), which
//! includes this file and also writes the seed corpus from `seeds` (`seeds.rs`).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use evospikenet::codec::{numeric_itemsize, parse_array, write_array_trailer, Format};
use evospikenet::crypto::envelope::{self, Header, Kind, Mode, SESSION_ID_LEN};
use evospikenet::crypto::group::{GroupKeys, GroupSecret, ANNOUNCEMENT_LEN};
use evospikenet::crypto::handshake::{
    normalize_fingerprint, parse_public_key, parse_public_key_hex, IdentityKey,
};
use evospikenet::crypto::keys::{Psk, SessionKey};
use evospikenet::crypto::sender_auth::{append_trailer, recipient_id, AuthKey};
use evospikenet::crypto::session::{KeyRing, Opened, Receiver, ReceiverPolicy};
use evospikenet::dh::message::{open_sealed, Body, Handover, Message};
use evospikenet::dh::{Action, Machine, Now, Settings};
use evospikenet::error::Error;

/// A target's check: panics if the input breaks a property.
pub type Check = fn(&[u8]);

/// The targets, by the name of their folder under `fuzz/corpus/`.
pub const TARGETS: [(&str, Check); 4] = [
    ("envelope", envelope),
    ("codec", codec),
    ("control", control),
    ("keys", keys),
];

/// The PSK the envelope seeds are sealed with (a test value, not a secret).
pub const PSK_HEX: &str = "6a0f3c9e2b714d58a6e1f0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
/// A PSK the receivers do not hold.
pub const OTHER_PSK_HEX: &str = "11f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddee";
/// Topic every envelope seed is sealed on.
pub const TOPIC: &str = "evospikenet/fuzz/t";
/// The request binding of the reply seeds (requester id, session id, counter).
pub const BINDING: &[u8] =
    b"\x06node-2\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\x22\0\0\0\0\0\0\0\x07";
/// The sender of the seeds, and the one whose DH-mode sender key the receivers hold.
pub const SENDER: &str = "node-1";
/// Session start of the seeds (a fixed date: the receivers here accept any age).
pub const START_MS: u64 = 1_700_000_000_000;
/// Pairwise key and IV the control seeds are sealed under.
pub const CONTROL_KEY: [u8; 32] = [0x3c; 32];
pub const CONTROL_IV: [u8; 12] = [0x9a; 12];

fn psk() -> &'static Arc<KeyRing> {
    static RING: OnceLock<Arc<KeyRing>> = OnceLock::new();
    RING.get_or_init(|| Arc::new(KeyRing::new(Some(Psk::from_hex(PSK_HEX).unwrap()))))
}

/// The DH-mode sender key of `SENDER` (a fixed announcement).
pub fn group_secret() -> GroupSecret {
    let mut a = Vec::with_capacity(ANNOUNCEMENT_LEN);
    a.extend_from_slice(&[0x5e; SESSION_ID_LEN]);
    a.extend_from_slice(&(START_MS + 1).to_be_bytes());
    a.extend((0..ANNOUNCEMENT_LEN - SESSION_ID_LEN - 8).map(|i| i as u8 ^ 0xa5));
    GroupSecret::from_announcement(&a).unwrap()
}

/// Receivers as nodes run them: no key (plaintext only), a PSK, and a PSK node in DH mode
/// holding `SENDER`'s sender key. Their freshness window is unbounded so that the seeds
/// (sealed at a fixed date) reach the replay window; `strict` has the default policy.
struct Receivers {
    plain: Receiver,
    psk: Receiver,
    dh: Receiver,
    strict: Receiver,
}

fn receivers() -> Receivers {
    let policy = ReceiverPolicy {
        freshness_ms: u64::MAX,
        session_grace_ms: 60_000,
    };
    let group = Arc::new(GroupKeys::new(60_000));
    group.install(SENDER, &group_secret());
    group.enable();
    Receivers {
        plain: Receiver::new(Arc::new(KeyRing::new(None)), policy),
        psk: Receiver::new(psk().clone(), policy),
        dh: Receiver::with_group(psk().clone(), group, policy),
        strict: Receiver::new(psk().clone(), ReceiverPolicy::default()),
    }
}

/// Open `msg` as the receive path does: the kind and binding a consumer would expect.
fn open(rx: &Receiver, msg: &[u8]) -> Result<Opened, Error> {
    let kind = Header::parse(msg)
        .map(|(h, _)| h.kind)
        .unwrap_or(Kind::Publish);
    let binding: &[u8] = if kind == Kind::Reply { BINDING } else { b"" };
    rx.open(msg, TOPIC, binding, kind)
}

/// An opened message's payload goes on to the codec, as in `comm::accept`.
fn decode(opened: &Opened) {
    if let Ok(Format::Numpy) = Format::from_byte(opened.format) {
        check_array(&opened.payload);
    }
}

/// Wire messages: `Header::parse`, then `Receiver::open` in plaintext, PSK and DH mode.
///
/// The input is tried as one message, and also as a sequence of messages (see `frames`)
/// fed to the same receivers, which exercises the per-sender session table and the
/// replay window: a message is never accepted twice.
pub fn envelope(data: &[u8]) {
    if let Ok((h, len)) = Header::parse(data) {
        assert_eq!(len, h.encoded_len());
        let mut rewritten = Vec::with_capacity(len);
        h.write(&mut rewritten);
        assert_eq!(
            rewritten,
            data[..len],
            "a parsed header re-encodes identically"
        );
    }
    let rx = receivers();
    for (name, r) in [("psk", &rx.psk), ("dh", &rx.dh), ("strict", &rx.strict)] {
        if let Ok(o) = open(r, data) {
            assert_eq!(o.sender, Header::parse(data).unwrap().0.sender);
            assert!(o.payload.len() < data.len());
            decode(&o);
            assert!(
                matches!(open(r, data), Err(Error::Replay)),
                "{name}: the same message accepted twice"
            );
        }
    }
    if let Ok(o) = open(&rx.plain, data) {
        assert_eq!(Header::parse(data).unwrap().0.mode, Mode::Plain);
        decode(&o);
    }

    let rx = receivers();
    let mut seen = [HashSet::new(), HashSet::new()];
    for frame in frames(data) {
        let _ = open(&rx.plain, frame);
        let _ = open(&rx.strict, frame);
        for (r, seen) in [&rx.psk, &rx.dh].into_iter().zip(&mut seen) {
            if let Ok(o) = open(r, frame) {
                assert!(
                    seen.insert((o.sender.clone(), o.session_id, o.counter)),
                    "message {} of session {:02x?} accepted twice",
                    o.counter,
                    o.session_id
                );
            }
        }
    }
}

/// A frame length at or above this is a back-reference: frame number `length - REPEAT`
/// once more. A replay then costs the fuzzer a two-byte mutation, not a copy of a whole
/// message at the right offset.
pub const REPEAT: u16 = 0xFF00;

/// Split `data` into frames: a u16 little-endian length, then that many bytes (the last
/// frame takes what is left), or a back-reference (see `REPEAT`).
pub fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    while data.len() >= 2 {
        let n = u16::from_le_bytes([data[0], data[1]]);
        data = &data[2..];
        if n >= REPEAT {
            if let Some(&earlier) = out.get(usize::from(n - REPEAT)) {
                out.push(earlier);
            }
            continue;
        }
        let (frame, rest) = data.split_at(usize::from(n).min(data.len()));
        out.push(frame);
        data = rest;
    }
    out
}

/// Join messages into the framing `frames` reads.
pub fn framed(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Payload codec: `Format::from_byte`, `numeric_itemsize`, `parse_array`.
pub fn codec(data: &[u8]) {
    if let Some(&b) = data.first() {
        if let Ok(f) = Format::from_byte(b) {
            assert_eq!(f as u8, b);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(size) = numeric_itemsize(text) {
            assert!((1..=32).contains(&size));
        }
    }
    check_array(data);
}

fn check_array(payload: &[u8]) {
    let Ok(meta) = parse_array(payload) else {
        return;
    };
    let itemsize = numeric_itemsize(meta.dtype).expect("a parsed dtype is numeric");
    let count: usize = meta.shape.iter().product();
    assert_eq!(count * itemsize, meta.data_len);
    let mut rebuilt = payload[..meta.data_len].to_vec();
    write_array_trailer(&mut rebuilt, meta.dtype, &meta.shape).unwrap();
    assert_eq!(rebuilt, payload, "a parsed trailer re-encodes identically");
}

fn control_key() -> SessionKey {
    SessionKey::from_key_and_iv(&CONTROL_KEY, &CONTROL_IV)
}

/// The wall clock of the machine the control inputs are fed to (the INIT seeds carry
/// timestamps just after it).
pub const CONTROL_WALL_MS: u64 = 1_800_000_000_000;

/// Key-management messages: `Message::parse` (the signed part is a prefix, ids are
/// sane), `open_sealed` under a fixed key, and a fresh automatic-mode node (holding the
/// seeds' PSK) fed the input: one message can make it answer an INIT (drawing the
/// sender-auth key of its answer), never install or use a key, report an exchange or
/// retire a peer.
pub fn control(data: &[u8]) {
    let key = control_key();
    if let Ok(m) = Message::parse(data) {
        assert!(data.starts_with(m.signed));
        for id in [m.from, m.to] {
            assert!(!id.is_empty() && id.len() <= 255);
        }
        if let Body::Resp { mac_signed, .. } = m.body {
            assert!(data.starts_with(mac_signed) && mac_signed.len() + 32 == data.len());
        }
        if let Body::Key { sealed } | Body::Ack { sealed } = m.body {
            assert_eq!(m.signed.len() + sealed.len(), data.len());
        }
        if let Body::Resp { sealed, .. } | Body::Key { sealed } | Body::Ack { sealed } = m.body {
            if let Ok((_, plain)) = open_sealed(&key, m.signed, sealed) {
                if let Body::Key { .. } = m.body {
                    let h = Handover::parse(&plain).expect("right length");
                    assert_eq!(*h.encode(), *plain);
                }
            }
        }
    }
    let settings = Settings {
        node_id: "node-2".into(),
        auto: true,
        identity: None,
        trusted: Vec::new(),
        rekey_after_ms: u64::MAX / 4,
        init_freshness_ms: 60_000,
    };
    let now = Now {
        ms: 0,
        wall_ms: CONTROL_WALL_MS,
    };
    let mut machine = Machine::new(settings, psk().clone(), now);
    let _ = machine.poll(now);
    for action in machine.on_message(data, now.plus(1)) {
        assert!(
            matches!(
                action,
                Action::Send { .. } | Action::AuthKey { .. } | Action::Failure(_)
            ),
            "one message made a fresh node act: {action:?}"
        );
    }
}

/// Whether `text` holds a run of 16 or more hex digits, as an error message that echoed
/// (part of) a key given as hex would.
fn has_hex_run(text: &str) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .any(|run| run.len() >= 16)
}

/// Key and fingerprint text, raw public keys, sender-key announcements.
pub fn keys(data: &[u8]) {
    if let Ok(k) = parse_public_key(data) {
        assert_eq!(k[..], *data);
    }
    if let Ok(g) = GroupSecret::from_announcement(data) {
        assert_eq!(*g.announcement(), *data);
    }
    let text = String::from_utf8_lossy(data);
    match Psk::from_hex(&text) {
        Ok(p) => assert_eq!(Psk::from_hex(text.trim()).unwrap().key_id(), p.key_id()),
        Err(e) => assert!(!has_hex_run(&e.to_string()), "PSK error echoes its input"),
    }
    match IdentityKey::from_hex(&text) {
        Ok(k) => {
            let again = IdentityKey::from_hex(&k.secret_hex()).unwrap();
            assert_eq!(again.public_key(), k.public_key());
        }
        Err(e) => assert!(!has_hex_run(&e.to_string()), "identity error echoes input"),
    }
    if let Ok(k) = parse_public_key_hex(&text) {
        assert_eq!(parse_public_key_hex(&hex::encode(k)).unwrap(), k);
    }
    if let Ok(fp) = normalize_fingerprint(&text) {
        assert_eq!(fp.len(), 39);
        assert_eq!(normalize_fingerprint(&fp).unwrap(), fp);
    }
}

pub mod seeds;
